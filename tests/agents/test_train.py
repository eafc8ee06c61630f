"""Training smoke run (imitation + a few hundred PPO steps, resume), train-twice determinism,
the imitation teacher (a rule policy behind an adapter), and the PPO policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from jbrl.agents.policy import ControlState, get_policy
from jbrl.agents.ppo import PpoPolicy
from jbrl.agents.ppo.config import DEFAULT_TEACHER, load_train_config
from jbrl.agents.ppo.train import latest_checkpoint, train
from jbrl.errors import InputError
from jbrl.planning.cost import evaluate_plan
from jbrl.scenario import Scenario, load_scenario


def smoke_config(tmp_path: Path, tiny: Scenario) -> dict:
    scen = tmp_path / "tiny.yaml"
    scen.write_text(yaml.safe_dump(tiny.model_dump(by_alias=True, exclude_none=True)))
    return {
        "seed": 3,
        "n_envs": 2,
        "total_timesteps": 256,
        "checkpoint_every": 128,
        "runs_dir": str(tmp_path / "runs"),
        "env": {"scenario": str(scen), "accuracy": 65.0, "episode_steps": 16, "history": 3},
        "ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 2, "net_arch": [32, 32]},
        "bc": {"episodes": 2, "dagger_rounds": 1, "dagger_episodes": 1, "epochs": 2},
        "eval": {"every_steps": 128, "duration_s": 600},
    }


def _assert_scalars_readable(run: Path, tags: tuple[str, ...]) -> None:
    """SB3's TensorBoard scalars are classic scalars: ``EventAccumulator.Scalars`` reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    for tag in tags:
        assert tag in acc.Tags()["scalars"], tag
        assert acc.Scalars(tag), tag


def test_train_smoke_resume_and_policy(tmp_path: Path, tiny: Scenario) -> None:
    raw = smoke_config(tmp_path, tiny)
    cfg = load_train_config(raw)
    run = train(cfg, progress_bar=False)
    for name in ("model.zip", "normalization.json", "config.yaml", "progress.csv"):
        assert (run / name).is_file(), name
    assert (run / "best" / "model.zip").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    _assert_scalars_readable(run, ("serving/cost_per_hour", "eval/score", "bc/policy_loss"))
    assert latest_checkpoint(run) is not None
    header = (run / "progress.csv").read_text().splitlines()[0]
    for key in ("serving/cost_per_hour", "eval/mean/slo_attainment", "bc/policy_loss"):
        assert key in header
    assert "eval_milp_reactive/step/cost_per_hour" in header
    # resume continues the same run to the new total
    more = load_train_config({**raw, "total_timesteps": 384})
    again = train(more, resume=True, progress_bar=False)
    assert again == run
    # the trained policy decides through the Policy interface
    policy = get_policy(f"ppo:path={run}", scenario=tiny)
    state = ControlState(scenario=tiny, time_s=0.0, interval_s=60.0)
    plan = policy.decide(state)
    state = ControlState(
        scenario=tiny,
        time_s=60.0,
        interval_s=60.0,
        current_plan=plan,
        rate_history=[{"cam": 12.0}],
    )
    nxt = policy.decide(state)
    report = evaluate_plan(tiny, nxt, {"cam": 12.0}, accuracy_target=65.0)
    assert not report.invalid


def test_train_with_plan_ladder(tmp_path: Path, tiny: Scenario) -> None:
    """``action: ladder``: the MILP ladder is saved with the run (and its best model) and the
    policy loaded from the folder decides on the same rungs."""
    raw = smoke_config(tmp_path, tiny)
    raw["env"]["action"] = "ladder"
    raw["env"]["load_time_mix"] = [None, 30]
    raw["total_timesteps"] = 128
    run = train(load_train_config(raw), progress_bar=False)
    assert (run / "ladder.json").is_file() and (run / "best" / "ladder.json").is_file()
    # validation runs every trace in both load-time settings
    header = (run / "progress.csv").read_text().splitlines()[0]
    assert "eval/step@own/slo_attainment" in header and "eval/step@30s/slo_attainment" in header
    policy = get_policy(f"ppo:path={run / 'best'}", scenario=tiny)
    assert isinstance(policy, PpoPolicy)
    plan = policy.decide(ControlState(scenario=tiny, time_s=0.0, interval_s=60.0))
    for i in range(5):
        rates = {"cam": 4.0 + 4.0 * i}
        state = ControlState(
            scenario=tiny,
            time_s=60.0 * (i + 1),
            interval_s=60.0,
            current_plan=plan,
            rate_history=[rates],
        )
        plan = policy.decide(state)
        assert not evaluate_plan(tiny, plan, rates, accuracy_target=65.0).invalid
        codec = policy.tables(tiny)[0]
        assert codec.is_rung(codec.signature(plan))


