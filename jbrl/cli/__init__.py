"""The ``jbrl`` command line. Each command group lives in its own module here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from jbrl.cli import (
    control_cmd,
    cost_cmd,
    demo_cmd,
    evaluate_cmd,
    plan_cmd,
    scenario_cmds,
    simulate_cmd,
    synth_cmd,
    trace_cmds,
    train_cmd,
)
from jbrl.cli.common import FLAGS, err_console, print_json
from jbrl.errors import InfeasibleError, InputError, JbrlError
from jbrl.profiling.cli import profile_command

app = typer.Typer(
    name="jbrl",
    help="Plan, simulate and adapt ML inference workflows on tiered edge/cloud infrastructure.\n\n"
    "Every command that reads a scenario takes --scenario: an embedded name (vqa, vehicle), a "
    "scenario YAML file, or a JellyBean optimizer-inputs directory. Exit codes: 0 success, "
    "2 bad input, 3 infeasible request.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    """``--version``: the installed distribution's version (the source's when not installed)."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    import jbrl

    try:
        v = version("jbrl")
    except PackageNotFoundError:
        v = jbrl.__version__
    sys.stdout.write(f"jbrl {v}\n")
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Plan, simulate and adapt ML inference workflows on tiered edge/cloud infrastructure."""


app.add_typer(scenario_cmds.app, name="scenario")
app.command("cost")(cost_cmd.cost)
app.command("plan")(plan_cmd.plan)
app.command("profile")(profile_command)
scenario_cmds.app.command("synth")(synth_cmd.synth)
app.command("demo")(demo_cmd.demo)
app.command("train")(train_cmd.train)
app.command("control")(control_cmd.control)
app.add_typer(trace_cmds.trace_app, name="trace")
app.command("simulate")(simulate_cmd.simulate)
app.command("evaluate")(evaluate_cmd.evaluate)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; turn jbrl's errors into one message and an exit code."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except InfeasibleError as exc:
        if "--json" in (argv if argv is not None else sys.argv):
            print_json({"status": "infeasible", "reason": exc.reason, **exc.details})
        err_console.print(
            f"[bold red]infeasible:[/bold red] {escape(exc.reason)}",
            highlight=False,
            soft_wrap=True,  # one line per message: the terminal wraps it, paths stay whole
        )
        return exc.exit_code
    except JbrlError as exc:
        text = exc.render(FLAGS) if isinstance(exc, InputError) else str(exc)
        err_console.print(
            f"[bold red]error:[/bold red] {escape(text)}", highlight=False, soft_wrap=True
        )
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
