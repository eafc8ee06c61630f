"""The combination-ladder action design (``action: combo_ladder``): the table the MILP builds,
the env's decoding and model loads, the file, and the deployed PPO policy's decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jbrl.envs import ServingEnv, ServingSpec
from jbrl.envs.combo_ladder import COMBO_LADDER_FILE, ComboLadder, ComboLadderCodec
from jbrl.errors import InputError
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.ladder import admitted_combinations
from jbrl.planning.plan import Plan
from jbrl.scenario import Scenario, load_scenario
from tests.envs.test_env import STRUCTURAL

STEP = 0.25
"""Level step of the test ladder (coarser than training's 0.05, to keep the build at ~4 s)."""
SHORT = {"action": "combo_ladder", "episode_steps": 20, "history": 3}


@pytest.fixture(scope="module")
def vqa_combo() -> tuple[Scenario, ComboLadder]:
    vqa = load_scenario("vqa")
    return vqa, ComboLadder.milp(ServingSpec(vqa), step=STEP)


def combo_env(vqa_combo: tuple[Scenario, ComboLadder], **kw: object) -> ServingEnv:
    vqa, table = vqa_combo
    return ServingEnv({**SHORT, **kw}, scenario_obj=vqa, ladder=table)


def test_every_rung_is_its_combination_and_cost_rises_with_level(vqa_combo) -> None:
    vqa, table = vqa_combo
    spec = ServingSpec(vqa)
    assert table.combos == admitted_combinations(spec)
    assert len(table.combos) >= 2  # vqa: more than one combination survives the pruning
    codec = ComboLadderCodec(spec, table)
    assert codec.nvec.tolist() == [len(table.combos) + 1, table.n_levels]
    for i, c in enumerate(table.combos):
        lad = table.ladders[i]
        assert all(sig.combo == c for sig in lad.rungs)
        dollars = [float(lad.dollars[table.rung_at[i, k]]) for k in range(table.n_levels)]
        assert np.all(np.diff(dollars) >= -1e-12), (i, dollars)
        for k in range(table.n_levels):
            rates = spec.nominal * min(table.levels[k], lad.scale[-1])
            plan = codec.decode(np.array([1 + i, k]), rates)
            assert plan.model_assignment == spec.combos[c]
            report = evaluate_plan(vqa, plan, spec.rates_dict(rates), spec.accuracy)
            assert not [v for v in report.violations if v.kind in STRUCTURAL], (i, k)
        # a level past the combination's top deploys its top rung
        top = table.signature(i, table.n_levels - 1)
        assert top == lad.rungs[-1] == table.signature(i, table.n_levels + 5)
    # some combination stops below the highest level (vqa's resnet34 one)
    assert min(lad.scale[-1] for lad in table.ladders) < table.levels[-1]


def test_random_actions_on_fluid(vqa_combo) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(combo_env(vqa_combo), skip_render_check=True)
    env = combo_env(vqa_combo)
    table = vqa_combo[1]
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, env.codec.nvec)
        obs, reward, term, trunc, info = env.step(a)
        assert env.observation_space.contains(obs) and np.isfinite(reward)
        assert not term and not trunc
        i, k = info["combo_level"]
        if a[0] > 0:  # the chosen pair, as the level that stands for the deployed rung
            want = table.level_of(a[0] - 1, int(table.rung_at[a[0] - 1, a[1]]))
            assert (i, k) == (a[0] - 1, want)
        assert -1 <= i < len(table.combos) and 0 <= k < table.n_levels
        lvl = list(env.encoder.sizes).index("level")
        at = sum(list(env.encoder.sizes.values())[:lvl])
        assert obs[at] == pytest.approx((k + 1) / table.n_levels)


def test_action_for_inverts_decoding(vqa_combo) -> None:
    """The action a teacher's plan is labelled with (:meth:`action_for`) decodes back to that
    plan, from any running rung; a plan off the ladder maps to a rung covering it."""
    vqa, table = vqa_combo
    spec = ServingSpec(vqa)
    codec = ComboLadderCodec(spec, table)
    currents = [table.signature(i, k) for i in range(len(table.combos)) for k in (0, 4)]
    for cur in currents:
        for i in range(len(table.combos)):
            for k in range(table.n_levels):
                sig, _ = codec.resolve(np.array([1 + i, k]), cur)
                back, _ = codec.resolve(codec.action_for(sig, cur), cur)
                assert back == sig, (cur, i, k)
    off = codec.greedy_signature(spec.nominal * 0.6)  # the greedy planner's, not a rung
    i, j = codec.snap(off)
    lad = table.ladders[i]
    assert lad.scale[j] >= 0.6 - 1e-9 or j == len(lad) - 1


