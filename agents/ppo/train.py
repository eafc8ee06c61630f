"""Training of the PPO policy: ``jbrl train --config configs/train/ppo_vqa.yaml``.

Two phases, one seed (python, numpy, torch; vectorised env i gets ``seed + i``):

1. **Imitation warm start** (``bc``): a MILP-based teacher (:mod:`jbrl.agents.experts`) drives
   the env; the policy network learns its actions (cross-entropy under the action masks) and the
   value network its discounted returns; optional DAgger rounds relabel the student's own
   states. The MultiDiscrete plan space is too large for PPO to discover good placements from
   scratch in minutes; the warm start puts it next to a sensible controller.
2. **MaskablePPO** (sb3-contrib) on the true reward, with ``VecNormalize`` (statistics saved
   with the model), TensorBoard under ``runs/{scenario}__ppo__{seed}__{timestamp}`` (losses,
   ``serving/*`` figures of the training episodes, ``eval/*`` figures of the policy and of
   MILP-reactive on held-out validation traces, hyperparameters as text), periodic checkpoints
   (``--resume`` continues from the last), the resolved config in the run folder, and the policy
   with the best validation score in ``best/``.
"""

from __future__ import annotations

import math
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jbrl.agents.experts import (
    EpisodeFigures,
    Hysteresis,
    Incremental,
    MilpCache,
    Reactive,
    expert_decider,
    run_episode,
)
from jbrl.agents.ppo import CONFIG_FILE, MODEL_FILE, NORM_FILE, ObsNormalizer, PpoActor
from jbrl.envs.codec import ServingSpec
from jbrl.envs.config import EnvConfig
from jbrl.envs.ladder import LADDER_FILE, PlanLadder
from jbrl.envs.serving import ServingEnv
from jbrl.envs.workload import EVAL_TRACE_SPECS, eval_traces
from jbrl.errors import InputError
from jbrl.planning.ladder import build_ladder
from jbrl.scenario.loader import load_scenario, validation_to_input_error
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PpoHyper(_Frozen):
    """MaskablePPO hyperparameters (sb3-contrib names)."""

    learning_rate: float = 1e-4
    n_steps: int = 512
    batch_size: int = 256
    n_epochs: int = 5
    gamma: float = 0.97
    gae_lambda: float = 0.9
    clip_range: float = 0.1
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = 0.02
    net_arch: list[int] = Field(default_factory=lambda: [128, 128])


class ImitationConfig(_Frozen):
    """Warm start from a MILP-based teacher (see :mod:`jbrl.agents.experts`)."""

    teacher: str = Field("hysteresis", pattern="^(incremental|hysteresis|reactive)$")
    headroom: float = 0.2
    k: int = 3
    down_after: int = 5
    penalty: float = 0.3
    episodes: int = 48
    dagger_rounds: int = 1
    dagger_episodes: int = 24
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    candidates: list[dict[str, float | str]] = Field(
        default_factory=list,
        description="Teacher variants (overrides of teacher/headroom/k/down_after/penalty) tried "
        "on tune_episodes training-distribution episodes; the best mean reward teaches.",
    )
    tune_episodes: int = 8


class EvalConfig(_Frozen):
    """Periodic validation on held-out traces (validation seed, never the test seed 0)."""

    every_steps: int = 20_000
    traces: list[str] = Field(default_factory=lambda: list(EVAL_TRACE_SPECS))
    seed: int = 1
    duration_s: float = 7200.0
    reactive_headroom: float = 0.2


class TrainConfig(_Frozen):
    """``jbrl train`` configuration (YAML)."""

    env: EnvConfig = Field(default_factory=EnvConfig)
    seed: int = 0
    n_envs: int = 4
    total_timesteps: int = 200_000
    threads: int = 1
    ppo: PpoHyper = Field(default_factory=PpoHyper)
    bc: ImitationConfig | None = Field(default_factory=ImitationConfig)
    eval: EvalConfig | None = Field(default_factory=EvalConfig)
    checkpoint_every: int = 20_000
    freeze_normalization: bool = Field(
        True, description="Keep VecNormalize statistics from the warm start fixed during PPO."
    )
    runs_dir: str = "runs"


