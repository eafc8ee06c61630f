"""``jbrl train``: train the PPO policy (imitation warm start, then MaskablePPO).

See :mod:`jbrl.agents.ppo.train`. TensorBoard: ``tensorboard --logdir runs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jbrl.cli.common import console, print_json

DEFAULT_CONFIG = Path("configs/train/ppo_vqa.yaml")


def train(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="Training config YAML (configs/train/ppo_vqa.yaml)."),
    ] = DEFAULT_CONFIG,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the newest run of this scenario and seed from its last checkpoint.",
        ),
    ] = False,
    timesteps: Annotated[
        int | None, typer.Option("--timesteps", min=1, help="Total PPO steps (overrides config).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Root seed (overrides config).")
    ] = None,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Where run folders go (default: runs).")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print SB3 logs.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the run folder as JSON.")] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Only validate the whole config (and what it names); exit."),
    ] = False,
) -> None:
    """Train a PPO policy: TensorBoard logs, checkpoints and the model under runs/."""
    from jbrl.agents.ppo.config import check_before_training, load_train_config
    from jbrl.agents.ppo.train import train as run_training

    if not config.exists() and config == DEFAULT_CONFIG:
        from importlib import resources

        # outside a checkout: the copy shipped as package data
        config = Path(str(resources.files("jbrl.configs") / "train" / "ppo_vqa.yaml"))
    cfg = load_train_config(
        config,
        total_timesteps=timesteps,
        seed=seed,
        runs_dir=str(runs_dir) if runs_dir is not None else None,
    )
    if check:
        check_before_training(cfg)
        console.print(f"valid: {config}", highlight=False)
        return
    run_dir = run_training(
        cfg,
        resume=resume,
        progress_bar=progress and not json_out,
        verbose=1 if verbose else 0,
        on_status=None if json_out else (lambda m: console.print(m, highlight=False)),
    )
    if json_out:
        print_json({"run_dir": str(run_dir), "model": str(run_dir / "model.zip")})
    else:
        console.print(
            f"done: {run_dir}/model.zip (best on validation: {run_dir}/best/); "
            f"TensorBoard: tensorboard --logdir {run_dir.parent}"
        )
