"""Training of the PPO policy: ``jbrl train --config configs/train/ppo_vqa.yaml``.

Two phases, one seed (python, numpy, torch; vectorised env i gets ``seed + i``):

1. **Imitation warm start** (``bc``, :mod:`jbrl.agents.ppo.imitation`): a rule policy of
   :mod:`jbrl.agents.rules` (``bc.teacher``, a policy spec) drives the env; the policy network
   learns its actions and the value network its discounted returns; optional DAgger rounds
   relabel the student's own states. The MultiDiscrete plan space is too large for PPO to
   discover good placements from scratch in minutes; the warm start puts it next to a sensible
   controller.
2. **MaskablePPO** (sb3-contrib) on the true reward, with ``VecNormalize`` (statistics saved
   with the model), TensorBoard under ``runs/{scenario}__ppo__{seed}__{timestamp}`` (losses,
   ``serving/*`` figures of the training episodes, ``eval/*`` figures of the policy and of the
   baseline policy on held-out validation traces, hyperparameters as text;
   :mod:`jbrl.agents.ppo.callbacks`), periodic checkpoints (``--resume`` continues from the
   last), the resolved config in the run folder, and the policy with the best validation score
   in ``best/``.

The configuration is :class:`~jbrl.agents.ppo.config.TrainConfig`.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jbrl.agents.ppo.config import TrainConfig, check_before_training, load_train_config
from jbrl.agents.ppo.files import (
    CONFIG_FILE,
    MODEL_FILE,
    NORM_FILE,
    load_model,
    load_normalization,
    save_normalization,
)
from jbrl.agents.ppo.imitation import imitation_warm_start
from jbrl.agents.ppo.workbench import Workbench
from jbrl.envs.ladder import PlanLadder
from jbrl.envs.serving import LADDER_FILES, LadderTable

__all__ = [
    "find_resumable",
    "latest_checkpoint",
    "load_train_config",
    "run_name",
    "seed_everything",
    "train",
]


def run_name(config: TrainConfig) -> str:
    """``{scenario}__ppo__{seed}__{timestamp}``."""
    scen = Path(config.env.scenario).stem if "/" in config.env.scenario else config.env.scenario
    scen = re.sub(r"[^A-Za-z0-9_.-]", "_", scen)
    return f"{scen}__ppo__{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def seed_everything(seed: int) -> None:
    """One seed for python, numpy's legacy global state and torch."""
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - SB3 and torch helpers read the legacy global state
    torch.manual_seed(seed)


def latest_checkpoint(run_dir: Path) -> tuple[Path, Path] | None:
    """(model, normalization statistics) of the highest-step checkpoint in
    ``run_dir/checkpoints``."""
    best: tuple[int, Path, Path] | None = None
    for p in (run_dir / "checkpoints").glob("ppo_*_steps.zip"):
        m = re.fullmatch(r"ppo_(\d+)_steps\.zip", p.name)
        if m is None:
            continue
        norm = run_dir / "checkpoints" / f"ppo_normalization_{m.group(1)}_steps.json"
        if norm.is_file() and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), p, norm)
    return None if best is None else (best[1], best[2])


def find_resumable(config: TrainConfig) -> Path | None:
    """The newest run folder of this scenario and seed that has a checkpoint."""
    stem = run_name(config).rsplit("__", 1)[0]
    runs = sorted(Path(config.runs_dir).glob(f"{stem}__*"), reverse=True)
    for r in runs:
        if latest_checkpoint(r) is not None:
            return r
    return None


# --------------------------------------------------------------------------- pieces of a run


