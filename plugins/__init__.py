"""anytime-bench's built-in plugins.

Installed as the ``anytime_bench_plugins`` package and registered through the
``anytime_bench`` entry-point group, exactly like a third-party plugin. They use
only the public API of :mod:`anytime_bench`.
"""
