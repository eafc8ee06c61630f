"""Training callbacks (stable-baselines3 ``BaseCallback``s): the serving figures of the training
episodes, periodic validation on held-out traces through the one run loop, and the resolved
config as TensorBoard text. Importing this module imports stable-baselines3."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from jbrl.agents.policy import Policy, get_policy, parse_policy_spec, policy_decider
from jbrl.agents.ppo.files import CONFIG_FILE, MODEL_FILE, NORM_FILE, save_normalization
from jbrl.agents.ppo.policy import ObsNormalizer, PpoPolicy
from jbrl.agents.ppo.workbench import Workbench
from jbrl.envs.config import EnvConfig, RewardWeights
from jbrl.envs.serving import LADDER_FILES
from jbrl.envs.workload import eval_traces
from jbrl.jsonable import jsonable
from jbrl.planning.coverage import variants_of
from jbrl.planning.plan import Plan
from jbrl.scenario.derive import with_load_time
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace
from jbrl.sim import SimConfig, make_simulator
from jbrl.sim.base import IntervalMetrics, Simulator
from jbrl.sim.rollout import BaseObserver, RunAccumulator, Totals, rollout

FIGURES = ("cost_per_hour", "slo_attainment", "accuracy", "reconfigurations")
"""The figures logged per validation run (``eval/<trace>/<figure>``) and averaged."""
VALIDATION_FILE = "validation.json"
"""The figures of the policy in ``best/`` (written with it): steps, score, per-trace figures."""


# --------------------------------------------------------------------------- training episodes


class ServingMetricsCallback(BaseCallback):
    """``serving/*``: cost per hour, SLO attainment, accuracy, reconfigurations per hour and
    repairs per step of the training episodes, per rollout (totals of the intervals the envs
    report in ``info["metrics"]``); with the env's SLO shield on, ``serving/shield_*``: the
    share of steps whose plan the shield replaced, and those it could not fix (``info["shield"]``).
    """

    def _on_rollout_start(self) -> None:
        self.acc = RunAccumulator()
        self.accuracy_sum = self.repairs = 0.0
        self.steps = self.shielded = self.interventions = self.missed = 0

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            m = info.get("metrics")
            if not isinstance(m, IntervalMetrics):
                continue
            self.acc.add(m)
            self.accuracy_sum += info["accuracy"] * m.arrivals
            self.repairs += info["repairs"]
            self.steps += 1
            shield = info.get("shield")
            if isinstance(shield, dict):
                self.shielded += 1
                self.interventions += int(bool(shield["intervened"]))
                self.missed += int(bool(shield["missed"]))
        return True

    def _on_rollout_end(self) -> None:
        if self.steps <= 0:
            return
        t = self.acc.totals()
        hours = t.duration / 3600.0
        self.logger.record("serving/cost_per_hour", t.dollars_per_hour)
        if math.isfinite(t.slo_attainment):
            self.logger.record("serving/slo_attainment", t.slo_attainment)
        if t.arrivals > 0:
            self.logger.record("serving/accuracy", self.accuracy_sum / t.arrivals)
        self.logger.record("serving/reconfigurations_per_hour", t.reconfigurations / hours)
        self.logger.record("serving/repairs_per_step", self.repairs / self.steps)
        if self.shielded:
            self.logger.record("serving/shield_interventions", self.interventions)
            self.logger.record(
                "serving/shield_intervention_rate", self.interventions / self.shielded
            )
            self.logger.record("serving/shield_missed", self.missed)


# --------------------------------------------------------------------------- validation


@dataclass
class ValidationRun:
    """Totals of one validation run and the arrival-weighted accuracy of its plans."""

    totals: Totals
    accuracy: float

    def figures(self) -> dict[str, float]:
        t = self.totals
        return {
            "cost_per_hour": t.dollars_per_hour,
            "slo_attainment": t.slo_attainment,
            "accuracy": self.accuracy,
            "reconfigurations": float(t.reconfigurations),
        }

    def score(self, w: RewardWeights) -> float:
        """Cost per hour by the weights ``w``: $ + weighted late (or dropped) requests."""
        t = self.totals
        late = t.missed_slo
        return (w.dollar * t.dollars + w.slo_miss * late) / max(t.duration / 3600.0, 1e-9)


class _Accuracy(BaseObserver):
    """Arrival-weighted accuracy of the plans in force."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.sum = self.arrivals = 0.0
        self._of: dict[int, tuple[Plan, float]] = {}  # keeps each plan alive with its id

    def on_interval(self, metrics: IntervalMetrics, plan: Plan, simulator: Simulator) -> None:
        if id(plan) not in self._of:
            acc = self.scenario.accuracy_of(variants_of(self.scenario, plan))
            self._of[id(plan)] = (plan, math.nan if acc is None else float(acc))
        self.sum += self._of[id(plan)][1] * metrics.arrivals
        self.arrivals += metrics.arrivals

    @property
    def accuracy(self) -> float:
        return self.sum / self.arrivals if self.arrivals > 0 else math.nan


def validation_run(
    policy: Policy, scenario: Scenario, trace: Trace, env: EnvConfig, seed: int
) -> ValidationRun:
    """``policy`` over ``trace`` in the env's simulator, through :func:`jbrl.sim.rollout
    .rollout`."""
    policy.reset(scenario, seed)
    acc = _Accuracy(scenario)
    result = rollout(
        make_simulator(env.simulator, SimConfig(service=env.service)),
        scenario,
        trace,
        policy_decider(policy, scenario, trace),
        env.interval_s,
        seed=seed,
        observers=[acc],
    )
    return ValidationRun(result.totals, acc.accuracy)


class ValidationCallback(BaseCallback):
    """Every ``every`` steps: the policy (deterministic, behind the ``Policy`` interface as
    :class:`PpoPolicy` deploys it) on the held-out validation traces, once per load-time
    setting of ``env.load_time_mix``; ``eval/<trace>/<figure>``, ``eval/mean/*`` and
    ``eval/score`` (the env's cost per hour: $ + weighted late requests). The baseline policy
    (``eval.baseline``, unless null) runs once at the start (``eval_<name>/<trace>/<figure>``). The policy
    with the best score goes to ``best/``, its figures to ``best/validation.json``.
    ``on_result`` gets every validation's figures (:meth:`result`), e.g. to report to Ray Tune."""

    def __init__(
        self,
        bench: Workbench,
        run_dir: Path,
        every: int,
        on_result: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        self.bench = bench
        self.run_dir = run_dir
        self.every = every
        self.on_result = on_result
        self.next_at = 0
        ev = bench.config.eval
        assert ev is not None
        self.seed = ev.seed
        self.weights = ev.score or bench.config.env.reward
        self.best = self._saved_best()  # a resumed run keeps the best it had
        traces = eval_traces(bench.scenario, ev.duration_s, ev.seed, ev.traces)
        cfg = bench.config.env
        mix = cfg.load_time_mix or [cfg.load_time_s]
        self.runs: dict[str, tuple[Scenario, Trace]] = {}
        for x in dict.fromkeys(mix):
            scenario = with_load_time(bench.scenario, x, field="load_time_mix")
            for name, tr in traces.items():
                key = name if len(mix) == 1 else f"{name}@{'own' if x is None else f'{x:g}s'}"
                self.runs[key] = (scenario, tr)

    def _on_training_start(self) -> None:
        ev = self.bench.config.eval
        assert ev is not None
        self.next_at = self.num_timesteps
        if ev.baseline is None:
            return
        prefix = "eval_" + parse_policy_spec(ev.baseline)[0].replace("-", "_")
        baseline = get_policy(ev.baseline)
        for name, (scenario, tr) in self.runs.items():
            run = validation_run(baseline, scenario, tr, self.bench.config.env, self.seed)
            for key, val in run.figures().items():
                self.logger.record(f"{prefix}/{name}/{key}", val)

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_at:
            self.next_at = self.num_timesteps + self.every
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        self.evaluate()

    def evaluate(self) -> None:
        """Validate the model as it is now; keep it in ``best/`` if it scores best so far."""
        venv = self.model.get_env()
        env_cfg = self.bench.config.env
        policy = PpoPolicy.of_model(self.model, ObsNormalizer.of(venv), env_cfg, self.bench.ladder)
        scores = []
        per_trace: dict[str, dict[str, float]] = {}
        for name, (scenario, tr) in self.runs.items():
            run = validation_run(policy, scenario, tr, env_cfg, self.seed)
            scores.append(run.score(self.weights))
            per_trace[name] = run.figures()
            for key, val in per_trace[name].items():
                self.logger.record(f"eval/{name}/{key}", val)
        means = {k: float(np.mean([f[k] for f in per_trace.values()])) for k in FIGURES}
        for key, val in means.items():
            self.logger.record(f"eval/mean/{key}", val)
        score = float(np.mean(scores))
        self.logger.record("eval/score", score)
        result = self.result(score, means, per_trace)
        if score < self.best:
            self.best = score
            self._save_best(venv, result)
            self.logger.record("eval/best_score", score)
        self.logger.dump(self.num_timesteps)
        if self.on_result is not None:
            self.on_result({**result, "best_score": self.best})

    def result(
        self, score: float, means: dict[str, float], per_trace: dict[str, dict[str, float]]
    ) -> dict[str, Any]:
        """One validation's figures: steps, score (and its weights), means, per trace."""
        return {
            "steps": int(self.num_timesteps),
            "score": score,
            "score_weights": self.weights.model_dump(),
            "mean": means,
            "traces": per_trace,
        }

    def _saved_best(self) -> float:
        """The score of the policy in ``best/`` if it was scored with the same weights."""
        try:
            saved = json.loads((self.run_dir / "best" / VALIDATION_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            return math.inf
        if saved.get("score_weights") != self.weights.model_dump():
            return math.inf
        score = saved.get("score")
        return float(score) if isinstance(score, (int, float)) else math.inf

    def _save_best(self, venv: Any, result: dict[str, Any]) -> None:
        best = self.run_dir / "best"
        best.mkdir(parents=True, exist_ok=True)
        text = json.dumps(jsonable(result), indent=1, allow_nan=False)
        (best / VALIDATION_FILE).write_text(text + "\n", "utf-8")
        self.model.save(best / MODEL_FILE)
        save_normalization(venv, best / NORM_FILE)
        shutil.copy(self.run_dir / CONFIG_FILE, best / CONFIG_FILE)
        name = LADDER_FILES.get(self.bench.config.env.action)
        if name is not None and (self.run_dir / name).is_file():
            shutil.copy(self.run_dir / name, best / name)


# --------------------------------------------------------------------------- checkpoints


class NormalizationCheckpoint(BaseCallback):
    """``{prefix}_normalization_{steps}_steps.json`` beside stable-baselines3's
    ``CheckpointCallback`` model of the same step (same ``save_freq``): the statistics as JSON,
    not as the pickle ``save_vecnormalize`` would write."""

    def __init__(self, save_freq: int, save_path: Path, name_prefix: str = "ppo") -> None:
        super().__init__()
        self.save_freq = save_freq
        self.save_path = Path(save_path)
        self.name_prefix = name_prefix

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            vn = self.model.get_vec_normalize_env()
            if vn is not None:
                self.save_path.mkdir(parents=True, exist_ok=True)
                name = f"{self.name_prefix}_normalization_{self.num_timesteps}_steps.json"
                save_normalization(vn, self.save_path / name)
        return True


# --------------------------------------------------------------------------- hyperparameters


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