def _loaded(old: Plan, new: Plan) -> set[str]:
    """Workers whose (operator, variant) differ between two plans and that run something in
    ``new``: the ones that must load a model."""

    def held(plan: Plan) -> dict[str, tuple[str, str]]:
        return {
            s.worker: (op, plan.model_assignment[op])
            for op, shares in plan.worker_assignment.items()
            for s in shares
        }

    a, b = held(old), held(new)
    return {w for w, x in b.items() if a.get(w) != x}


def test_keep_and_level_change_loads_fewer_than_combination_change(vqa_combo) -> None:
    """From every rung: one level up within its combination against the same level in the
    other combination. SLO-aware rungs do not always extend the rung below (vqa's resnet101
    rung at 1.25x moves the GPU to another operator, reloading 6 workers), so the comparison
    is over all of them; the simulator's loads are checked at every move."""
    env = combo_env(vqa_combo)
    table = vqa_combo[1]
    env.reset(seed=0)
    env.step(np.array([1, 1]))
    plan = env.current_plan()
    _, _, _, _, info = env.step(np.array([0, 7]))  # keep: the level is ignored
    assert env.current_plan() is plan and info["reconfigurations"] == 0

    def move(action: list[int]) -> int:
        before = env.current_plan()
        _, _, _, _, info = env.step(np.array(action))
        loads = _loaded(before, env.current_plan())
        # the simulator loads exactly the workers whose model changes, and reports them
        assert set(info["metrics"].reconfigured) == loads
        assert info["reconfigurations"] == len(loads)
        return len(loads)

    within, switch = [], []
    for i in range(len(table.combos)):
        other = (i + 1) % len(table.combos)
        for k in range(table.n_levels - 1):
            if table.rung_at[i, k] == table.rung_at[i, k + 1]:
                continue  # the same rung: nothing to compare
            move([1 + i, k])
            within.append(move([1 + i, k + 1]))
            move([1 + i, k])
            switch.append(move([1 + other, k]))
    assert len(within) >= 5
    assert 0 < np.mean(within) < np.mean(switch)
    assert within[0] < switch[0]  # the lowest rung of the first combination, one level up


def test_save_load_roundtrip_and_errors(vqa_combo, tmp_path: Path) -> None:
    vqa, table = vqa_combo
    spec = ServingSpec(vqa)
    f = table.save(tmp_path / COMBO_LADDER_FILE)
    back = ComboLadder.load(spec, f)
    assert back.combos == table.combos and np.allclose(back.levels, table.levels, atol=1e-6)
    a, b = ComboLadderCodec(spec, table), ComboLadderCodec(spec, back)
    rates = spec.nominal
    for i in range(len(table.combos)):
        for k in range(table.n_levels):
            x = np.array([1 + i, k])
            assert a.resolve(x, None) == b.resolve(x, None)
            assert a.decode(x, rates).to_dict() == b.decode(x, rates).to_dict()
    # a config naming the file (relative to its folder) loads it
    (tmp_path / "env.yaml").write_text(f"action: combo_ladder\nladder: {COMBO_LADDER_FILE}\n")
    env = ServingEnv(str(tmp_path / "env.yaml"), scenario_obj=vqa)
    assert isinstance(env.codec, ComboLadderCodec) and env.codec.table.combos == table.combos
    data = json.loads(f.read_text("utf-8"))
    variants = data["combinations"][0]["variants"]
    cases = {
        "levels": {**data, "levels": [0.5, 0.25]},
        "scale_basis": {**data, "scale_basis": "guess"},
        "combinations": {**data, "combinations": []},
        "combinations[0].variants": {
            **data,
            "combinations": [{**data["combinations"][0], "variants": {"VQA": "nope"}}],
        },
        "combinations[1].variants": {**data, "combinations": [data["combinations"][0]] * 2},
        "combinations[0].rungs[0].scale": {
            **data,
            "combinations": [
                {
                    "variants": variants,
                    "rungs": [{**data["combinations"][0]["rungs"][0], "scale": -1}],
                }
            ],
        },
    }
    bad = tmp_path / "bad.json"
    for field, doc in cases.items():
        bad.write_text(json.dumps(doc))
        with pytest.raises(InputError) as e:
            ComboLadder.load(spec, bad)
        assert e.value.field == field and str(bad) in str(e.value), (field, str(e.value))
    # a rung of another combination inside a combination
    wrong = json.loads(json.dumps(data))
    wrong["combinations"][0]["rungs"][0]["variants"] = data["combinations"][1]["variants"]
    bad.write_text(json.dumps(wrong))
    with pytest.raises(InputError) as e:
        ComboLadder.load(spec, bad)
    assert e.value.field == "combinations[0].rungs[0].variants"


