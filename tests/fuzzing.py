"""What the fuzzing tests share: Hypothesis's profile, a pickle that runs code, and the promises every input keeps.

Every input must end in exit code 2 with one line (or exit 1 with one line naming a plugin, for a plugin's own
failure; or success, where the input happens to be harmless), with no traceback, no file written outside the
folder the command was pointed at, and no code run from a file. The profile is derandomized: CI sees the same
examples every time. ``ANYTIME_BENCH_FUZZ_SCALE=N`` (N > 1) draws N times as many examples, fresh ones each run:
the longer search to run by hand after changing what reads untrusted input.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

MARKER = Path(f"/tmp/anytime-bench-fuzz-ran-{os.getpid()}")
"""Written by code run from a crafted file; one per test process, as the fuzzing files run side by side."""
SCALE = max(1, int(os.environ.get("ANYTIME_BENCH_FUZZ_SCALE") or 1))
FUZZ = settings(derandomize=SCALE == 1, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


class Exploit:
    def __reduce__(self):
        return (exec, (f"open({str(MARKER)!r}, 'w').write('pwned')",))


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def check(result, sandbox: Path, before: set[Path], allowed: tuple[Path, ...] = ()) -> None:
    """The promises: a clean exit, one line on failure, nothing written outside ``allowed``, no code run."""
    assert not MARKER.exists(), "code from a file was executed"
    assert "Traceback" not in result.err, result.err[-3000:]
    lines = [line for line in result.err.splitlines() if line.strip()]
    if result.code == 2:
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.err[-3000:]
        assert not lines[0].rstrip().endswith(":"), f"the error names nothing: {lines[0]!r}"
    elif result.code == 1:
        assert len(lines) == 1 and "from plugin" in lines[0], result.err[-3000:]
    else:
        assert result.code == 0, (result.code, result.err[-3000:])
    new = files(sandbox) - before
    stray = [p for p in new if not any(folder == p or folder in p.parents for folder in allowed)]
    assert not stray, f"wrote outside the chosen folders: {sorted(stray)[:5]}"
