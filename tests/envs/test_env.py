"""ServingEnv: checkers, determinism, masks and decoding, reward parts, config errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jbrl.envs  # noqa: F401  (registers jbrl/Serving-v0)
from jbrl.envs import ENV_ID, ActionCodec, ServingEnv, ServingSpec, load_env_config
from jbrl.envs.workload import eval_traces, product_trace
from jbrl.errors import InputError
from jbrl.planning.cost import evaluate_plan
from jbrl.scenario import Scenario, load_scenario
from jbrl.scenario.derive import with_load_time

STRUCTURAL = {
    "unknown_operator",
    "unknown_variant",
    "unknown_worker",
    "missing_variant",
    "worker_reused",
    "no_profile",
    "backward_traffic",
    "routing_mismatch",
    "unknown_flow_endpoint",
    "accuracy_below_target",
    "accuracy_unknown",
    "capacity_exceeded",
}

SHORT = {"episode_steps": 8, "history": 3}


def tiny_env(tiny: Scenario, **kw: object) -> ServingEnv:
    return ServingEnv({"scenario": "tiny", "accuracy": 65.0, **SHORT, **kw}, scenario_obj=tiny)


def masked_random_action(codec: ActionCodec, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(np.flatnonzero(codec.mask_of(d))) for d in range(len(codec.nvec))])


def test_gymnasium_and_sb3_checkers(tiny: Scenario) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(tiny_env(tiny))
    sb3_check_env(tiny_env(tiny), warn=True)


def test_registered_and_time_limit(tiny: Scenario) -> None:
    env = gym.make(ENV_ID, config=SHORT, scenario_obj=tiny, accuracy=65.0, max_episode_steps=3)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    truncated = False
    for _ in range(3):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
    assert truncated


def trajectory(env: ServingEnv, seed: int, steps: int = 8) -> tuple[list, list]:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    out, rewards = [obs], []
    for _ in range(steps):
        obs, r, _, _, _ = env.step(masked_random_action(env.codec, rng))
        out.append(obs)
        rewards.append(r)
    return out, rewards


@pytest.mark.parametrize("simulator", ["fluid", "des"])
def test_same_seed_same_trajectory(tiny: Scenario, simulator: str) -> None:
    a = trajectory(tiny_env(tiny, simulator=simulator), 7)
    b = trajectory(tiny_env(tiny, simulator=simulator), 7)
    c = trajectory(tiny_env(tiny, simulator=simulator), 8)
    for x, y in zip(a[0], b[0], strict=True):
        np.testing.assert_array_equal(x, y)
    assert a[1] == b[1]
    assert a[1] != c[1]


def test_reward_parts_sum_to_reward(tiny: Scenario) -> None:
    env = tiny_env(tiny, reward={"dollar": 2.0, "slo_miss": 0.5, "reconfiguration": 0.3})
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    seen_reconf = False
    for _ in range(8):
        _, r, _, _, info = env.step(masked_random_action(env.codec, rng))
        parts = info["reward_dollar"] + info["reward_slo"] + info["reward_reconfiguration"]
        assert r == pytest.approx(parts, abs=1e-12)
        assert info["reward_dollar"] == pytest.approx(-2.0 * info["dollars"])
        assert info["reward_slo"] == pytest.approx(-0.5 * info["late"])
        assert info["reward_reconfiguration"] == pytest.approx(-0.3 * info["reconfigurations"])
        seen_reconf |= info["reconfigurations"] > 0
    assert seen_reconf


def test_relative_actions(tiny: Scenario) -> None:
    env = tiny_env(tiny)
    env.reset(seed=0)
    codec = env.codec
    assert env.sig is not None
    # all "keep" choices (flag off) decode to the current plan: no reconfiguration
    _, _, _, _, info = env.step(np.zeros(len(codec.nvec), dtype=np.int64))
    assert info["reconfigurations"] == 0
    # a label is relative to the current plan: keep-all when nothing changes
    same = codec.action_for(env.sig)
    np.testing.assert_array_equal(codec.canonical_action(same, env.sig), codec.keep_action())


def test_keep_action_keeps_plan(tiny: Scenario) -> None:
    env = tiny_env(tiny)
    env.reset(seed=0)
    plan = env.current_plan()
    keep = env.codec.action_of(plan, keep=True)
    for _ in range(3):
        _, _, _, _, info = env.step(keep)
        assert env.current_plan() is plan
        assert info["reconfigurations"] == 0


def check_decoded(scenario: Scenario, codec: ActionCodec, action: np.ndarray, current=None) -> None:
    rates = codec.spec.nominal
    plan = codec.decode(action, rates, current)
    report = evaluate_plan(
        scenario,
        plan,
        dict(zip(codec.spec.sources, rates.tolist(), strict=True)),
        accuracy_target=codec.spec.accuracy,
    )
    bad = [v for v in report.violations if v.kind in STRUCTURAL]
    assert not bad, (action, plan.to_dict(), bad)
    for op in codec.spec.ops:
        assert plan.worker_assignment[op], f"{op} has no worker"
    # the plan's signature round-trips
    sig = codec.signature(plan)
    assert codec.canonical_signature(plan) == sig


@st.composite
def masked_actions(draw: st.DrawFn, codec: ActionCodec) -> np.ndarray:
    return np.array(
        [
            draw(st.sampled_from(np.flatnonzero(codec.mask_of(d)).tolist()))
            for d in range(len(codec.nvec))
        ]
    )


@pytest.fixture(scope="module")
def codecs(request: pytest.FixtureRequest) -> dict[str, tuple[Scenario, ActionCodec]]:
    from jbrl.scenario import scenario_from_dict
    from tests.conftest import JELLYBEAN_DIR, tiny_scenario_dict

    tiny = scenario_from_dict(tiny_scenario_dict(), "<tiny>")
    out = {"tiny": (tiny, ActionCodec(ServingSpec(tiny, 65.0)))}
    vqa = load_scenario("vqa")
    out["vqa"] = (vqa, ActionCodec(ServingSpec(vqa)))
    jb = load_scenario(JELLYBEAN_DIR)
    out["jellybean"] = (jb, ActionCodec(ServingSpec(jb)))
    return out


@pytest.mark.parametrize("name", ["tiny", "vqa", "jellybean"])
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_masked_actions_decode_to_valid_plans(codecs, name: str, data: st.DataObject) -> None:
    scenario, codec = codecs[name]
    action = data.draw(masked_actions(codec))
    action[0] = 0  # the keep flag would return the current plan unchanged
    check_decoded(scenario, codec, action)
    # decoding against a current plan (interchangeable workers matched to it) stays valid,
    # and keeps the number of workers per operator
    nxt = data.draw(masked_actions(codec))
    nxt[0] = 0
    current = codec.decode(action, codec.spec.nominal)
    check_decoded(scenario, codec, nxt, current)
    # with absolute choices only (no "keep"), matching permutes but never changes counts
    nxt[1] = nxt[1] or 1 + codec.signature(current).combo
    nxt[2:][nxt[2:] == ActionCodec.KEEP] = ActionCodec.IDLE
    plain = codec.resolve(nxt, None)[0]
    matched = codec.signature(codec.decode(nxt, codec.spec.nominal, current))
    for group in codec.spec.groups:
        assert sorted(plain.assignment[w] for w in group) == sorted(
            matched.assignment[w] for w in group
        )


def test_masks_exclude_missing_profiles_and_backward_tiers(codecs) -> None:
    scenario, codec = codecs["tiny"]
    spec = codec.spec
    # track has no profile on the GPU worker c1; detect (fed from the edge) may run anywhere
    c1 = spec.worker_index["c1"]
    m = codec.mask_of(2 + c1)
    assert m[0] and m[1] and m[2 + spec.op_index["detect"]] and not m[2 + spec.op_index["track"]]
    for w in range(len(spec.workers)):
        for o in range(len(spec.ops)):
            if codec.mask_of(2 + w)[2 + o]:
                assert spec.cap[:, w, o].max() > 0
                assert spec.tier[w] >= spec.min_tier[o]


def test_greedy_start_covers_load(codecs) -> None:
    for scenario, codec in codecs.values():
        target = codec.spec.nominal * 1.2
        sig = codec.greedy_signature(target)
        assert np.all(codec.capacity(sig) >= codec.spec.demand(target) - 1e-9), scenario.name


def test_config_errors_name_the_field(tmp_path) -> None:
    with pytest.raises(InputError, match="interval_s"):
        load_env_config({"interval_s": -1})
    bad = tmp_path / "env.yaml"
    bad.write_text("traces:\n  - {kinds: [sine]}\n")
    with pytest.raises(InputError, match="sine"):
        load_env_config(bad)
    with pytest.raises(InputError, match="no such file"):
        load_env_config(tmp_path / "missing.yaml")


def test_load_time_override(tiny: Scenario) -> None:
    forced = with_load_time(tiny, 30.0)
    assert forced.load_time("detect", "large", "e1") == 30.0
    assert with_load_time(tiny, None) is tiny


def test_load_time_mix_draws_per_episode_and_is_observed(tiny: Scenario) -> None:
    """Training with ``load_time_mix``: each episode serves one of the load-time variants, and
    the observation's load_time feature (longest load / interval) tells them apart."""
    from jbrl.envs.observation import max_load_s

    env = tiny_env(tiny, load_time_mix=[None, 30.0])
    i = list(env.encoder.sizes).index("load_time")
    at = sum(list(env.encoder.sizes.values())[:i])
    seen = {}
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        seen[max_load_s(env.scenario)] = float(obs[at])
    assert set(seen) == {max_load_s(tiny), 30.0}
    assert seen[30.0] == pytest.approx(0.5)  # 30 s of a 60 s interval
    assert seen[max_load_s(tiny)] == pytest.approx(max_load_s(tiny) / 60.0, abs=1e-6)
    # same seed, same draw
    env.reset(seed=3)
    first = env.scenario
    env.reset(seed=3)
    assert env.scenario is first


