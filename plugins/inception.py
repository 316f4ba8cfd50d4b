"""torch-fidelity's Inception-v3 extractor for natural images, usable offline with a local weights file.

torch-fidelity opens the weights file with ``torch.load(weights_only=False)``.
So the file the user names is loaded here with ``weights_only=True`` (a file
that needs code to unpickle is refused), checked to be a state dict of
tensors, and saved again to a private temporary file: that copy, written by
this process, is what torch-fidelity opens.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import urllib.request
from pathlib import Path

import torch

from anytime_bench import DataError, RunContext, atomic_write, load_untrusted, nonfinite_entry

from .classifier import Extractor


def _default_path(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]


def _private_copy(state: dict) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="anytime-bench-inception-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "weights.pth"
    torch.save(state, path)
    return path


def inception_extractor(weights: str, ctx: RunContext, timeout: float = 10.0) -> Extractor:
    """The standard ``inception-v3-compat`` features, from ``weights`` or torch's hub cache.

    Without a file and without network the error names the file to obtain and
    where to put it; there is no fallback to another extractor.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    default = _default_path(URL_INCEPTION_V3)
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DataError(f"--fid-weights {path} does not exist")
    elif default.is_file():
        path = default
    else:
        try:
            with urllib.request.urlopen(URL_INCEPTION_V3, timeout=timeout) as response:
                data = response.read()
            atomic_write(default, lambda fh: fh.write(data))
            path = default
        except Exception as exc:
            raise DataError(
                f"Inception weights are not available ({type(exc).__name__}): download {URL_INCEPTION_V3} and pass "
                f"--fid-weights PATH, or put the file at {default}"
            ) from None
    data = path.read_bytes()
    try:
        import io

        state = load_untrusted(io.BytesIO(data))
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise ValueError("not a dict of tensors")
        bad = nonfinite_entry(state)
        if bad is not None:
            raise ValueError(f"NaN or infinite values in {bad!r}")
    except Exception as exc:
        raise DataError(f"{path} is not a plain Inception state dict that loads safely: {exc}") from None
    sha = hashlib.sha256(data).hexdigest()
    # One registered name per weights file, so cached features never mix weights.
    name = f"inception-v3-compat-{sha[:16]}"
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, FeatureExtractorInceptionV3)
    ctx.log(f"FID features: Inception-v3 from {path}")
    return Extractor(name, _private_copy(state), sha, None, FeatureExtractorInceptionV3)