def test_train_config_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="n_envs"):
        load_train_config({"n_envs": "many"})
    with pytest.raises(InputError, match="no such file"):
        load_train_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("spec", "scenario"),
    [
        ("ppo", "vqa"),
        ("ppo:shipped=vqa_v2", "vqa"),
        ("ppo:shipped=vehicle_v2", "vehicle"),
        ("ppo:shipped=fleet_v2", "fleet"),
    ],
)
def test_shipped_policy_loads_and_decides(spec: str, scenario: str) -> None:
    """The shipped policies (vqa's 1-D ladder one, issue 13's combination-ladder ones for vqa,
    vehicle and the fleet) load, and decide valid plans as the load rises."""
    scen = load_scenario(scenario)
    policy = get_policy(spec, scenario=scen)
    assert isinstance(policy, PpoPolicy)
    rates = scen.nominal_rates()
    plan = policy.decide(ControlState(scenario=scen, time_s=0.0, interval_s=60.0))
    for i in range(50):
        r = {k: v * (0.6 + 0.02 * i) for k, v in rates.items()}
        state = ControlState(
            scenario=scen,
            time_s=60.0 * (i + 1),
            interval_s=60.0,
            current_plan=plan,
            rate_history=[r] * 3,
        )
        plan = policy.decide(state)
        assert not evaluate_plan(scen, plan, r).invalid
    # decision time is a figure, not a test: `jbrl evaluate` reports it per policy
    # (decision_ms), e.g. in experiments/evaluate_vqa.py's benchmark


# --------------------------------------------------------------------------- determinism


