"""Options shared by the commands, and their parsing into config overrides."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import click

from ..config import BenchConfig, load_config
from ..errors import ConfigError
from ..plugin_manager import Plugins


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"expected a comma-separated list, got {value!r}")
    return items


def parse_budgets(value: str | None) -> list[float] | None:
    items = split_list(value)
    if items is None:
        return None
    out = []
    for item in items:
        try:
            out.append(float(Fraction(item)))
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"--budgets: {item!r} is not a number or fraction") from None
    return out


def config_options(f):
    """The options that override ``[run]`` keys of a config file."""
    options = [
        click.argument("config", required=False, type=click.Path(path_type=Path)),
        click.option("--dataset", help="Dataset plugin name (default: digits)."),
        click.option("--encoders", help="Comma-separated encoder plugin names."),
        click.option("--prior", help="Prior plugin name."),
        click.option("--metrics", help="Comma-separated metric plugin names."),
        click.option("--budgets", help="Comma-separated budgets in (0, 1] (fractions of the code length; 1/8 works)."),
        click.option("--seed", type=int, help="Seed for training and sampling."),
        click.option("--seeds", type=int, help="Number of sampling seeds (seed, seed+1, ...): per-seed rows, intervals."),
        click.option("--feature-extractor", help="auto, classifier or inception-v3-compat (fid/kid/isc/prc/rfid)."),
        click.option("--fid-weights", help="Local Inception weights file (inception-v3-compat offline)."),
        click.option("--device", help="auto (default: CUDA when available), cpu, cuda or cuda:N."),
        click.option("--num-samples", type=int, help="Generated samples per model and budget."),
        click.option("--data-root", help="Folder holding the dataset's files."),
        click.option("--cache-dir", help="Cache for classifier weights and reference statistics."),
        click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
                     help="Folder that receives results/<run-id>/."),
        click.option("--run-id", help="Name of the run folder (default: <dataset>-<timestamp>)."),
        click.option("--quiet", is_flag=True, help="No progress bars or log lines."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def overrides_from(params: dict[str, Any]) -> dict[str, Any]:
    run: dict[str, Any] = {}
    for key in ("dataset", "prior", "seed", "seeds", "device", "num_samples", "data_root", "cache_dir",
                "feature_extractor"):
        if params.get(key) is not None:
            run[key] = params[key]
    if params.get("fid_weights") is not None:
        run["feature_weights"] = params["fid_weights"]
    for key in ("encoders", "metrics"):
        if params.get(key) is not None:
            run[key] = split_list(params[key])
    if params.get("budgets") is not None:
        run["budgets"] = parse_budgets(params["budgets"])
    if params.get("data_root") and not Path(params["data_root"]).is_dir():
        raise ConfigError(f"--data-root {params['data_root']} is not a folder")
    return {"run": run} if run else {}


def resolve(params: dict[str, Any], plugins: Plugins) -> BenchConfig:
    cfg = load_config(params.get("config"), overrides_from(params), plugins)
    if cfg.run.data_root and not Path(cfg.run.data_root).is_dir():
        raise ConfigError(f"run.data_root: {cfg.run.data_root} is not a folder")
    return cfg
