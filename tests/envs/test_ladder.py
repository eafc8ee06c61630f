"""The plan-ladder action design: ladder invariants, env checkers, decoding, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jbrl.envs import ServingEnv, ServingSpec
from jbrl.envs.ladder import LadderCodec, PlanLadder
from jbrl.errors import InputError
from jbrl.planning.cost import evaluate_plan
from jbrl.scenario import Scenario, load_scenario
from tests.envs.test_env import STRUCTURAL

SHORT = {"episode_steps": 8, "history": 3}


def ladder_env(tiny: Scenario, **kw: object) -> ServingEnv:
    cfg = {"scenario": "tiny", "accuracy": 65.0, "action": "ladder", **SHORT, **kw}
    return ServingEnv(cfg, scenario_obj=tiny)


@pytest.fixture(scope="module")
def vqa_ladder() -> tuple[Scenario, PlanLadder]:
    vqa = load_scenario("vqa")
    return vqa, PlanLadder.milp(ServingSpec(vqa))


def test_checkers_and_determinism(tiny: Scenario) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(ladder_env(tiny))
    sb3_check_env(ladder_env(tiny), warn=True)

    def run() -> list[float]:
        env = ladder_env(tiny)
        env.reset(seed=4)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(6):
            obs, r, *_ = env.step(rng.integers(0, env.codec.nvec))
            out += [r, float(obs.sum())]
        return out

    assert run() == run()


@pytest.mark.parametrize("source", ["milp", "greedy"])
def test_ladder_is_monotone_and_every_rung_is_a_valid_plan(vqa_ladder, source: str) -> None:
    vqa, milp = vqa_ladder
    spec = ServingSpec(vqa)
    ladder = milp if source == "milp" else PlanLadder.greedy(spec)
    assert len(ladder) >= 5
    # more capacity costs strictly more: no rung is dominated
    assert np.all(np.diff(ladder.scale) > 0)
    assert np.all(np.diff(ladder.dollars) > 0)
    codec = LadderCodec(spec, ladder)
    for j in range(len(ladder)):
        rates = spec.nominal * ladder.scale[j]
        plan = codec.decode(np.array([1 + j]), rates)
        report = evaluate_plan(
            vqa, plan, dict(zip(spec.sources, rates.tolist(), strict=True)), spec.accuracy
        )
        assert not [v for v in report.violations if v.kind in STRUCTURAL], j
        # the rung serves the load it claims to cover (capacity-proportional split, rho <= 1)
        assert np.all(codec.capacity(codec.signature(plan)) >= spec.demand(rates) - 1e-6)


def test_milp_ladder_spans_the_sustainable_range(vqa_ladder) -> None:
    from jbrl.planning.milp import max_rate

    vqa, ladder = vqa_ladder
    top = max_rate(vqa).scale
    assert ladder.scale[-1] >= top - 1e-6
    assert ladder.scale[0] <= 0.1


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_action_for_and_covering(vqa_ladder, data: st.DataObject) -> None:
    vqa, ladder = vqa_ladder
    spec = ServingSpec(vqa)
    codec = LadderCodec(spec, ladder)
    j = data.draw(st.integers(0, len(ladder) - 1))
    k = data.draw(st.integers(0, len(ladder) - 1))
    cur = ladder.rungs[k]
    sig, _ = codec.resolve(np.array([1 + j]), cur)
    # a rung (matched to the current plan) is recognised as that rung
    assert codec.rung_of(sig) == j
    act = codec.action_for(sig, cur)
    assert act.tolist() == ([0] if j == k else [1 + j])
    # the canonical form of any plan is the cheapest rung covering it
    s = data.draw(st.floats(0.01, float(ladder.scale[-1])))
    i = ladder.covering(s)
    assert ladder.scale[i] >= s - 1e-9
    assert i == 0 or ladder.scale[i - 1] < s


def test_keep_and_reconfigure_only_added_workers(vqa_ladder) -> None:
    vqa, ladder = vqa_ladder
    env = ServingEnv({"action": "ladder", **SHORT}, scenario_obj=vqa, ladder=ladder)
    env.reset(seed=0)
    plan = env.current_plan()
    _, _, _, _, info = env.step(np.array([0]))
    assert env.current_plan() is plan and info["reconfigurations"] == 0
    # one rung up within the same variant combination that only adds workers (per group and
    # operator; SLO-aware rungs may also trade workers, e.g. CPUs for a GPU) reloads only the
    # added workers
    spec = ServingSpec(vqa)
    checked = 0
    for j in range(len(ladder) - 1):
        a, b = ladder.rungs[j], ladder.rungs[j + 1]
        if a.combo == b.combo and _extends(spec, a, b):
            codec = env.codec
            nxt, _ = codec.resolve(np.array([2 + j]), a)
            changed = sum(x != y for x, y in zip(a.assignment, nxt.assignment, strict=True))
            assert changed == sum(o >= 0 for o in b.assignment) - sum(o >= 0 for o in a.assignment)
            checked += 1
    assert checked > 0


def _extends(spec: ServingSpec, a, b) -> bool:
    """Rung ``b`` runs at least as many workers of every group on every operator as ``a``."""
    for group in spec.groups:
        for op in set(a.assignment[w] for w in group) | set(b.assignment[w] for w in group):
            if op < 0:
                continue
            na = sum(a.assignment[w] == op for w in group)
            nb = sum(b.assignment[w] == op for w in group)
            if nb < na:
                return False
    return True


def test_save_load_roundtrip_and_errors(vqa_ladder, tmp_path: Path) -> None:
    vqa, ladder = vqa_ladder
    spec = ServingSpec(vqa)
    f = ladder.save(tmp_path / "ladder.json")
    back = PlanLadder.load(spec, f)
    assert back.rungs == ladder.rungs
    assert np.allclose(back.scale, ladder.scale)
    # a config naming the file (relative to the config's folder) loads it
    (tmp_path / "env.yaml").write_text("action: ladder\nladder: ladder.json\nhistory: 3\n")
    env = ServingEnv(str(tmp_path / "env.yaml"), scenario_obj=vqa)
    assert isinstance(env.codec, LadderCodec) and env.codec.ladder.rungs == ladder.rungs
    bad = tmp_path / "bad.json"
    bad.write_text('{"rungs": [{"variants": {"VQA": "nope"}, "workers": {}}]}')
    with pytest.raises(InputError) as e:
        PlanLadder.load(spec, bad)
    assert "rungs[0]" in str(e.value)
    with pytest.raises(InputError):
        PlanLadder.load(spec, tmp_path / "missing.json")


def test_milp_ladder_is_the_shipped_one(vqa_ladder) -> None:
    """The capacity-only rung plans of jbrl.planning.ladder, in the codec's terms, are the
    rungs the shipped vqa policy was trained on (configs/policies/vqa/ladder.json: it predates
    SLO-aware planning)."""
    import json
    from importlib import resources

    from jbrl.planning.ladder import ladder_plans

    vqa, _ = vqa_ladder
    spec = ServingSpec(vqa)
    ladder = PlanLadder.milp(spec, latency_model="none")
    shipped = resources.files("jbrl.configs") / "policies" / "vqa" / "ladder.json"
    assert ladder.to_dict() | {"scale_basis": "capacity"} == json.loads(
        shipped.read_text("utf-8")
    ) | {"scale_basis": "capacity"}
    # the planning layer gives plans (lowest level first) the env turns into those rungs
    rungs = ladder_plans(spec, latency_model="none")
    assert PlanLadder.from_plans(spec, [p for _, p in rungs]).rungs == ladder.rungs
    assert all(p.meta["solver"] == "milp-ladder" for _, p in rungs)


def test_slo_ladder_scales_are_levels(vqa_ladder) -> None:
    """An SLO-aware MILP ladder covers each rung's planned level (within the SLO), which is
    below its raw capacity, and keeps that basis through a file."""
    from jbrl.envs.codec import ActionCodec

    vqa, ladder = vqa_ladder
    spec = ServingSpec(vqa)
    codec = ActionCodec(spec)
    assert ladder.basis == "slo" and PlanLadder(spec, ladder.rungs).basis == "capacity"
    raw = [float(np.min(codec.capacity(sig) / spec.nominal_demand)) for sig in ladder.rungs]
    assert all(s <= c + 1e-9 for s, c in zip(ladder.scale, raw, strict=True))
    assert any(s < c - 0.05 for s, c in zip(ladder.scale, raw, strict=True))
