"""Training sweeps on Ray Tune: ``jbrl sweep --config configs/sweep/ppo_vqa_reward.yaml``.

Every trial is one ``jbrl train`` run (:func:`jbrl.agents.ppo.train.train`) of the sweep's base
config with the trial's seed and values (:mod:`~jbrl.agents.ppo.sweep_config`), with its own run
folder (TensorBoard logs, checkpoints, ``best/``) under ``<sweep>/trials/<trial id>/``. Each
validation of a trial (on the validation traces of the base's ``eval`` section, scored with the
sweep's weights) is reported to Tune; a trial's result is its best validation, whose policy is
its ``best/`` folder. The sweep's folder::

    <runs_dir>/<name>/
      sweep.yaml            the resolved sweep config
      tune/                 Ray Tune's experiment state (what --resume restores)
      trials/<trial id>/    each trial's jbrl train run folder
      results.json, results.md   per trial: validation $/h, SLO, model loads, score, wall time
      best/                 the best trial's policy folder, ready to ship (ppo:path=<sweep>/best)
      ray-session           a local Ray's session files while it runs

Each trial asks Ray for ``resources.cpu`` CPUs (1) and trains with the base's ``threads`` torch
threads (1). Ray runs locally (127.0.0.1, session files in the sweep folder) or on an existing
cluster (``address``); there every node needs jbrl installed and the sweep folder must be on a
file system all nodes share at the same path, since trials write their run folders there.

``resume=True`` restores an interrupted sweep from ``tune/`` (Tune's own state files, pickles
that Tune wrote there: only resume sweep folders you made): finished trials are kept, unfinished
and failed ones run again, each continuing its ``jbrl train`` run from its last checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jbrl.agents.ppo.callbacks import VALIDATION_FILE
from jbrl.agents.ppo.sweep_config import SweepConfig
from jbrl.errors import InputError
from jbrl.jsonable import jsonable
from jbrl.raycluster import RayCluster, require_ray

TUNE_DIR = "tune"
TRIALS_DIR = "trials"
BEST_DIR = "best"
RESULTS_FILE = "results.json"
TABLE_FILE = "results.md"
METRIC = "best_score"
"""What Tune ranks trials by: the best validation score so far (lower is better)."""


@dataclass
class TrialResult:
    """One trial: its values, its best validation's figures and where its run folder is."""

    trial: str
    params: dict[str, Any]
    status: str
    score: float = math.nan
    cost_per_hour: float = math.nan
    slo_attainment: float = math.nan
    reconfigurations: float = math.nan
    steps: int = 0
    wall_s: float = math.nan
    run_dir: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dict(self.__dict__))


@dataclass
class SweepResult:
    """Every trial, the best one, and the sweep's folder."""

    sweep_dir: Path
    trials: list[TrialResult]
    best: TrialResult | None
    wall_s: float
    expected: int = 0  # trials the sweep makes (fewer finished: interrupted, or failures)

    @property
    def complete(self) -> bool:
        """Whether every trial of the sweep finished."""
        return sum(t.status == "done" for t in self.trials) >= self.expected

    def to_dict(self) -> dict[str, Any]:
        return {
            "sweep_dir": str(self.sweep_dir),
            "best": None if self.best is None else self.best.trial,
            "best_policy": None if self.best is None else str(self.sweep_dir / BEST_DIR),
            "wall_s": self.wall_s,
            "expected_trials": self.expected,
            "trials": [t.to_dict() for t in self.trials],
        }


# --------------------------------------------------------------------------- one trial


def _metrics(result: dict[str, Any]) -> dict[str, Any]:
    """A validation's figures as flat Tune metrics."""
    mean = result["mean"]
    return {
        "score": result["score"],
        METRIC: result["best_score"],
        "steps": result["steps"],
        **{k: (v if math.isfinite(v) else None) for k, v in mean.items()},
    }


