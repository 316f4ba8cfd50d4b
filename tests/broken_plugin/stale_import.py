"""A plugin whose dependency is gone: importing it fails."""

import anytime_bench_stale_dependency  # noqa: F401  (not installed anywhere: the import is what is tested)
