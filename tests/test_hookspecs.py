"""The hook specifications are the plugin reference: each must be documented."""

import inspect

from anytime_bench.contract import hookspecs
from anytime_bench.contract.plugin_manager import KINDS

from .conftest import ROOT


def hook_names():
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


def test_every_hook_has_a_docstring():
    names = hook_names()
    assert set(names) == set(KINDS.values()) | {"register_commands"}
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 40, f"hook {name} is undocumented"


def test_every_hook_is_in_the_plugin_guide():
    guide = (ROOT / "plugins" / "README.md").read_text()
    for name in hook_names():
        assert f"`{name}(" in guide, f"plugins/README.md does not document {name}"
