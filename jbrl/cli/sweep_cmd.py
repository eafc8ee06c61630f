"""``jbrl sweep``: training sweeps on Ray Tune (seeds, grids, random search).

See :mod:`jbrl.agents.ppo.sweep`. TensorBoard: ``tensorboard --logdir <sweep>/trials``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jbrl.cli.common import console, err_console, print_json

if TYPE_CHECKING:
    from jbrl.agents.ppo.sweep import SweepResult

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Sweep config YAML (configs/sweep/ppo_vqa_reward.yaml)."),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Where Ray Tune runs the trials. Left out, alone or 'local': a Ray started for "
        "the sweep on 127.0.0.1; 'auto', 'ray://HOST:10001' or HOST:6379: an existing cluster "
        "(jbrl installed on every node, the sweep folder on a shared file system).",
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume", help="Continue the interrupted sweep of this name."),
]
RunsDirOpt = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Where the sweep's folder goes (default: the config's)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results as JSON.")]


def sweep(
    config: ConfigOpt,
    ray: RayOpt = None,
    resume: ResumeOpt = False,
    runs_dir: RunsDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train several PPO runs on Ray Tune and keep the best by validation.

    Each trial is one `jbrl train` run (own run folder, TensorBoard logs, checkpoints) scored on
    the validation traces only; prints the results table and copies the best trial's policy
    folder to <sweep>/best (use it as --policies ppo:path=<sweep>/best).
    """
    from jbrl.agents.ppo.sweep import run_sweep
    from jbrl.agents.ppo.sweep_config import load_sweep_config

    cfg = load_sweep_config(config)
    if runs_dir is not None:
        cfg = cfg.model_copy(update={"runs_dir": str(runs_dir)})
    result = run_sweep(
        cfg,
        address=ray,
        resume=resume,
        on_status=None if json_out else _say,
    )
    if json_out:
        print_json(result.to_dict())
    else:
        _print_result(result)


def _say(message: str) -> None:
    """A status line on stderr (module-level: Ray Tune pickles its callbacks by reference)."""
    err_console.print(message, highlight=False, soft_wrap=True)


def _print_result(result: SweepResult) -> None:
    from rich.table import Table

    from jbrl.agents.ppo.sweep import table

    head, rows = table(result)
    out = Table(*head, title=f"sweep {result.sweep_dir.name}: validation figures of each trial")
    for row in rows:
        out.add_row(*row)
    console.print(out)
    done = sum(t.status == "done" for t in result.trials)
    console.print(
        f"{done} of {result.expected} trials finished in {result.wall_s:.0f} s; results in "
        f"{result.sweep_dir}/results.md",
        highlight=False,
    )
    if not result.complete:
        console.print(
            "[yellow]the sweep is not complete:[/yellow] run the same command with --resume "
            "to continue it (finished trials are kept)"
        )
    if result.best is None:
        console.print("[yellow]no trial finished: no policy to ship[/yellow]")
    else:
        console.print(
            f"best trial {result.best.trial} (validation score {result.best.score:.3f}): "
            f"policy folder {result.sweep_dir}/best (ppo:path={result.sweep_dir}/best); "
            f"TensorBoard: tensorboard --logdir {result.sweep_dir}/trials",
            highlight=False,
        )
