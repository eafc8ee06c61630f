"""The combination-ladder teacher (``ladder-hysteresis``): covers its target at once, moves down
only after a lasting saving, keeps a covering rung of its combination, needs no solve; its spec
is checked where the training config names it."""

from __future__ import annotations

import numpy as np
import pytest

from jbrl.agents.ppo.config import load_train_config
from jbrl.agents.ppo.imitation import PolicyTeacher, make_teacher
from jbrl.agents.ppo.table_teacher import TableTeacher, table_params
from jbrl.envs import ServingEnv, ServingSpec
from jbrl.envs.combo_ladder import ComboLadder
from jbrl.errors import InputError
from jbrl.scenario import Scenario, load_scenario
from jbrl.scenario.traces import generate_trace


@pytest.fixture(scope="module")
def vqa_table() -> tuple[Scenario, ComboLadder]:
    vqa = load_scenario("vqa")
    return vqa, ComboLadder.milp(ServingSpec(vqa), step=0.25)


def test_scales_up_at_once_and_down_only_after_a_lasting_saving(vqa_table) -> None:
    vqa, table = vqa_table
    env = ServingEnv({"action": "combo_ladder", "history": 3}, scenario_obj=vqa, ladder=table)
    step = generate_trace("step", 7200, 0, params={"low": 0.5, "high": 1.4, "at_s": 1800})
    down = generate_trace("step", 7200, 0, params={"low": 1.4, "high": 0.4, "at_s": 1800})
    teacher = TableTeacher("ladder-hysteresis:headroom=0.2:window=2:down_after=5")
    for trace in (step, down):
        env.reset(seed=0, options={"trace": trace})
        teacher.reset(env)
        keeps, moved_down = 0, []
        for _ in range(60):
            target = teacher.target(env)
            before = env.codec.snap(env.sig)
            a = teacher(env)
            env.step(a)
            i, j = env.codec.snap(env.sig)
            lad = table.ladders[i]
            top = max(float(x.scale[-1]) for x in table.ladders)
            assert lad.scale[j] >= min(target, top) - 1e-9  # covers the target (or the top)
            if a[0] == 0:
                keeps += 1
                continue
            if lad.dollars[j] < table.ladders[before[0]].dollars[before[1]] and keeps < 60:
                moved_down.append(keeps)
            keeps = 0
        if trace is down:
            assert moved_down and min(moved_down) >= 5  # the saving lasted down_after intervals
        else:  # a rising load never waits
            assert env.codec.position(env.sig)[1] > 0


def test_spec_parameters_and_the_config(vqa_table) -> None:
    assert table_params("ladder-hysteresis:headroom=0.3")["headroom"] == 0.3
    for bad in ("ladder-hysteresis:speed=1", "ladder-hysteresis:window=0",
                "ladder-hysteresis:tolerance=1", "ladder-hysteresis:headroom=x"):  # fmt: skip
        with pytest.raises(InputError):
            table_params(bad)
    assert isinstance(make_teacher("ladder-hysteresis"), TableTeacher)
    assert isinstance(make_teacher("milp-hysteresis"), PolicyTeacher)
    with pytest.raises(InputError, match="bc.teacher.window"):
        load_train_config({"bc": {"teacher": "ladder-hysteresis:window=-1"}})
    vqa, table = vqa_table
    env = ServingEnv({"action": "ladder"}, scenario_obj=vqa)
    with pytest.raises(InputError, match="combo_ladder"):
        TableTeacher("ladder-hysteresis").reset(env)
    assert np.isfinite(TableTeacher("ladder-hysteresis").headroom)


def test_validation_may_run_without_a_baseline() -> None:
    """eval.baseline: null skips the comparison run (its MILP solves cost minutes of training
    time on eight validation traces); a bad spec is still refused."""
    assert load_train_config({"eval": {"baseline": None}}).eval.baseline is None
    with pytest.raises(InputError, match="baseline"):
        load_train_config({"eval": {"baseline": "no-such-policy"}})


def test_episodes_may_start_from_the_table(vqa_table) -> None:
    """initial_plan: table starts every episode from the cheapest rung covering the first
    interval's load x (1 + initial_headroom), with no MILP solve; refused without a table."""
    vqa, table = vqa_table
    env = ServingEnv(
        {"action": "combo_ladder", "initial_plan": "table", "initial_headroom": 0.2},
        scenario_obj=vqa,
        ladder=table,
    )
    assert env.milp_start is None
    for load in (0.3, 0.9, 1.5):
        trace = generate_trace("constant", 3600, 0, params={"level": load})
        env.reset(seed=0, options={"trace": trace})
        i, j = table.cheapest_covering(load * 1.2)
        assert env.sig == table.ladders[i].rungs[j]
    with pytest.raises(InputError, match="initial_plan"):
        ServingEnv({"initial_plan": "table"}, scenario_obj=vqa)
