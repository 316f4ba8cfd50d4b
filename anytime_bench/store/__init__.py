"""The run store: a run folder's layout and file names, its identity and record (``run.json``, with schema versions
and migrations), its tables, and the inventory of folders. Reads and writes results without torch."""