def test_deployed_policy_decodes_as_the_env(vqa_combo, tmp_path: Path) -> None:
    """A saved combo_ladder policy folder, loaded through the Policy interface, deploys the
    plan the env's codec decodes from the same observation and action."""
    import yaml
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from jbrl.agents.policy import ControlState
    from jbrl.agents.ppo import PpoPolicy
    from jbrl.agents.ppo.files import save_normalization

    vqa, table = vqa_combo
    env = combo_env(vqa_combo)
    venv = VecNormalize(DummyVecEnv([lambda: combo_env(vqa_combo)]))
    model = MaskablePPO("MlpPolicy", venv, n_steps=8, batch_size=8, seed=0, device="cpu")
    model.save(tmp_path / "model.zip")
    save_normalization(venv, tmp_path / "normalization.json")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"env": {**SHORT, "scenario": "vqa"}}))
    table.save(tmp_path / COMBO_LADDER_FILE)
    policy = PpoPolicy(tmp_path, scenario=vqa)
    assert isinstance(policy.ladder(vqa), ComboLadder)
    env.reset(seed=5)
    history: list[dict[str, float]] = []
    last = None
    rng = np.random.default_rng(1)
    for t in range(6):
        codec, enc = policy.tables(vqa)
        state = ControlState(vqa, env.time_s, 60.0, env.current_plan(), list(history), last)
        got = policy.decide(state)
        obs = enc.encode(env.time_s, history, env.sig, last, vqa)
        action = policy.actor.act(obs, codec.masks())
        rates = env.serving.rates_array(history[-1]) if history else env.serving.nominal
        want = env.codec.decode(action, rates, env.current_plan())
        assert env.codec.signature(got) == env.codec.signature(want), t
        # move on with a random action, so the next decision starts elsewhere
        _, _, _, _, info = env.step(rng.integers(0, env.codec.nvec))
        history.append(dict(info["metrics"].rates))
        last = info["metrics"]
    # every action, from every rung, decodes alike in the policy's codec and the env's
    codec = policy.tables(vqa)[0]
    assert codec.nvec.tolist() == env.codec.nvec.tolist()
    for _ in range(30):
        cur = env.codec.plan_of(
            table.signature(
                int(rng.integers(len(table.combos))), int(rng.integers(table.n_levels))
            ),
            env.serving.nominal,
        )
        a = rng.integers(0, env.codec.nvec)
        got = codec.decode(a, env.serving.nominal, cur).to_dict()
        assert got == env.codec.decode(a, env.serving.nominal, cur).to_dict()


def test_train_config_and_milp_start_take_a_combo_ladder(vqa_combo, tmp_path: Path) -> None:
    """``jbrl train`` validates ``action: combo_ladder`` and the file it names before any work,
    and a MILP starting plan is expressed as a rung of the ladder."""
    from jbrl.agents.ppo.config import check_before_training, load_train_config
    from jbrl.agents.ppo.workbench import Workbench

    vqa, table = vqa_combo
    table.save(tmp_path / COMBO_LADDER_FILE)
    env = {"scenario": "vqa", "action": "combo_ladder", "ladder": COMBO_LADDER_FILE}
    config = load_train_config({"env": env})
    assert config.env.action == "combo_ladder"
    bench = Workbench.build(config, tmp_path)
    assert isinstance(bench.ladder, ComboLadder) and bench.ladder.combos == table.combos
    (tmp_path / "bad.json").write_text('{"scale_basis": "slo", "levels": [1], "combinations": 3}')
    bad = load_train_config({"env": {**env, "ladder": str(tmp_path / "bad.json")}})
    with pytest.raises(InputError) as e:
        check_before_training(bad)
    assert e.value.field == "combinations"
    milp = combo_env(vqa_combo, initial_plan="milp")
    milp.reset(seed=1)
    assert milp.sig is not None and milp.codec.snap(milp.sig) is not None
    i, _ = milp.codec.position(milp.sig)
    assert i >= 0 and milp.sig in table.ladders[i].rungs


def test_ladders_built_in_spawned_processes_are_the_serial_ones() -> None:
    """``processes=2`` solves the combinations' ladders in spawned processes: each ladder is
    independent, so the table is the one a single process builds (levels, rung plans)."""
    spec = ServingSpec(load_scenario("vehicle"), None)
    serial = ComboLadder.milp(spec, step=0.25)
    parallel = ComboLadder.milp(spec, step=0.25, processes=2)
    assert len(serial.ladders) >= 2
    assert parallel.to_dict() == serial.to_dict()
