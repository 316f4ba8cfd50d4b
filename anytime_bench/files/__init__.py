"""Files, the lowest layer: atomic writes, untrusted loads, data files resolved inside their folder, config files
and their `extends` chains, archives of arrays, Markdown tables. Nothing here knows what a run is."""
