"""Exceptions for bad input. The CLI turns each into one line and exit code 2."""

from __future__ import annotations


class AnytimeBenchError(Exception):
    """Bad input from the user, a data file, a checkpoint or a plugin."""

    exit_code = 2


class ConfigError(AnytimeBenchError):
    """A config key, value or CLI option is wrong."""


class DataError(AnytimeBenchError):
    """A dataset file is missing or malformed."""


class PluginError(AnytimeBenchError):
    """A plugin failed to load, clashes with another one, or is not installed."""


class CheckpointError(AnytimeBenchError):
    """A checkpoint is missing, truncated, unsafe or from another config."""


class ComponentError(Exception):
    """A plugin's code raised while working: not bad input, so exit code 1, but named precisely."""

    exit_code = 1