def run_trial(params: dict[str, Any], sweep: SweepConfig, sweep_dir: str) -> None:
    """Tune's function trainable: one ``jbrl train`` run; reports every validation, then the
    trial's best (with its run folder)."""
    from ray import tune

    from jbrl.agents.ppo.train import train

    trial_dir = Path(sweep_dir) / TRIALS_DIR / tune.get_context().get_trial_id()
    config = sweep.trial_config(params, trial_dir)
    run_dir = train(
        config,
        resume=True,  # a restored trial continues its run from the last checkpoint
        progress_bar=False,
        on_validation=lambda r: tune.report(_metrics(r)),
    )
    best = json.loads((run_dir / BEST_DIR / VALIDATION_FILE).read_text("utf-8"))
    tune.report({**_metrics({**best, "best_score": best["score"]}), "run_dir": str(run_dir)})


# --------------------------------------------------------------------------- the sweep


def param_space(sweep: SweepConfig) -> dict[str, Any]:
    """Tune's search space: a grid over seeds and ``grid``, distributions for ``search``."""
    from ray import tune

    space: dict[str, Any] = {}
    if sweep.seeds:
        space["seed"] = tune.grid_search(list(sweep.seeds))
    for key, values in sweep.grid.items():
        space[key] = tune.grid_search(list(values))
    for key, dist in sweep.search.items():
        kind, args = next(iter(dist.items()))
        space[key] = getattr(tune, kind)(args) if kind == "choice" else getattr(tune, kind)(*args)
    return space


def _tuner(
    sweep: SweepConfig, sweep_dir: Path, resume: bool, callbacks: Sequence[Any]
) -> tuple[Any, bool]:
    """A new Tuner, or the interrupted one restored; and whether it was restored."""
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, sweep=sweep, sweep_dir=str(sweep_dir)),
        {"cpu": sweep.resources.cpu},
    )
    state = sweep_dir / TUNE_DIR
    if resume and tune.Tuner.can_restore(str(state)):
        return tune.Tuner.restore(
            str(state), trainable, resume_unfinished=True, restart_errored=True
        ), True
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(sweep),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="min",
            num_samples=sweep.num_samples,
            max_concurrent_trials=sweep.max_concurrent,
            trial_name_creator=lambda t: t.trial_id,
            trial_dirname_creator=lambda t: t.trial_id,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(sweep_dir),
            callbacks=list(callbacks),
            verbose=0,
        ),
    )
    return tuner, False


def run_sweep(
    sweep: SweepConfig,
    *,
    address: str | None = None,
    resume: bool = False,
    on_status: Callable[[str], None] | None = None,
    callbacks: Sequence[Any] = (),
) -> SweepResult:
    """Run (or, with ``resume``, continue) the sweep; see the module docstring. ``on_status``
    gets progress lines (Tune pickles it with the experiment: a module-level function);
    ``callbacks``: more Ray Tune callbacks."""
    require_ray("jbrl sweep")
    say = on_status or (lambda _m: None)
    sweep_dir = (Path(sweep.runs_dir) / sweep.name).absolute()
    if not resume and (sweep_dir / TUNE_DIR).exists():
        raise InputError(
            f"a sweep named {sweep.name!r} already exists in {sweep_dir}: pass --resume to "
            "continue it, or give the sweep another name",
            field="name",
            value=sweep.name,
        )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False)
    (sweep_dir / "sweep.yaml").write_text(text, "utf-8")
    t0 = time.perf_counter()
    cluster = RayCluster(address, run_dir=sweep_dir, keep_session=False)
    # Tune's legacy reporter at verbose=0 is silent; its new one prints paths that vanish
    with cluster, _environment("RAY_AIR_NEW_OUTPUT", "0"):
        tuner, restored = _tuner(sweep, sweep_dir, resume, [_progress_callback(say), *callbacks])
        what = "resuming" if restored else "starting"
        say(f"{what} sweep {sweep.name}: {sweep.trial_count} trials on {cluster.describe()}")
        grid = tuner.fit()
    trials = [_trial_result(r) for r in grid]
    trials.sort(key=lambda t: t.trial)
    best = _ship_best(trials, sweep_dir)
    result = SweepResult(sweep_dir, trials, best, time.perf_counter() - t0, sweep.trial_count)
    text = json.dumps(result.to_dict(), indent=1, allow_nan=False)
    (sweep_dir / RESULTS_FILE).write_text(text + "\n", "utf-8")
    (sweep_dir / TABLE_FILE).write_text(markdown_table(result) + "\n", "utf-8")
    return result