def test_train_twice_same_seed_same_actions_and_rewards(tmp_path: Path, tiny: Scenario) -> None:
    """Same seed and config, imitation warm start included: the PPO phase takes the same
    actions, gets the same rewards and ends with the same weights."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Record(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.actions: list[np.ndarray] = []
            self.rewards: list[np.ndarray] = []

        def _on_step(self) -> bool:
            self.actions.append(np.array(self.locals["actions"]).copy())
            self.rewards.append(np.array(self.locals["rewards"]).copy())
            return True

    def run(folder: str) -> tuple[Record, Path]:
        raw = smoke_config(tmp_path, tiny)
        raw.update(runs_dir=str(tmp_path / folder), total_timesteps=128, eval=None)
        raw["bc"] = {**raw["bc"], "dagger_rounds": 1, "epochs": 2}
        rec = Record()
        return rec, train(load_train_config(raw), progress_bar=False, callbacks=[rec])

    (a, run_a), (b, run_b) = run("a"), run("b")
    assert len(a.actions) == len(b.actions) > 0
    for x, y in zip(a.actions, b.actions, strict=True):
        assert np.array_equal(x, y)
    for x, y in zip(a.rewards, b.rewards, strict=True):
        assert np.array_equal(x, y)
    assert any(not np.array_equal(a.actions[0], x) for x in a.actions)  # not a constant policy
    from sb3_contrib import MaskablePPO

    wa = MaskablePPO.load(str(run_a / "model.zip"), device="cpu").policy.state_dict()
    wb = MaskablePPO.load(str(run_b / "model.zip"), device="cpu").policy.state_dict()
    assert wa.keys() == wb.keys()
    assert all(bool((wa[k] == wb[k]).all()) for k in wa)


# --------------------------------------------------------------------------- config


def test_teacher_and_baseline_are_policy_specs_checked_at_load(tmp_path: Path) -> None:
    cfg = load_train_config({})
    assert cfg.bc is not None and cfg.bc.teacher == DEFAULT_TEACHER
    assert cfg.eval is not None and cfg.eval.baseline == "milp-reactive:headroom=0.2"
    assert cfg.env.initial_plan == "milp"  # training starts from the MILP's plan ...
    assert load_train_config({"env": {"initial_plan": "greedy"}}).env.initial_plan == "greedy"
    for bad, match in (
        ({"bc": {"teacher": "milp-hysterisis"}}, "unknown policy"),
        ({"bc": {"teacher": "milp-hysteresis:window=zero"}}, "window"),
        ({"bc": {"teacher": "ppo"}}, "rule policy"),
        ({"bc": {"candidates": ["milp-reactive:k=3"]}}, "unknown parameter"),
        ({"bc": {"teacher": "hysteresis", "k": 3}}, "bc"),  # the former keys are gone
        ({"eval": {"baseline": "nope"}}, "eval.baseline"),
    ):
        with pytest.raises(InputError, match=match):
            load_train_config(bad)


def test_shipped_policy_config_is_a_valid_training_config() -> None:
    from importlib import resources

    raw = yaml.safe_load(
        (resources.files("jbrl.configs") / "policies" / "vqa" / "config.yaml").read_text("utf-8")
    )
    cfg = load_train_config(raw)
    assert cfg.bc is not None and cfg.bc.teacher.startswith("milp-hysteresis:headroom=0.25")
    assert len(cfg.bc.candidates) == 6


# --------------------------------------------------------------------------- the teacher


def teacher_env(tiny: Scenario, **kw: Any) -> Any:
    from jbrl.envs.serving import ServingEnv

    cfg = {"scenario": "tiny", "accuracy": 65.0, "episode_steps": 8, "history": 3, **kw}
    return ServingEnv(cfg, scenario_obj=tiny)


@pytest.mark.parametrize("action", ["workers", "ladder", "combo_ladder"])
def test_teacher_acts_as_its_rule_policy_decides(tiny: Scenario, action: str) -> None:
    """The teacher's action leads the env to the plan the rule policy decides (in the codec's
    terms), and keeps the plan when the policy keeps it."""
    from jbrl.agents.ppo.imitation import PolicyTeacher
    from jbrl.scenario.traces import generate_trace

    env = teacher_env(tiny, action=action)
    teacher = PolicyTeacher("milp-reactive:headroom=0.2")
    params = {"low": 0.3, "high": 1.6, "at_s": 240.0}
    trace = generate_trace("step", 600.0, sources=tiny, params=params)
    env.reset(seed=5, options={"trace": trace})
    teacher.reset(env)

    def counts(sig: Any) -> tuple[Any, ...]:  # a plan up to interchangeable workers
        return sig.combo, [sorted(sig.assignment[w] for w in g) for g in env.serving.groups]

    changes = 0
    for _ in range(8):
        state = teacher.state(env)
        assert state.lookahead is None and state.current_plan is env.plan
        assert state.rate_history[-1] == env.serving.rates_dict(env.rate_history[-1])
        reference = get_policy("milp-reactive:headroom=0.2")
        reference.reset(tiny)
        plan = reference.decide(state)
        action_ = teacher(env)
        before = env.sig
        env.step(action_)
        if plan is state.current_plan:
            assert env.sig == before
        else:
            assert counts(env.sig) == counts(env.codec.canonical_signature(plan))
            changes += env.sig != before
    assert changes > 0
    oracle = PolicyTeacher("milp-oracle")
    assert oracle.state(env).lookahead is env.trace


def test_validation_runs_a_policy_as_jbrl_evaluate_does(tiny: Scenario) -> None:
    """Training validation and `jbrl evaluate` run a policy name through the same loop."""
    from jbrl.agents.ppo.callbacks import validation_run
    from jbrl.envs.config import EnvConfig
    from jbrl.evaluation.runner import run_policy
    from jbrl.scenario.traces import generate_trace

    trace = generate_trace("step", duration=900.0, seed=1, sources=tiny)
    env = EnvConfig(scenario="tiny", accuracy=65.0)
    spec = "milp-reactive:headroom=0.2"
    ours = validation_run(get_policy(spec), tiny, trace, env, seed=1)
    theirs = run_policy(tiny, trace, get_policy(spec), label=spec, trace_name="step", seed=1)
    assert theirs.error is None and theirs.totals is not None
    assert ours.totals.to_dict() == theirs.totals
    assert ours.figures()["cost_per_hour"] == theirs.totals["dollars_per_hour"]


def test_vehicle_training_config_is_valid_and_draws_every_trace_kind() -> None:
    """configs/train/ppo_vehicle.yaml is what `jbrl train` reads; each of its trace components
    (the production-shaped generators included) draws a training trace below the evaluation
    seeds."""
    from jbrl.envs.workload import EVAL_SEED_BASE, sample_trace

    root = Path(__file__).resolve().parents[2]
    cfg = load_train_config(root / "configs" / "train" / "ppo_vehicle.yaml")
    assert cfg.env.scenario == "vehicle"
    comps = cfg.env.traces
    kinds = {k for c in comps for k in c.kinds}
    assert {"onoff", "flash_crowd", "weekly"} <= kinds
    for i, comp in enumerate(comps):
        trace, info = sample_trace([comp], np.random.default_rng(i), 600.0)
        assert 0 <= int(str(info["seed"])) < EVAL_SEED_BASE
        assert len(trace.times) > 1 and float(np.min(trace.values)) >= 0.0


# --------------------------------------------------------------------------- progress


def test_warm_start_phases_each_run_a_full_progress_bar(
    tmp_path: Path, tiny: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a progress bar, every phase of the imitation warm start (choosing the teacher, its
    demonstrations, each fit, each DAgger round) shows one bar that ends full."""
    import jbrl.agents.ppo.imitation as imitation
    from jbrl.progress import ProgressBar

    bars: list[ProgressBar] = []

    class Recorded(ProgressBar):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(imitation, "ProgressBar", Recorded)
    raw = smoke_config(tmp_path, tiny)
    raw.update(total_timesteps=64, eval=None)
    raw["bc"] = {**raw["bc"], "dagger_rounds": 2, "tune_episodes": 1,
                 "candidates": [DEFAULT_TEACHER, "milp-reactive:headroom=0.2"]}  # fmt: skip
    train(load_train_config(raw), progress_bar=True)
    labels = [b.label for b in bars]
    assert labels == [
        "choosing the teacher",
        "teacher demonstrations",
        "fitting to 32 labelled steps",  # 2 episodes of 16 steps
        "DAgger round 1/2",
        "fitting to 48 labelled steps",
        "DAgger round 2/2",
        "fitting to 64 labelled steps",
    ]
    assert [b.total for b in bars] == [2, 2, 2, 1, 2, 1, 2]
    assert all(b.done == b.total and b.enabled for b in bars)
