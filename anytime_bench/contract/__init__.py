"""The plugin contract: the hooks, the declaration of every member the core calls (``interfaces.CONTRACT``), the
checks made when plugins load, the registry, the context a component is given, and the bound components through
which the core calls plugins. Plugins see it through :mod:`anytime_bench`'s exports."""
