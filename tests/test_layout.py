"""The shape of the code: plugins use only the public API, and the README's results table is the contract's."""

import ast

import anytime_bench
from anytime_bench.rundir import RUN_FILES

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


def test_the_readme_results_table_is_the_run_folder_contract():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| file | content |"):]
    table = table[:table.index("\n\n")]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    documented = [(name.strip().strip("`"), content.strip()) for name, content in rows]
    assert documented == [(f.pattern, f.content) for f in RUN_FILES], \
        "README's results table differs from anytime_bench.rundir.RUN_FILES: regenerate it from there"