def _new_model(config: TrainConfig, venv: Any, verbose: int) -> tuple[Any, Any]:
    """A fresh MaskablePPO model on ``venv`` (wrapped in ``VecNormalize``), and the wrapper."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import VecNormalize

    hp = config.ppo
    venv = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=hp.gamma, clip_obs=10.0)
    model = MaskablePPO(
        "MlpPolicy",
        venv,
        learning_rate=hp.learning_rate,
        n_steps=hp.n_steps,
        batch_size=hp.batch_size,
        n_epochs=hp.n_epochs,
        gamma=hp.gamma,
        gae_lambda=hp.gae_lambda,
        clip_range=hp.clip_range,
        ent_coef=hp.ent_coef,
        vf_coef=hp.vf_coef,
        max_grad_norm=hp.max_grad_norm,
        target_kl=hp.target_kl,
        policy_kwargs={"net_arch": {"pi": list(hp.net_arch), "vf": list(hp.net_arch)}},
        seed=config.seed,
        device="cpu",
        verbose=verbose,
    )
    return model, venv


def _resumed_model(config: TrainConfig, run_dir: Path, venv: Any) -> tuple[Any, Any, str]:
    """The last checkpoint's model and normalisation on ``venv``, and its file name (read
    without unpickling anything: :mod:`jbrl.agents.ppo.files`)."""
    from stable_baselines3.common.vec_env import VecNormalize

    found = latest_checkpoint(run_dir)
    assert found is not None, "find_resumable returns folders with a checkpoint"
    ckpt, norm_file = found
    stats = load_normalization(norm_file, venv.observation_space.shape[0])
    venv = stats.restore(VecNormalize(venv, norm_obs=True, norm_reward=True))
    hyper = {"learning_rate": config.ppo.learning_rate, "clip_range": config.ppo.clip_range}
    model = load_model(ckpt, venv.observation_space, venv.action_space, env=venv, hyper=hyper)
    return model, venv, ckpt.name


def _callbacks(
    config: TrainConfig,
    bench: Workbench,
    run_dir: Path,
    text: str,
    extra: Sequence[Any],
    on_validation: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """Hyperparameters, serving figures, checkpoints, validation, then ``extra``."""
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

    from jbrl.agents.ppo.callbacks import (
        HparamsCallback,
        NormalizationCheckpoint,
        ServingMetricsCallback,
        ValidationCallback,
    )

    freq = max(1, config.checkpoint_every // config.n_envs)
    callbacks: list[Any] = [
        HparamsCallback(f"```yaml\n{text}\n```"),
        ServingMetricsCallback(),
        CheckpointCallback(
            save_freq=freq, save_path=str(run_dir / "checkpoints"), name_prefix="ppo"
        ),
        NormalizationCheckpoint(freq, run_dir / "checkpoints", "ppo"),
    ]
    if config.eval is not None:
        callbacks.append(ValidationCallback(bench, run_dir, config.eval.every_steps, on_validation))
    return CallbackList([*callbacks, *extra])


def ladder_summary(ladder: LadderTable) -> str:
    """One line on the action table a run trains on (its size)."""
    if isinstance(ladder, PlanLadder):
        return f"plan ladder: {len(ladder)} rungs"
    rungs = sum(len(lad) for lad in ladder.ladders)
    return (
        f"combination ladder: {len(ladder.combos)} combinations, {ladder.n_levels} levels, "
        f"{rungs} rungs"
    )


def _run_dir(config: TrainConfig, resume: bool, say: Callable[[str], None]) -> tuple[Path, bool]:
    """The run folder (a resumable one with ``resume``), and whether the run resumes."""
    run_dir = find_resumable(config) if resume else None
    if resume and run_dir is None:
        say("no checkpoint to resume from: starting a new run")
    if run_dir is not None:
        return run_dir, True
    run_dir = Path(config.runs_dir) / run_name(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, False


def _warm_start(
    model: Any,
    venv: Any,
    bench: Workbench,
    run_dir: Path,
    logger: Any,
    say: Callable[[str], None],
    progress: bool,
) -> None:
    """The imitation phase; its model and statistics are kept as ``bc_*`` in the run."""
    bc = bench.config.bc
    assert bc is not None
    teacher = f"the best of {len(bc.candidates)} candidates" if bc.candidates else bc.teacher
    say(f"imitation warm start from {teacher} ...")
    imitation_warm_start(model, venv, bench, logger.record, progress)
    logger.dump(0)
    model.save(run_dir / "bc_model.zip")
    save_normalization(venv, run_dir / "bc_normalization.json")


# --------------------------------------------------------------------------- training


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress_bar: bool = True,
    verbose: int = 0,
    on_status: Callable[[str], None] | None = None,
    callbacks: Sequence[Any] = (),
    on_validation: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Train and return the run folder (model.zip, normalization.json, config.yaml, best/, tb).
    ``callbacks``: more stable-baselines3 callbacks for the PPO phase; ``on_validation``: gets
    the figures of every validation (see :class:`~jbrl.agents.ppo.callbacks
    .ValidationCallback`)."""
    import torch
    from stable_baselines3.common.logger import configure

    say = on_status or (lambda _m: None)
    check_before_training(config)  # bad input ends here, before any folder or solve
    torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    run_dir, resuming = _run_dir(config, resume, say)
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    (run_dir / CONFIG_FILE).write_text(text, "utf-8")
    say(f"run folder {run_dir}")

    say("preparing the scenario ...")
    bench = Workbench.build(config, run_dir)
    if bench.ladder is not None:
        file = run_dir / LADDER_FILES[config.env.action]
        bench.ladder.save(file)
        say(f"{ladder_summary(bench.ladder)} ({file})")
    venv = bench.vec_env(config.n_envs, config.seed)
    logger = configure(str(run_dir), ["tensorboard", "csv"] + (["stdout"] if verbose else []))
    if resuming:
        model, venv, ckpt = _resumed_model(config, run_dir, venv)
        say(f"resumed from {ckpt} ({model.num_timesteps} steps done)")
    else:
        model, venv = _new_model(config, venv, verbose)
    model.set_logger(logger)
    if config.bc is not None and not resuming:
        _warm_start(model, venv, bench, run_dir, logger, say, progress_bar)
    if config.bc is not None and config.freeze_normalization:
        # the warm-started network expects the demos' statistics: keep them fixed for PPO
        venv.training = False
    remaining = config.total_timesteps - (model.num_timesteps if resuming else 0)
    t0, cpu0 = time.time(), time.process_time()
    try:
        if remaining > 0:
            say(f"PPO for {remaining} steps ...")
            model.learn(
                total_timesteps=remaining,
                callback=_callbacks(config, bench, run_dir, text, callbacks, on_validation),
                reset_num_timesteps=not resuming,
                progress_bar=progress_bar,
            )
    finally:
        model.save(run_dir / MODEL_FILE)
        save_normalization(venv, run_dir / NORM_FILE)
        logger.record("time/train_seconds", time.time() - t0)
        logger.record("time/train_cpu_seconds", time.process_time() - cpu0)
        logger.dump(model.num_timesteps)
        logger.close()
        venv.close()
    return run_dir
