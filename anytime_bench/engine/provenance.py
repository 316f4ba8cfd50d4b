"""What a run records so that a result can be traced and recomputed."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from anytime_bench.contract.plugin_manager import Plugins

PACKAGES = ["anytime-bench", "torch", "torchvision", "torchaudio", "torch-fidelity", "numpy", "pandas", "scikit-learn"]


def package_versions(plugins: Plugins | None = None) -> dict[str, str]:
    names = list(PACKAGES)
    if plugins is not None:
        names += [o.distribution for o in plugins.origins.values() if o.distribution not in names]
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    out["python"] = platform.python_version()
    return out


def git_commit(where: Path | None = None) -> str:
    for folder in [where or Path.cwd(), Path(__file__).resolve().parent]:
        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    return "unknown"


def device_description(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "cpu_threads": torch.get_num_threads(),
                            "platform": platform.platform()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
