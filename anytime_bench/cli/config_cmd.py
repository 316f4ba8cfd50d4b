"""``anytime-bench config``: the fully resolved config of a run, as TOML to save, edit and pass back."""

from __future__ import annotations

import click

from anytime_bench.cli.options import FLAG_PREFIX, config_options, resolve
from anytime_bench.cli.params import PathParam
from anytime_bench.errors import ConfigError, PluginError


@click.command("config")
@config_options
@click.option("--of-run", "run_dir", type=PathParam(),
              help="Print the config recorded in this run folder instead.")
@click.pass_obj
def command(plugins, run_dir, **params):
    """Print the resolved config (every [run] key and every selected component's options) as TOML.

    It takes the same CONFIG and options as ``run``; save the output, edit it
    and pass it back: ``anytime-bench run my.toml``. With --of-run it prints
    the run's recorded config as it is, and refuses the other options; where a
    component the run names cannot be loaded here, it prints it unchecked, and
    says so.
    """
    from anytime_bench.engine.run import recorded
    from anytime_bench.store.rundir import RunPaths

    if run_dir is not None:
        # The recorded config is what the run used: a changed one printed under its name would pass for it, and
        # applied options silently dropped mislead. Refused, naming the way to change it.
        given = [name for name, value in params.items() if name not in ("out", "quiet")
                 and value not in (None, (), [], False)]
        if "config" in given:
            raise ConfigError(f"--of-run prints the config recorded in {run_dir}; CONFIG is another one: give one")
        if given:
            flag = "--set" if given[0] == "assignments" else "--" + given[0].removeprefix(FLAG_PREFIX).replace("_", "-")
            raise ConfigError(f"--of-run prints the config recorded in {run_dir} as it is, so {flag} does not apply: "
                              f"save its output to a file, then run anytime-bench config FILE {flag} ...")
        paths = RunPaths(run_dir)
        try:
            cfg = recorded(paths, plugins, {})[1]
        except PluginError as exc:  # what a run was made with says what to install: printed, not checked
            print_as_recorded(paths, exc)
            return
    else:
        cfg = resolve(params, plugins)
    if not cfg.explicit_models:  # the old form lists encoders: say what models they make, in a comment
        click.echo("# Models: one per run.encoders, each with run.prior and the run's sampling settings "
                   "(as [[model]] entries would say):")
        for entry in cfg.models:
            settings = ", ".join(f"{k} = {v:g}" for k, v in (("temperature", entry.temperature),
                                                             ("top_k", entry.top_k), ("top_p", entry.top_p)))
            click.echo(f"#   {entry.label}: encoder {entry.encoder}, prior {entry.prior}, {settings}")
    click.echo(cfg.to_toml(), nl=False)


def print_as_recorded(paths, why: PluginError) -> None:
    """The config a run recorded, as TOML, where a component it names cannot be loaded here, so that it cannot be
    checked or resolved: said on stderr and in a first comment line."""
    import tomli_w

    from anytime_bench.store.record import read_record

    config = read_record(paths.run_json).state.get("config")
    try:
        text = tomli_w.dumps(config) if isinstance(config, dict) else None
    except (TypeError, ValueError):
        text = None
    if text is None:
        raise ConfigError(f"{paths.run_json}: its config cannot be written as TOML ({why})")
    click.echo(f"config of {paths.root} printed as recorded, not checked: {why}", err=True)
    click.echo(f"# The config recorded in {paths.root}, as it is (a component it names cannot be loaded here).")
    click.echo(text, nl=False)
