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


def git_commit() -> str:
    """The commit of the git checkout that anytime-bench itself runs from, ``-dirty`` when a tracked file differs
    from it; "unknown" when it runs from no checkout (an installed package). Never the repository of the current
    folder, nor one that merely encloses the installed package (a virtual environment inside a project): the
    package's own files must be tracked there."""
    package = Path(__file__).resolve().parents[1]

    def git(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(["git", *args], cwd=package, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None

    head, tracked = git("rev-parse", "HEAD"), git("ls-files", "--error-unmatch", "--", "__init__.py")
    if head is None or tracked is None or head.returncode or tracked.returncode:
        return "unknown"
    status = git("status", "--porcelain", "--untracked-files=no")
    return head.stdout.strip() + ("-dirty" if status is None or status.stdout.strip() else "")


def device_description(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "cpu_threads": torch.get_num_threads(),
                            "platform": platform.platform()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
