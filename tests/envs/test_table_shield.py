"""The SLO shield read from the action table (``shield_check: table``): the shield in the
training loop, with no latency prediction or MILP solve per step."""

from __future__ import annotations

import numpy as np
import pytest

from jbrl.envs import ServingEnv
from jbrl.envs.combo_ladder import ComboLadderCodec
from jbrl.errors import InputError
from jbrl.scenario.traces import constant_trace
from tests.envs.test_combo_ladder import SHORT, vqa_combo  # noqa: F401  (the fixture)


def shielded(vqa_combo, **kw: object) -> ServingEnv:  # noqa: F811
    vqa, table = vqa_combo
    cfg = {**SHORT, "shield": 1.1, "shield_check": "table", **kw}
    return ServingEnv(cfg, scenario_obj=vqa, ladder=table)


def test_a_rung_below_the_load_is_scaled_up_within_its_combination(vqa_combo) -> None:  # noqa: F811
    env = shielded(vqa_combo, reward={"shield": 0.25})
    codec = env.codec
    assert isinstance(codec, ComboLadderCodec)
    table = codec.table
    env.reset(seed=0, options={"trace": constant_trace(vqa_combo[0], 3600.0, 0.9)})
    env.step(codec.keep_action())  # one interval observed at 0.9x
    need = 0.9 * 1.1
    i = max(range(len(table.combos)), key=lambda c: table.ladders[c].scale[-1])
    _, _, _, _, info = env.step(np.array([1 + i, 0]))  # its lowest level
    sh = info["shield"]
    assert sh["intervened"] and not sh["missed"]  # scale_up: only where the rungs nest
    assert sh["interventions"] == 1 and sh["cost"] > sh["wanted_cost"]
    assert info["reward_shield"] == pytest.approx(-0.25)
    ci, j = codec.snap(env.sig)
    assert ci == i and table.ladders[i].scale[j] >= need - 1e-9
    assert j == table.ladders[i].covering(need)  # the cheapest covering rung, no dearer
    # a rung that covers the load runs unchanged, at no price
    _, _, _, _, info = env.step(codec.keep_action())
    assert not info["shield"]["intervened"] and info["reward_shield"] == 0.0
    assert info["shield"]["interventions"] == 1


def test_random_actions_never_run_a_rung_below_the_observed_load(vqa_combo) -> None:  # noqa: F811
    """Property: after the shield, the running rung's SLO-safe load covers the last observed
    load x margin whenever some rung of the table does."""
    env = shielded(vqa_combo)
    codec = env.codec
    assert isinstance(codec, ComboLadderCodec)
    table = codec.table
    top = max(float(lad.scale[-1]) for lad in table.ladders)
    env.reset(seed=5)
    env.action_space.seed(5)
    fired = 0
    for _ in range(SHORT["episode_steps"]):
        observed = env.rate_history[-1]
        _, _, _, _, info = env.step(env.action_space.sample())
        need = float(np.max(observed / env.serving.nominal)) * 1.1
        i, j = codec.snap(env.sig)
        if need <= top:
            assert table.ladders[i].scale[j] >= need - 1e-9
        fired += int(info["shield"]["intervened"])
        assert info["shield"]["interventions"] == fired
    assert fired > 0  # uniform random actions often pick a low level


def test_table_check_needs_the_combination_ladder(vqa_combo) -> None:  # noqa: F811
    with pytest.raises(InputError, match="shield_check"):
        ServingEnv(
            {"action": "ladder", "shield": 1.1, "shield_check": "table", "episode_steps": 5},
            scenario_obj=vqa_combo[0],
        )
    with pytest.raises(InputError):
        ServingEnv({**SHORT, "shield_check": "both"}, scenario_obj=vqa_combo[0])
