"""The shape of the code: plugins use only the public API, and the documented run folder is the contract's."""

import ast

import anytime_bench
from anytime_bench.store.rundir import RUN_FILES

from .conftest import ROOT


def test_plugins_import_only_the_public_api():
    public = set(anytime_bench.__all__)
    for path in sorted((ROOT / "plugins").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("anytime_bench"):
                assert node.module == "anytime_bench", f"{path.name} imports {node.module}, not the public API"
                names = {alias.name for alias in node.names}
                assert names <= public, f"{path.name} imports {sorted(names - public)}, not exported by anytime_bench"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("anytime_bench."), f"{path.name} imports {alias.name}"


def test_the_documented_run_folder_is_the_contract():
    page = (ROOT / "docs" / "guide" / "run-folders.md").read_text()
    table = page[page.index("| file | content |"):]
    table = table.split("\n\n")[0].rstrip("\n")
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    documented = [(name.strip().strip("`"), content.strip()) for name, content in rows]
    assert documented == [(f.pattern, f.content) for f in RUN_FILES], \
        "docs/guide/run-folders.md's table differs from anytime_bench.store.rundir.RUN_FILES: regenerate it from there"


def test_every_option_of_every_builtin_component_is_documented(plugins):
    from anytime_bench.contract.schema import options_of

    for component in plugins.all():
        if component.origin.distribution != "anytime-bench":
            continue
        assert component.description, f"{component.kind} {component.name} has no docstring"
        for option in options_of(component.cls.Config):
            assert option["doc"], f"option {option['name']} of {component.kind} {component.name} is undocumented"


def test_the_core_names_no_builtin_metric_option_or_provenance_key():
    """Built-in plugins' options and provenance keys live in the plugins; the core only knows the contract."""
    words = ["feature_extractor", "feature_weights", "fid-weights", "extractor_sha256", "classifier_steps",
             "reference_split\"", "inception"]
    for path in sorted((ROOT / "anytime_bench").rglob("*.py")):
        text = path.read_text().lower()
        for word in words:
            assert word not in text, f"{path.relative_to(ROOT)} names {word!r}"
