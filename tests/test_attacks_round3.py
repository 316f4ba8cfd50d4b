"""Hostile and careless input, third red-team pass (issue 37): a bad torchrun environment, a report over many
runs of which one cannot be read, Markdown that carried a run's raw HTML, a full disk or a read-only folder,
staging names over the file-system limit, pipes and link loops given as config or data, error lines that echoed
a whole huge value, and a few lesser cases. Each ends in one clean line and exit code 2 (or, for a report that can
still be written, a warning and exit 0), nothing already written lost, nothing hanging."""

from __future__ import annotations

import pytest

from anytime_bench import distributed
from anytime_bench.errors import ConfigError

from .conftest import TINY, assert_clean_error, run_cli

# ---------------------------------------------------------------------- 1. the torchrun environment

TORCHRUN = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


@pytest.fixture
def no_torchrun(monkeypatch):
    """An environment without torchrun's variables, whatever the test runner was started with."""
    for name in (*distributed.TORCHRUN_VARIABLES, distributed.JOIN_TIMEOUT_VARIABLE):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("env, pattern", [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not a whole number"),
    ({**TORCHRUN, "WORLD_SIZE": "0"}, "WORLD_SIZE='0' is outside 1.."),
    ({**TORCHRUN, "WORLD_SIZE": "9" * 30}, "WORLD_SIZE="),
    ({"WORLD_SIZE": "2"}, "environment variable RANK is not set, but WORLD_SIZE is"),
    ({"RANK": "0"}, "environment variable WORLD_SIZE is not set"),
    ({**TORCHRUN, "RANK": "zz"}, "RANK='zz' is not a whole number"),
    ({**TORCHRUN, "RANK": "-1"}, "RANK='-1' is not a whole number"),
    ({**TORCHRUN, "RANK": "5"}, "RANK='5' is not below WORLD_SIZE=2"),  # hung for ever before
    ({**TORCHRUN, "LOCAL_RANK": "2"}, "LOCAL_RANK='2' is not below WORLD_SIZE=2"),
    ({**TORCHRUN, "MASTER_PORT": "99999"}, "MASTER_PORT='99999' is outside 1..65535"),
    ({**TORCHRUN, "MASTER_PORT": "0"}, "MASTER_PORT='0' is outside 1..65535"),
    ({**TORCHRUN, "MASTER_ADDR": ""}, "MASTER_ADDR='' is not a host name"),
    ({**TORCHRUN, "MASTER_ADDR": "a b"}, "MASTER_ADDR='a b' is not a host name"),
    ({key: value for key, value in TORCHRUN.items() if key != "MASTER_PORT"}, "MASTER_PORT is not set"),
    ({**TORCHRUN, distributed.JOIN_TIMEOUT_VARIABLE: "soon"}, "ANYTIME_BENCH_JOIN_TIMEOUT='soon'"),
])
def test_a_bad_torchrun_environment_is_one_line_naming_the_variable(no_torchrun, tmp_path, env, pattern):
    result = run_cli("train", TINY, "--out", tmp_path / "out", "--quiet", env=env)
    assert_clean_error(result, 2, pattern)
    assert not (tmp_path / "out").exists()  # refused before any process group, before any folder


def test_a_torchrun_environment_is_read_whole_or_not_at_all():
    assert distributed.topology_from_env({}) == distributed.Topology()
    assert distributed.topology_from_env({"MASTER_PORT": "99999"}) == distributed.Topology()  # unused alone
    assert distributed.topology_from_env(TORCHRUN) == distributed.Topology(0, 2, 0)
    assert distributed.topology_from_env({**TORCHRUN, "RANK": "1", "LOCAL_RANK": "1"}) == distributed.Topology(1, 2, 1)
    one = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}  # one process: nothing to join, no address needed
    assert distributed.topology_from_env(one) == distributed.Topology()
    with pytest.raises(ConfigError, match="LOCAL_RANK is not set"):
        distributed.topology_from_env({"WORLD_SIZE": "1", "RANK": "0"})
    assert distributed.join_timeout({}) == distributed.DEFAULT_JOIN_TIMEOUT
    assert distributed.join_timeout({distributed.JOIN_TIMEOUT_VARIABLE: "2.5"}) == 2.5
    for bad in ("0", "-1", "nan", "inf", "1e9"):
        with pytest.raises(ConfigError, match=distributed.JOIN_TIMEOUT_VARIABLE):
            distributed.join_timeout({distributed.JOIN_TIMEOUT_VARIABLE: bad})


def test_a_process_group_that_never_fills_times_out_in_one_line(no_torchrun, tmp_path):
    """Rank 0 of two, the other never started: a short, configurable wait, then one line and exit 2."""
    import socket

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**TORCHRUN, "MASTER_PORT": str(port), distributed.JOIN_TIMEOUT_VARIABLE: "0.5"}
    result = run_cli("train", TINY, "--out", tmp_path / "out", "--quiet", env=env)
    assert_clean_error(result, 2, "rank 0 of 2 could not join the process group", f"127.0.0.1:{port}",
                       "within 0.5 s", distributed.JOIN_TIMEOUT_VARIABLE)
    import torch.distributed as dist

    assert not dist.is_initialized()
    assert not (tmp_path / "out").exists()
