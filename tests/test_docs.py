"""The documentation: generated pages are current, and every shell command it shows is one the tools accept."""

import configparser
import importlib.util
import json
import re
import shlex

import click
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .conftest import ROOT, TINY, run_cli

#: The marker of a generated block: none is left in the hand-written log, whose tables link to the findings.
BEGIN_ANY = "<!-- BEGIN generated"

#: Every page that shows commands: the README, the site's pages and the plugin guide the site includes.
PAGES = [ROOT / "README.md", ROOT / "plugins" / "README.md",
         *sorted(p for p in (ROOT / "docs").rglob("*.md") if "runs" not in p.relative_to(ROOT / "docs").parts)]


def _gen():
    spec = importlib.util.spec_from_file_location("docs_gen", ROOT / "docs" / "gen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stale(pages: dict[str, str], root) -> list[str]:
    """The generated files under ``root`` that differ from ``pages`` (what `python docs/gen.py` writes now)."""
    return [name for name, text in pages.items() if not (root / name).is_file() or (root / name).read_text() != text]


def test_the_generated_pages_are_current(tmp_path):
    _gen().main(["--out", str(tmp_path)])  # as a user runs it, into an empty folder
    pages = {path.relative_to(tmp_path).as_posix(): path.read_text() for path in tmp_path.rglob("*") if path.is_file()}
    assert "docs/results/index.md" in pages and "docs/reference/cli.md" in pages
    assert not stale(pages, ROOT), f"stale: {stale(pages, ROOT)}: run `python docs/gen.py` and commit what it writes"
    # every results page is generated (the hand-written record is docs/log.md, outside them); a run folder removed
    # from results/ takes its page with it
    for page in (ROOT / "docs" / "results").glob("*.md"):
        assert f"docs/results/{page.name}" in pages, f"docs/results/{page.name} is not generated: remove it"
    assert "docs/results/findings.md" in pages and BEGIN_ANY not in (ROOT / "docs" / "log.md").read_text()


def test_the_site_lists_every_committed_run():
    nav = (ROOT / "mkdocs.yml").read_text()
    for run in sorted(p.parent.name for p in (ROOT / "results").glob("*/summary.md")):
        assert f"results/{run}.md" in nav, f"mkdocs.yml's nav does not list results/{run}.md"


def test_a_number_typed_into_a_generated_table_is_caught(plugins, tmp_path):
    pages = _gen().pages(plugins)
    for name, text in pages.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    index = tmp_path / "docs" / "results" / "index.md"
    edited = index.read_text().replace("| `rvq` | `reference-mnist` | ", "| `rvq` | `reference-mnist` | 9", 1)
    assert edited != index.read_text()
    index.write_text(edited)
    assert stale(pages, tmp_path) == ["docs/results/index.md"]


def contract_drift(guide: str) -> list[str]:
    """Where the plugin guide's generated blocks differ from what ``docs/gen.py`` writes from the contract now, and
    where a method table, read from the guide itself, does not list exactly the contract's members of its kind."""
    from anytime_bench.contract.interfaces import CONTRACT

    gen = _gen()
    problems = []
    for name, block in gen.contract_blocks().items():
        begin = gen.BEGIN.format(name)
        if begin not in guide or gen.END not in guide.split(begin, 1)[1]:
            problems.append(f"no generated block {name}")
            continue
        shown = guide.split(begin, 1)[1].split(gen.END, 1)[0]
        if shown != f"\n{block}":
            problems.append(f"{name} differs from what docs/gen.py writes")
        kind = re.fullmatch(r"CONTRACT\['(\w+)'\] in .*", name)
        if kind:
            rows = re.findall(r"^\| `([^`]+)` \|", shown, flags=re.M)
            members = [member.name for member in CONTRACT[kind.group(1)]]
            if rows != members:
                problems.append(f"the {kind.group(1)} table lists {rows}, the contract declares {members}")
    return problems


def test_the_guide_method_tables_are_the_contract():
    guide = (ROOT / "plugins" / "README.md").read_text()
    assert contract_drift(guide) == [], "run `python docs/gen.py` and commit plugins/README.md"


def test_the_guide_check_catches_a_missing_row_an_edited_cell_and_a_new_member(monkeypatch):
    from anytime_bench.contract.interfaces import CONTRACT, Member

    guide = (ROOT / "plugins" / "README.md").read_text()
    row = next(line for line in guide.splitlines(keepends=True) if line.startswith("| `stream` |"))
    problems = contract_drift(guide.replace(row, ""))
    assert any("CONTRACT['prior']" in p and "differs" in p for p in problems)
    assert any("the prior table lists" in p for p in problems)
    assert contract_drift(guide.replace("int64 `[B, D]`", "int32 `[B, D]`", 1)) == [
        "CONTRACT['encoder'] in anytime_bench/contract/interfaces.py differs from what docs/gen.py writes"]
    monkeypatch.setitem(CONTRACT, "metric", [*CONTRACT["metric"], Member("extra", "class", False, returns="x",
                                                                          default="y")])
    problems = contract_drift(guide)  # the contract gained a member, the guide was not regenerated
    assert len(problems) == 2 and "'extra'" in problems[1]


def shell_commands(path):
    """Each command of each ```bash block, comments dropped, ``a && b`` split into a and b."""
    text = path.read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                yield words[:cut]
                words = words[cut + 1:]


def _cli_arguments(words):
    """The arguments after the program, when the command runs anytime-bench (directly, from a venv, under
    torchrun or ``python -m``); None otherwise."""
    if words[0] in ("anytime-bench", ".venv/bin/anytime-bench"):
        return words[1:]
    if words[0] == "torchrun":
        assert "-m" in words and words[words.index("-m") + 1] == "anytime_bench", words
        return words[words.index("-m") + 2:]
    if words[0].startswith("python") and words[1:3] == ["-m", "anytime_bench"]:
        return words[3:]
    return None


def check_cli(group, args):
    """What click itself checks before a command runs: the command exists, every option is one of its own with
    the right number of values, the values convert to the option's type (a path need not exist here: examples
    name run folders the reader has), and the positional arguments fit."""
    args = [a for a in args if a != "--debug"]
    assert args and args[0] in group.commands, f"anytime-bench has no command {args[:1]}"
    command = group.commands[args[0]]
    ctx = click.Context(command, info_name=args[0], **command.context_settings)  # strict: parse errors raise
    parser = command.make_parser(ctx)
    try:
        values, extra, _ = parser.parse_args(list(args[1:]))  # positional arguments land in values, by name
    except click.UsageError as exc:
        pytest.fail(f"anytime-bench {' '.join(args)}: {exc.format_message()}")
    assert not extra, f"anytime-bench {' '.join(args)}: extra arguments {extra}"
    for param in command.params:
        value = values.get(param.name)
        if isinstance(param, click.Argument):
            # a missing argument is None, or click's UNSET sentinel since click 8.3
            given = value not in (None, ()) and type(value).__name__ != "Sentinel"
            assert given or not param.required, f"anytime-bench {' '.join(args)}: missing {param.human_readable_name}"
        elif value is not None and not isinstance(param.type, click.Path):
            try:
                param.type_cast_value(ctx, value)
            except click.BadParameter as exc:
                pytest.fail(f"anytime-bench {' '.join(args)}: {param.opts[0]}: {exc.message}")


def check_other(words):
    """The few other programs the docs run, each checked against what it needs here."""
    tox_envs = configparser.ConfigParser()
    tox_envs.read(ROOT / "tox.ini")
    if words[:3] in (["python3", "-m", "venv"],):
        return
    if words[0].endswith("pip") or words[:3] == ["python3", "-m", "pip"]:
        target = words[words.index("install") + 1:]
        assert target, words
        for what in target:
            if what == ".":
                assert (ROOT / "pyproject.toml").is_file()
            elif what.startswith("tox"):
                assert tox_envs.get("tox", "requires") == what, f"the docs install {what}, tox.ini requires another"
            else:  # the plugin guide's example package, shipped as the tests' example plugin
                assert what == "./anytime-bench-toys", words
                name = tomllib.loads((ROOT / "tests" / "example_plugin" / "pyproject.toml").read_text())
                assert name["project"]["name"] == "anytime-bench-toys"
        return
    if words[:3] == ["python3", "-m", "tox"] or words[0] == ".venv/bin/tox":
        for env in (words[words.index("-e") + 1].split(",") if "-e" in words else []):
            assert tox_envs.has_section(f"testenv:{env}"), f"tox.ini has no env {env}"
        return
    if words[0] == "mkdocs":
        assert words[1] in ("build", "serve") and (ROOT / "mkdocs.yml").is_file(), words
        return
    pytest.fail(f"the docs show a command no test checks: {shlex.join(words)} (teach tests/test_docs.py to check it)")


def all_commands():
    return [(path.relative_to(ROOT), words) for path in PAGES for words in shell_commands(path)]


def test_the_docs_show_commands():
    """The parsing below sees the blocks it should: the set-up commands, several anytime-bench commands."""
    shown = [shlex.join(words) for _, words in all_commands()]
    assert "python3 -m venv .venv" in shown and ".venv/bin/anytime-bench run" in shown
    assert 'python3 -m venv .venv' in shown and ".venv/bin/pip install 'tox>=4'" in shown and ".venv/bin/tox" in shown
    assert sum(s.startswith("anytime-bench ") for s in shown) > 20


def test_every_shell_command_in_the_docs_is_accepted(plugins):
    from anytime_bench.cli import build_cli

    group = build_cli(plugins)
    # the plugin guide's toy components are installed by its own test, not here: their names are accepted as
    # an argument (they are looked up only when the command runs)
    for _, words in all_commands():
        args = _cli_arguments(words)
        if args is None:
            check_other(words)
        else:
            check_cli(group, args)


def test_the_command_check_can_fail(plugins):
    from anytime_bench.cli import build_cli

    group = build_cli(plugins)
    for bad in (["run", "--budget", "0.5"], ["rnu"], ["run", "--train-seeds"], ["sample"],
                ["run", "--sample-seeds", "many"]):
        with pytest.raises((AssertionError, pytest.fail.Exception)):
            check_cli(group, bad)


@pytest.mark.parametrize("args", [["plugins"], ["plugins", "ovqvae"], ["config", "configs/mnist.toml"],
                                  ["runs"]])
def test_the_read_only_commands_of_the_docs_run(args, monkeypatch):
    """The commands that read and print (no training) run as shown, from the repository root."""
    monkeypatch.chdir(ROOT)
    shown = {tuple(_cli_arguments(words) or ()) for _, words in all_commands()}
    assert tuple(args) in shown, f"the docs no longer show anytime-bench {' '.join(args)}"
    result = run_cli(*args)
    assert result.code == 0, result.err[-2000:]
    assert result.out.strip()


def test_the_readme_tour_runs_as_shown(monkeypatch, tmp_path, shared_cache):
    """The tour's commands, in order, from a folder holding a copy of one committed run: each as the README shows
    it, but that `run` reads the tests' reduced config first (the shown options override it) and the tests' cache,
    so that it takes seconds; it then writes results/tour, which `runs` lists and `report` compares."""
    import shutil

    readme = (ROOT / "README.md").read_text()
    tour = readme[readme.index("## A five-minute tour"):readme.index("### From Python")]
    commands = [words for block in re.findall(r"```bash\n(.*?)```", tour, flags=re.S)
                for line in block.splitlines() for words in [shlex.split(line, comments=True)] if words]
    assert [words[1] for words in commands] == ["run", "plugins", "config", "runs", "report"]
    shutil.copytree(ROOT / "results" / "reference-digits", tmp_path / "results" / "reference-digits")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    for words in commands:
        args = _cli_arguments(words)
        if args[0] == "run":
            args = ["run", str(TINY), *args[1:], "--cache-dir", str(shared_cache), "--quiet"]
        result = run_cli(*args)
        assert result.code == 0, f"anytime-bench {shlex.join(args)}: {result.err.strip()[-800:]}"
    assert (tmp_path / "results" / "tour" / "summary.md").is_file()
    assert (tmp_path / "results" / "tour-report" / "report.html").is_file()
    assert "tour" in run_cli("runs").out


def test_every_run_in_the_docs_resolves_to_a_valid_config(plugins, monkeypatch, tmp_path):
    """Each `run` and `train` shown, given to `config` (the same CONFIG and options, the whole validation of a run
    before any work): every key of --set, every value, every component name is accepted. Commands on a config
    file that only exists on the reader's side (`my-config.toml`, the plugin guide's `first-run.toml`) are left to
    the option check above."""
    from anytime_bench.cli import build_cli

    monkeypatch.chdir(ROOT)
    config = build_cli(plugins).commands["config"]
    takes = {opt for param in config.params for opt in param.opts}
    checked = 0
    for _, words in all_commands():
        args = _cli_arguments(words)
        if not args or args[0] not in ("run", "train"):
            continue
        rest, keep = args[1:], []
        while rest:
            word = rest.pop(0)
            if word.startswith("--") and word not in takes:  # --run-id, --out, --quiet: where to write, not what
                option = next(p for p in build_cli(plugins).commands[args[0]].params if word in p.opts)
                if not getattr(option, "is_flag", False):
                    rest.pop(0)
                continue
            keep.append(word)
            if word == "--data-root" and rest and not (ROOT / rest[0]).is_dir():
                # a folder on the reader's machine (../shared on the project's): an empty one stands in for it
                rest[0] = str(tmp_path)
        if keep and not keep[0].startswith("-") and not (ROOT / keep[0]).is_file():
            continue
        result = run_cli("config", *keep)
        assert result.code == 0, f"anytime-bench {shlex.join(args)}: {result.err.strip()[-500:]}"
        checked += 1
    assert checked >= 8  # the README tour, the guide's command list


def test_the_tried_table_agrees_with_the_committed_runs():
    """The research log's table of what was tried for rvq's rising FID mixes committed runs with runs that were not
    committed (those have no data here), so it is typed; it records one FID feature space, which its lead-in names.
    Each row that names a committed run still scored in that space is checked against that run's metrics.csv, to
    the digits shown; a run made again in another space is in the findings' generated table instead."""
    from anytime_bench.analysis.report.gather import load_run
    from anytime_bench.analysis.stats import estimate

    text = (ROOT / "docs" / "log.md").read_text()
    space = re.search(r"the first MNIST classifier's feature space \(`([0-9a-f]{8})`\)", text).group(1)
    table = text[text.index("| `rvq` with | seeds |"):].split("\n\n")[0].splitlines()[2:]
    named = []
    for line in table:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        run = re.search(r"`results/([a-z0-9-]+)/`", cells[0])
        if not run:
            continue
        named.append(run.group(1))
        metrics = load_run(ROOT / "results" / run.group(1)).metrics
        rows = metrics[(metrics.model == "rvq") & (metrics.metric == "fid")]
        spaces = {json.loads(p).get("feature_space", "") for p in rows.provenance.unique()}
        if not all(f"-{space}" in found for found in spaces):
            continue
        for budget, cell in zip((0.2, 0.4, 0.6, 0.8, 1.0), cells[3:], strict=True):
            shown = cell.split(" [")[0]
            part = rows[(rows.budget - budget).abs().lt(1e-9)]
            decimals = len(shown.split(".")[1])
            assert abs(estimate(part).mean - float(shown)) <= 0.5 * 10 ** -decimals + 1e-12, (run.group(1), budget)
    assert len(named) >= 8, "the rows that name committed runs are gone"
    # A run made again leaves the record, and the generated table shows it: each must appear there.
    generated = _gen().rvq_variants_table()
    for run in named:
        assert f"`{run}`" in generated, run