@contextmanager
def _environment(key: str, value: str) -> Iterator[None]:
    """``os.environ[key] = value`` for the duration of the block."""
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _trial_result(r: Any) -> TrialResult:
    """A finished (or failed) Tune trial as a :class:`TrialResult`."""
    m = dict(r.metrics or {})
    params = {k: v for k, v in (r.config or {}).items()}
    trial = str(m.get("trial_id") or Path(r.path).name)
    done = r.error is None and m.get("run_dir") is not None

    def num(key: str) -> float:
        v = m.get(key)
        return float(v) if isinstance(v, (int, float)) else math.nan

    return TrialResult(
        trial=trial,
        params=params,
        status="done" if done else ("error" if r.error is not None else "unfinished"),
        score=num("score") if done else num(METRIC),
        cost_per_hour=num("cost_per_hour"),
        slo_attainment=num("slo_attainment"),
        reconfigurations=num("reconfigurations"),
        steps=int(num("steps")) if math.isfinite(num("steps")) else 0,
        wall_s=num("time_total_s"),
        run_dir=m.get("run_dir"),
        error=None if r.error is None else f"{type(r.error).__name__}: {r.error}"[:500],
    )


def _ship_best(trials: list[TrialResult], sweep_dir: Path) -> TrialResult | None:
    """The finished trial with the lowest validation score; its ``best/`` policy folder is
    copied to ``<sweep>/best``."""
    done = [t for t in trials if t.status == "done" and math.isfinite(t.score)]
    if not done:
        return None
    best = min(done, key=lambda t: (t.score, t.trial))
    assert best.run_dir is not None
    target = sweep_dir / BEST_DIR
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(Path(best.run_dir) / BEST_DIR, target)
    return best


def table(result: SweepResult) -> tuple[list[str], list[list[str]]]:
    """The results table's header and rows: one row per trial, the best marked."""
    keys = sorted({k for t in result.trials for k in t.params})
    head = ["trial", *keys, "val $/h", "val SLO", "model loads", "score", "steps", "wall s", ""]
    rows = []
    for t in result.trials:
        mark = "best" if result.best is not None and t.trial == result.best.trial else t.status
        cells = [t.trial, *(str(t.params.get(k, "")) for k in keys)]
        cells += [_f(t.cost_per_hour, ".3f"), _f(t.slo_attainment, ".4f")]
        cells += [_f(t.reconfigurations, ".1f"), _f(t.score, ".3f"), str(t.steps)]
        rows.append([*cells, _f(t.wall_s, ".0f"), mark])
    return head, rows


def markdown_table(result: SweepResult) -> str:
    """:func:`table` in Markdown."""
    head, rows = table(result)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _f(x: float, spec: str) -> str:
    return format(x, spec) if math.isfinite(x) else "-"


def _progress_callback(say: Callable[[str], None]) -> Any:
    """A Ray Tune callback that says when each trial ends (and its best score)."""
    from ray.tune import Callback

    class Progress(Callback):
        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **_: Any
        ) -> None:
            score = (trial.last_result or {}).get(METRIC)
            say(f"trial {trial.trial_id} finished: best validation score {score}")

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **_: Any) -> None:
            say(f"trial {trial.trial_id} failed (see {trial.local_path})")

    return Progress()
