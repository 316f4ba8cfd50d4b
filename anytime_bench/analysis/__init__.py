"""From measurements to readers: statistics, a run's results (``summary.md``, plots) and the report across runs.
Reads run folders through :mod:`anytime_bench.store`; never imports torch or a component."""