def test_product_trace_and_eval_traces_are_seeded() -> None:
    a = product_trace(["diurnal", "bursty"], {"bursty.burst": 1.3, "mean": 1.0}, 3600, 5)
    b = product_trace(["diurnal", "bursty"], {"bursty.burst": 1.3, "mean": 1.0}, 3600, 5)
    np.testing.assert_array_equal(a.values, b.values)
    ev = eval_traces(duration=1800)
    assert set(ev) == {"diurnal_bursts", "step", "flash_crowd"}
    assert all(float(t.values.max()) <= 2.0 for t in ev.values())


def test_observation_noise_touches_only_measured_parts(tiny: Scenario) -> None:
    quiet, noisy = tiny_env(tiny), tiny_env(tiny, obs_noise=0.5)
    a = trajectory(quiet, 4)[0]
    b = trajectory(noisy, 4)[0]
    m = quiet.encoder.measured
    assert m.any() and not m.all()
    for x, y in zip(a[1:], b[1:], strict=True):
        np.testing.assert_array_equal(x[~m], y[~m])
    assert any(not np.array_equal(x[m], y[m]) for x, y in zip(a[1:], b[1:], strict=True))


def test_shield_checks_the_agents_plan_and_counts_interventions(tiny: Scenario) -> None:
    from jbrl.planning.coverage import coverage, plan_signature, scaled

    env = tiny_env(tiny, shield=1.1)
    env.reset(seed=4)
    rng = np.random.default_rng(2)
    n_combos = int(env.codec.nvec[1]) - 1
    # detect on e1 alone (each combination in turn), track on c2; then random actions
    thin = [np.array([0, 1 + c, 2, 1, 1, 3]) for c in range(n_combos)]
    actions = thin + [masked_random_action(env.codec, rng) for _ in range(4)]
    seen = 0
    for a in actions:
        design = env.serving.rates_dict(env.rate_history[-1])
        wanted = env.codec.decode(a, env.rate_history[-1], env.plan)
        _, _, _, _, info = env.step(a)
        sh = info["shield"]
        assert set(sh) >= {"intervened", "reason", "interventions", "missed"}
        if sh["intervened"]:
            seen += 1
            assert sh["reason"] and sh["scale_up"] == (
                plan_signature(tiny, wanted) <= plan_signature(tiny, env.current_plan())
            )
            assert coverage(tiny, env.current_plan(), scaled(design, 1.1)).covers
        else:
            assert coverage(tiny, wanted, scaled(design, 1.1)).covers or sh["missed"]
        assert sh["interventions"] == seen
    assert seen > 0
    plain = tiny_env(tiny)
    plain.reset(seed=4)
    assert "shield" not in plain.step(masked_random_action(plain.codec, rng))[4]