def load_train_config(path: str | Path | dict[str, Any], **overrides: Any) -> TrainConfig:
    """Read a training config; ``env`` may be a mapping or a path to an env YAML (relative to
    the config file)."""
    file = "<train config>"
    if isinstance(path, dict):
        raw = dict(path)
        base = Path.cwd()
    else:
        file = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text("utf-8")) or {}
        except FileNotFoundError:
            raise InputError("no such file", file=file) from None
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read YAML: {exc}", file=file) from None
        base = Path(path).parent
        if not isinstance(raw, dict):
            raise InputError("a training config must be a YAML mapping", file=file, value=raw)
    if isinstance(raw.get("env"), str):
        env_file = base / raw["env"]
        try:
            raw["env"] = yaml.safe_load(env_file.read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read env config: {exc}", file=str(env_file)) from None
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise validation_to_input_error(exc, file) from None


# --------------------------------------------------------------------------- environment


@dataclass
class Workbench:
    """What every env of a run shares: the scenario, its MILP cache, the env config."""

    config: TrainConfig
    scenario: Scenario
    cache: MilpCache
    ladder: PlanLadder | None = None

    @classmethod
    def build(cls, config: TrainConfig, run_dir: Path | None = None) -> Workbench:
        """Load the scenario; for ``action: ladder`` also the plan ladder: ``env.ladder`` if
        set (relative to ``run_dir``), else ``run_dir``'s ladder.json (a resumed run), else
        built with the MILP (:func:`jbrl.planning.ladder.build_ladder`)."""
        env_cfg = config.env
        base = load_scenario(env_cfg.scenario)
        ladder = None
        if env_cfg.action == "ladder":
            spec = ServingSpec(base, env_cfg.accuracy)  # capacities: load times do not matter
            file = Path(env_cfg.ladder) if env_cfg.ladder else None
            if file is not None and not file.is_absolute() and run_dir is not None:
                file = run_dir / file
            if file is None and run_dir is not None and (run_dir / LADDER_FILE).is_file():
                file = run_dir / LADDER_FILE
            if file is not None:
                ladder = PlanLadder.load(spec, file)
            else:
                ladder = build_ladder(base, env_cfg.accuracy)
        probe = ServingEnv(env_cfg, scenario_obj=base, ladder=ladder)
        cache = MilpCache(probe.scenario, probe.codec)
        return cls(config, probe.scenario, cache, ladder)

    def env(self, **overrides: Any) -> ServingEnv:
        cfg = self.config.env
        if overrides:
            cfg = EnvConfig.model_validate({**cfg.model_dump(), **overrides})
        return ServingEnv(
            cfg,
            scenario_obj=self.scenario,
            initial_plan=self.cache.initial_plan,
            ladder=self.ladder,
        )

    def vec_env(self, n: int, seed: int) -> Any:
        from gymnasium.wrappers import TimeLimit
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv

        steps = self.config.env.episode_steps

        def make(i: int) -> Callable[[], Any]:
            return lambda: Monitor(TimeLimit(self.env(), max_episode_steps=steps))

        venv = DummyVecEnv([make(i) for i in range(n)])
        venv.seed(seed)
        return venv

    def teacher(self, bc: ImitationConfig | None = None) -> Any:
        bc = bc or self.config.bc or ImitationConfig()
        if bc.teacher == "incremental":
            return Incremental(
                self.cache, bc.headroom, k=bc.k, down_after=bc.down_after, penalty=bc.penalty
            )
        if bc.teacher == "hysteresis":
            return Hysteresis(self.cache, bc.headroom, k=bc.k, down_after=bc.down_after)
        return Reactive(self.cache, bc.headroom)


def run_name(config: TrainConfig) -> str:
    scen = Path(config.env.scenario).stem if "/" in config.env.scenario else config.env.scenario
    scen = re.sub(r"[^A-Za-z0-9_.-]", "_", scen)
    return f"{scen}__ppo__{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - SB3 and torch helpers read the legacy global state
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- imitation


@dataclass
class Demo:
    obs: list[np.ndarray]
    actions: list[np.ndarray]
    rewards: list[float]
    episode_ends: list[int]


def collect_demos(
    bench: Workbench,
    teacher: Any,
    episodes: int,
    seed: int,
    student: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Demo:
    """Teacher-labelled transitions; with ``student`` the student acts (DAgger), the teacher
    labels."""
    env = bench.env()
    demo = Demo([], [], [], [])
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        if hasattr(teacher, "reset"):
            teacher.reset()
        for _ in range(bench.config.env.episode_steps):
            assert env.sig is not None
            label = env.codec.canonical_action(teacher(env), env.sig)
            act = label if student is None else student(obs)
            demo.obs.append(obs)
            demo.actions.append(label)
            obs, r, _, _, _ = env.step(act)
            demo.rewards.append(r)
        demo.episode_ends.append(len(demo.obs))
    return demo


def imitation_warm_start(model: Any, venv: Any, bench: Workbench, log: Callable[..., None]) -> None:
    """Fit ``model``'s policy to the teacher (cross-entropy) and its value net to the teacher's
    discounted, normalised returns; sets ``venv``'s normalisation statistics from the demos."""

    bc = bench.config.bc
    assert bc is not None
    t0 = time.time()
    if bc.candidates:
        bc = tune_teacher(bench, bc, log)
    teacher = bench.teacher(bc)
    gamma = bench.config.ppo.gamma
    demo = collect_demos(bench, teacher, bc.episodes, bench.config.seed + 10_000)
    log("bc/demo_seconds", time.time() - t0)
    rounds = [demo]
    _fit(model, venv, rounds, bc, gamma, log, update_stats=True)
    for r in range(bc.dagger_rounds):
        actor = PpoActor(model, ObsNormalizer.of(venv))
        mask = bench.env().codec.masks()
        extra = collect_demos(
            bench,
            teacher,
            bc.dagger_episodes,
            bench.config.seed + 20_000 + 1000 * r,
            student=lambda o, actor=actor, mask=mask: actor.act(o, mask),
        )
        rounds.append(extra)
        _fit(model, venv, rounds, bc, gamma, log, update_stats=False)
    log("bc/seconds", time.time() - t0)


def tune_teacher(
    bench: Workbench, bc: ImitationConfig, log: Callable[..., None]
) -> ImitationConfig:
    """The candidate teacher with the best mean reward on training-distribution episodes."""
    env = bench.env()
    seeds = [bench.config.seed + 30_000 + i for i in range(bc.tune_episodes)]
    best: tuple[float, ImitationConfig] | None = None
    for cand in bc.candidates:
        trial = ImitationConfig.model_validate({**bc.model_dump(), **cand, "candidates": []})
        total = 0.0
        for sd in seeds:
            teacher = bench.teacher(trial)
            if hasattr(teacher, "reset"):
                teacher.reset()
            env.reset(seed=sd)
            for _ in range(bench.config.env.episode_steps):
                _, r, _, _, _ = env.step(teacher(env))
                total += r
        score = total / len(seeds)
        if best is None or score > best[0]:
            best = (score, trial)
    assert best is not None
    chosen = best[1]
    log("bc/teacher_reward", best[0])
    log("bc/teacher_headroom", chosen.headroom)
    log("bc/teacher_k", chosen.k)
    log("bc/teacher_down_after", chosen.down_after)
    return chosen


def _fit(
    model: Any,
    venv: Any,
    rounds: list[Demo],
    bc: ImitationConfig,
    gamma: float,
    log: Callable[..., None],
    update_stats: bool,
) -> None:
    import torch

    obs = np.array([o for d in rounds for o in d.obs], dtype=np.float32)
    acts = np.array([a for d in rounds for a in d.actions], dtype=np.int64)
    if update_stats:
        venv.obs_rms.update(obs)
        # discounted-return statistics as VecNormalize keeps them, from the teacher's rewards
        for d in rounds:
            start = 0
            for end in d.episode_ends:
                ret = 0.0
                seq = []
                for r in d.rewards[start:end]:
                    ret = ret * gamma + r
                    seq.append(ret)
                venv.ret_rms.update(np.array(seq))
                start = end
    scale = math.sqrt(float(venv.ret_rms.var) + venv.epsilon)
    targets: list[float] = []
    for d in rounds:
        start = 0
        for end in d.episode_ends:
            g = 0.0
            out = []
            for r in reversed(d.rewards[start:end]):
                g = r / scale + gamma * g
                out.append(g)
            targets.extend(reversed(out))
            start = end
    norm = ObsNormalizer.of(venv)
    x = torch.as_tensor(norm(obs))
    a = torch.as_tensor(acts)
    v = torch.as_tensor(np.array(targets, dtype=np.float32))
    mask = torch.as_tensor(np.tile(venv.env_method("action_masks", indices=[0])[0], (len(obs), 1)))
    # "apply" labels (a plan change) are rare next to "keep": weight them up so that the
    # student learns when to change, not only to keep (inverse-frequency, square-rooted)
    apply_ = acts[:, 0] == 0
    frac = float(apply_.mean()) if len(acts) else 0.0
    w_apply = math.sqrt((1.0 - frac) / frac) if 0.0 < frac < 1.0 else 1.0
    weights = torch.as_tensor(np.where(apply_, w_apply, 1.0).astype(np.float32))
    policy = model.policy
    opt = torch.optim.Adam(policy.parameters(), lr=bc.learning_rate)
    n = len(obs)
    rng = np.random.default_rng(0)
    for epoch in range(bc.epochs):
        perm = rng.permutation(n)
        tot_pi = tot_v = 0.0
        for i in range(0, n, bc.batch_size):
            idx = torch.as_tensor(perm[i : i + bc.batch_size])
            values, logp, _ = policy.evaluate_actions(x[idx], a[idx], action_masks=mask[idx])
            wb = weights[idx]
            loss_pi = -(wb * logp).sum() / wb.sum()
            loss_v = torch.nn.functional.mse_loss(values.flatten(), v[idx])
            loss = loss_pi + 0.5 * loss_v
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            tot_pi += float(loss_pi.detach()) * len(idx)
            tot_v += float(loss_v.detach()) * len(idx)
        if epoch == bc.epochs - 1:
            with torch.no_grad():
                dist = policy.get_distribution(x, action_masks=mask.numpy())
                pred = dist.get_actions(deterministic=True)
                same = (pred == a).all(dim=1).float()
                agree = float(same.mean())
                sel = torch.as_tensor(apply_)
                agree_apply = float(same[sel].mean()) if bool(sel.any()) else math.nan
            log("bc/policy_loss", tot_pi / n)
            log("bc/value_loss", tot_v / n)
            log("bc/exact_action_agreement", agree)
            log("bc/exact_agreement_on_changes", agree_apply)
            log("bc/change_fraction", frac)
            log("bc/samples", n)


# --------------------------------------------------------------------------- callbacks


def _callbacks() -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class ServingMetricsCallback(BaseCallback):
        """``serving/*``: cost per hour, SLO attainment, accuracy, reconfigurations per hour of
        the training episodes, per rollout."""

        def _on_rollout_start(self) -> None:
            self.sums = dict.fromkeys(
                ("dollars", "arrivals", "finished", "within", "reconf", "acc", "steps", "rep"),
                0.0,
            )

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", []):
                if "dollars" not in info:
                    continue
                s = self.sums
                s["dollars"] += info["dollars"]
                s["arrivals"] += info["arrivals"]
                s["finished"] += info["finished"]
                s["within"] += info["within_slo"]
                s["reconf"] += info["reconfigurations"]
                s["acc"] += info["accuracy"] * info["arrivals"]
                s["rep"] += info["repairs"]
                s["steps"] += 1
            return True

        def _on_rollout_end(self) -> None:
            s = self.sums
            if s["steps"] <= 0:
                return
            interval = self.training_env.get_attr("config", indices=[0])[0].interval_s
            hours = s["steps"] * interval / 3600.0
            self.logger.record("serving/cost_per_hour", s["dollars"] / hours)
            if s["finished"] > 0:
                self.logger.record("serving/slo_attainment", s["within"] / s["finished"])
            if s["arrivals"] > 0:
                self.logger.record("serving/accuracy", s["acc"] / s["arrivals"])
            self.logger.record("serving/reconfigurations_per_hour", s["reconf"] / hours)
            self.logger.record("serving/repairs_per_step", s["rep"] / s["steps"])

    class ValidationCallback(BaseCallback):
        """Every ``every`` steps: the policy (deterministic) and MILP-reactive on the held-out
        validation traces (fluid); ``eval/<trace>/<figure>`` and ``eval/mean/*``; the best
        policy by validation score (the env's cost: $ + weighted late requests) goes to
        ``best/``."""

        def __init__(self, bench: Workbench, run_dir: Path, every: int) -> None:
            super().__init__()
            self.bench = bench
            self.run_dir = run_dir
            self.every = every
            self.next_at = 0
            self.best = math.inf
            ev = bench.config.eval
            assert ev is not None
            traces = eval_traces(bench.scenario, ev.duration_s, ev.seed, ev.traces)
            # with a load-time mix, every validation trace runs once per load-time setting
            cfg = bench.config.env
            mix = cfg.load_time_mix or [cfg.load_time_s]
            self.runs: dict[str, tuple[ServingEnv, Trace]] = {}
            for x in dict.fromkeys(mix):
                env = bench.env(obs_noise=0.0, load_time_mix=[], load_time_s=x)
                for name, tr in traces.items():
                    key = name if len(mix) == 1 else f"{name}@{'own' if x is None else f'{x:g}s'}"
                    self.runs[key] = (env, tr)
            self.reactive: dict[str, EpisodeFigures] = {}

        def _score(self, f: EpisodeFigures) -> float:
            w = self.bench.config.env.reward
            late = f.finished - f.within_slo
            return (w.dollar * f.dollars + w.slo_miss * late) / max(f.hours, 1e-9)

        def _on_training_start(self) -> None:
            ev = self.bench.config.eval
            assert ev is not None
            self.next_at = self.num_timesteps
            for name, (env, tr) in self.runs.items():
                ex = Reactive(self.bench.cache, ev.reactive_headroom)
                self.reactive[name] = run_episode(env, expert_decider(ex), tr)

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_at:
                self.next_at = self.num_timesteps + self.every
                self.evaluate()
            return True

        def _on_training_end(self) -> None:
            self.evaluate()

        def evaluate(self) -> None:
            venv = self.model.get_env()
            actor = PpoActor(self.model, ObsNormalizer.of(venv))
            scores = []
            keys = ("cost_per_hour", "slo_attainment", "accuracy", "reconfigurations")
            means: dict[str, list[float]] = {k: [] for k in keys}
            for name, (env, tr) in self.runs.items():
                mask = env.codec.masks()
                f = run_episode(env, lambda _e, o, m=mask: actor.act(o, m), tr)
                scores.append(self._score(f))
                for key, val in f.to_dict().items():
                    if key in keys:
                        self.logger.record(f"eval/{name}/{key}", val)
                        means[key].append(val)
                for key, val in self.reactive[name].to_dict().items():
                    if key in keys:
                        self.logger.record(f"eval_milp_reactive/{name}/{key}", val)
            for key, vals in means.items():
                self.logger.record(f"eval/mean/{key}", float(np.mean(vals)))
            score = float(np.mean(scores))
            self.logger.record("eval/score", score)
            if score < self.best:
                self.best = score
                best = self.run_dir / "best"
                best.mkdir(parents=True, exist_ok=True)
                self.model.save(best / MODEL_FILE)
                venv.save(str(best / NORM_FILE))
                shutil.copy(self.run_dir / CONFIG_FILE, best / CONFIG_FILE)
                if (self.run_dir / LADDER_FILE).is_file():
                    shutil.copy(self.run_dir / LADDER_FILE, best / LADDER_FILE)
                self.logger.record("eval/best_score", score)
            self.logger.dump(self.num_timesteps)

    class HparamsCallback(BaseCallback):
        """Hyperparameters (the resolved config) as TensorBoard text."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

        def _on_training_start(self) -> None:
            from stable_baselines3.common.logger import TensorBoardOutputFormat

            for fmt in self.logger.output_formats:
                if isinstance(fmt, TensorBoardOutputFormat):
                    fmt.writer.add_text("hyperparameters", self.text, self.num_timesteps)
                    fmt.writer.flush()

        def _on_step(self) -> bool:
            return True

    return ServingMetricsCallback, ValidationCallback, HparamsCallback


# --------------------------------------------------------------------------- training


def latest_checkpoint(run_dir: Path) -> tuple[Path, Path] | None:
    """(model, vecnormalize) of the highest-step checkpoint in ``run_dir/checkpoints``."""
    best: tuple[int, Path, Path] | None = None
    for p in (run_dir / "checkpoints").glob("ppo_*_steps.zip"):
        m = re.fullmatch(r"ppo_(\d+)_steps\.zip", p.name)
        norm = run_dir / "checkpoints" / f"ppo_vecnormalize_{m.group(1)}_steps.pkl" if m else None
        if (
            m
            and norm is not None
            and norm.is_file()
            and (best is None or int(m.group(1)) > best[0])
        ):
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


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress_bar: bool = True,
    verbose: int = 0,
    on_status: Callable[[str], None] | None = None,
) -> Path:
    """Train and return the run folder (model.zip, vecnormalize.pkl, config.yaml, best/, tb)."""
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecNormalize

    say = on_status or (lambda _m: None)
    torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    run_dir: Path | None = find_resumable(config) if resume else None
    if resume and run_dir is None:
        say("no checkpoint to resume from: starting a new run")
    resuming = run_dir is not None
    if run_dir is None:
        run_dir = Path(config.runs_dir) / run_name(config)
        run_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    (run_dir / CONFIG_FILE).write_text(text, "utf-8")
    say(f"run folder {run_dir}")

    say("preparing the scenario and the MILP cache ...")
    bench = Workbench.build(config, run_dir)
    if bench.ladder is not None:
        bench.ladder.save(run_dir / LADDER_FILE)
        say(f"plan ladder: {len(bench.ladder)} rungs ({run_dir / LADDER_FILE})")
    venv = bench.vec_env(config.n_envs, config.seed)
    hp = config.ppo
    logger = configure(str(run_dir), ["tensorboard", "csv"] + (["stdout"] if verbose else []))
    if resuming:
        ckpt, norm_file = latest_checkpoint(run_dir)  # type: ignore[misc]
        venv = VecNormalize.load(str(norm_file), venv)
        model = MaskablePPO.load(str(ckpt), env=venv, device="cpu")
        say(f"resumed from {ckpt.name} ({model.num_timesteps} steps done)")
    else:
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
    model.set_logger(logger)

    def log(key: str, value: float) -> None:
        logger.record(key, value)

    if config.bc is not None and not resuming:
        say("imitation warm start from the MILP teacher ...")
        imitation_warm_start(model, venv, bench, log)
        logger.dump(0)
        model.save(run_dir / "bc_model.zip")
        venv.save(str(run_dir / "bc_vecnormalize.pkl"))
    if config.bc is not None and config.freeze_normalization:
        # the warm-started network expects the demos' statistics: keep them fixed for PPO
        venv.training = False
    serving_cb, validation_cb, hparams_cb = _callbacks()
    callbacks: list[Any] = [
        hparams_cb(f"```yaml\n{text}\n```"),
        serving_cb(),
        CheckpointCallback(
            save_freq=max(1, config.checkpoint_every // config.n_envs),
            save_path=str(run_dir / "checkpoints"),
            name_prefix="ppo",
            save_vecnormalize=True,
        ),
    ]
    if config.eval is not None:
        callbacks.append(validation_cb(bench, run_dir, config.eval.every_steps))
    remaining = config.total_timesteps - (model.num_timesteps if resuming else 0)
    t0 = time.time()
    try:
        if remaining > 0:
            say(f"PPO for {remaining} steps ...")
            model.learn(
                total_timesteps=remaining,
                callback=CallbackList(callbacks),
                reset_num_timesteps=not resuming,
                progress_bar=progress_bar,
            )
    finally:
        model.save(run_dir / MODEL_FILE)
        venv.save(str(run_dir / NORM_FILE))
        logger.record("time/train_seconds", time.time() - t0)
        logger.dump(model.num_timesteps)
        logger.close()
        venv.close()
    return run_dir
