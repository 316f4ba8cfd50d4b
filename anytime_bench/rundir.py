"""The ``results/<run-id>/`` contract: where each stage reads and writes.

Later stages, ``anytime-bench report`` and third-party tools rely on these
names; change them only together with everything that reads them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import storage
from .errors import ConfigError

METRICS_COLUMNS = ["run_id", "dataset", "model", "ordered", "seed", "budget", "tokens", "metric", "value",
                   "provenance"]


class RunDir:
    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def run_id(self) -> str:
        return self.root.name

    run_json = property(lambda self: self.root / "run.json")
    metrics_csv = property(lambda self: self.root / "metrics.csv")
    summary_md = property(lambda self: self.root / "summary.md")
    quality_plot = property(lambda self: self.root / "quality_vs_budget.png")
    samples_png = property(lambda self: self.root / "samples.png")

    def encoder_checkpoint(self, model: str) -> Path:
        return self.root / "checkpoints" / f"{model}.encoder.pt"

    def prior_checkpoint(self, model: str) -> Path:
        return self.root / "checkpoints" / f"{model}.prior.pt"

    def codes(self, model: str) -> Path:
        return self.root / "codes" / f"{model}.pt"

    def samples(self, model: str, seed: int) -> Path:
        return self.root / "samples" / model / f"seed{seed}.npz"

    def audio(self, model: str, name: str) -> Path:
        return self.root / "audio" / model / f"{name}.wav"

    def read_state(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            raise ConfigError(f"{self.root} is not a run folder: {self.run_json.name} is missing")
        try:
            return json.loads(self.run_json.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.run_json} is not valid JSON: {exc}") from None

    def update_state(self, **changes: Any) -> dict[str, Any]:
        state = self.read_state() if self.run_json.is_file() else {}
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(state.get(key), dict):
                state[key] = {**state[key], **value}
            else:
                state[key] = value
        state["updated"] = now()
        storage.write_json(self.run_json, state)
        return state


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id(dataset: str) -> str:
    return f"{dataset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
