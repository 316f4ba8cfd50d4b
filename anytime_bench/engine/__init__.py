"""Running a benchmark: the config and its model entries, the run (its folder, components, checkpoints), the stages
(train, sample, evaluate), the workers and the pipeline that a command or a notebook calls."""
