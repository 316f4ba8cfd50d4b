from anytime_bench.cli import main

main()
