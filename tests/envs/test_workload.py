"""Training and evaluation traces never share a generator seed; per-source training traces."""

from __future__ import annotations

import numpy as np
import pytest

from jbrl.envs.config import TraceComponent, default_traces
from jbrl.envs.workload import (
    ALL_TRACE_SPECS,
    EVAL_SEED_BASE,
    EVAL_TRACE_SPECS,
    KIND_INDEX_BASE,
    KIND_TRACE_SPECS,
    eval_seed,
    eval_traces,
    product_trace,
    sample_trace,
)


def test_training_and_evaluation_seeds_are_disjoint():
    rng = np.random.default_rng(12345)
    comps = [*default_traces(), TraceComponent(kinds=["phased"], params={"spread_h": (0, 12)})]
    train = {int(sample_trace(comps, rng, 600.0)[1]["seed"]) for _ in range(400)}
    assert max(train) < EVAL_SEED_BASE
    evals = {eval_seed(s, i) for s in range(50) for i in range(len(EVAL_TRACE_SPECS))}
    assert min(evals) >= EVAL_SEED_BASE and not train & evals
    with pytest.raises(ValueError):
        eval_seed(-1, 0)


def test_eval_traces_use_the_eval_seeds():
    traces = eval_traces(duration=1800.0, seed=2)
    for i, (name, tr) in enumerate(traces.items()):
        kinds, params = EVAL_TRACE_SPECS[name]
        again = product_trace(kinds, params, 1800.0, eval_seed(2, i))
        np.testing.assert_array_equal(tr.values, again.values)


def test_per_source_kinds_give_per_source_training_traces():
    nominal = {"a": 2.0, "b": 4.0, "c": 1.0}
    comp = TraceComponent(kinds=["phased", "bursty"], params={"phased.spread_h": 6.0})
    rng = np.random.default_rng(0)
    tr, info = sample_trace([comp], rng, 7200.0, max_scale=1.5, nominal=nominal)
    assert tr.columns == ("a", "b", "c") and info["seed"] < EVAL_SEED_BASE
    assert (tr.values <= 1.5 * np.array([2.0, 4.0, 1.0]) + 1e-9).all()
    # lockstep kinds keep the old scale traces, even with nominal rates given
    plain = TraceComponent(kinds=["diurnal"], params={})
    tr2, _ = sample_trace([plain], np.random.default_rng(0), 7200.0, nominal=nominal)
    assert tr2.is_scale


def test_one_test_trace_per_generator_kind_on_its_own_seeds():
    """The per-kind evaluation traces: their own generator seeds (never a training seed, never
    one of the held-out set's), different for the test (0) and validation (1) sets, and the
    same trace for the same set."""
    assert len(EVAL_TRACE_SPECS) <= KIND_INDEX_BASE and KIND_INDEX_BASE + len(KIND_TRACE_SPECS) < 97
    names = list(KIND_TRACE_SPECS)
    test = eval_traces(duration=3600.0, seed=0, names=names)
    val = eval_traces(duration=3600.0, seed=1, names=names)
    again = eval_traces(duration=3600.0, seed=0, names=names[::-1])
    for i, name in enumerate(names):
        kinds, params = KIND_TRACE_SPECS[name]
        want = product_trace(kinds, params, 3600.0, eval_seed(0, KIND_INDEX_BASE + i))
        np.testing.assert_array_equal(test[name].values, want.values)
        np.testing.assert_array_equal(again[name].values, want.values)
        assert not np.array_equal(test[name].values, val[name].values)
    held_out = {eval_seed(s, i) for s in range(50) for i in range(len(EVAL_TRACE_SPECS))}
    kinds = {eval_seed(s, KIND_INDEX_BASE + i) for s in range(50) for i in range(len(names))}
    assert not held_out & kinds and min(kinds) >= EVAL_SEED_BASE
    assert set(ALL_TRACE_SPECS) == set(EVAL_TRACE_SPECS) | set(KIND_TRACE_SPECS)


@pytest.mark.parametrize("config", ["ppo_vqa_v2.yaml", "ppo_vehicle_v2.yaml", "ppo_fleet_v2.yaml"])
def test_the_robust_policy_trains_on_every_kind_it_is_tested_on(config: str):
    """The robust policies' training configs draw from every generator kind of the per-kind
    test set and validate on all of them (seed 1), never on the test seed."""
    from pathlib import Path

    from jbrl.agents.ppo.config import load_train_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_train_config(root / "configs" / "train" / config)
    trained = {k for comp in cfg.env.traces for k in comp.kinds}
    for kinds, _ in KIND_TRACE_SPECS.values():
        assert set(kinds) <= trained
    assert set(cfg.eval.traces) == set(ALL_TRACE_SPECS) and cfg.eval.seed != 0
