"""experiments/evaluate_policies.py keeps each (policy, trace) unit's runs per seed, so adding
seeds runs only the new ones and gives the runs a fresh invocation with more seeds would."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import experiment_module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return experiment_module("evaluate_policies")


def quick(bench: ModuleType, cache: Path, seeds: int) -> object:
    return bench.parse_args(
        ["--sim", "des", "--duration", "600", "--seeds", str(seeds), "--cache", str(cache)]
    )


def summary(runs: dict) -> dict:
    return {k: [(r.seed, r.totals, r.policy) for r in v] for k, v in runs.items()}


def test_more_seeds_run_only_the_missing_ones(bench, tmp_path, monkeypatch):
    spec, trace = "milp-reactive:headroom=0.5", "step"
    one = bench.unit(quick(bench, tmp_path / "c", 1), "reactive", spec, trace)
    assert [r.seed for r in one["own"]] == [0] and one["own"][0].policy == "reactive"

    calls: list[int] = []
    real = bench.run_unit

    def counting(args, spec, name, trace, first_seed=0):
        calls.append(first_seed)
        return real(args, spec, name, trace, first_seed=first_seed)

    monkeypatch.setattr(bench, "run_unit", counting)
    two = bench.unit(quick(bench, tmp_path / "c", 2), "reactive", spec, trace)
    assert calls == [1], "seed 0 came from the cache; only seed 1 ran"
    assert bench.cached_seeds(bench.unit_file(quick(bench, tmp_path / "c", 2), spec, trace), 2) == 2
    fresh = bench.unit(quick(bench, tmp_path / "fresh", 2), "reactive", spec, trace)
    assert summary(two) == summary(fresh)
    assert two["own"][0].totals != two["own"][1].totals, "the seeds differ"

    calls.clear()
    again = bench.unit(quick(bench, tmp_path / "c", 1), "reactive", spec, trace)
    assert calls == [] and summary(again) == summary(one), "fewer seeds: the first ones"


def test_a_retrained_policy_at_the_same_path_does_not_reuse_cached_runs(bench, tmp_path):
    """A ``ppo`` unit's cache key covers its policy folder's files: retraining into the same
    folder gives a new key; other policies' keys do not depend on any file."""
    import shutil

    from jbrl.agents.ppo import shipped_policy_dir

    folder = tmp_path / "policy"
    shutil.copytree(str(shipped_policy_dir("vehicle_v2")), folder)
    args = quick(bench, tmp_path / "c", 1)
    args.scenario = "vehicle"
    spec = f"ppo:path={folder}"
    before = bench.unit_file(args, spec, "step")
    assert bench.unit_file(args, spec, "step") == before
    (folder / "normalization.json").write_text("{}")
    bench.policy_files_digest.cache_clear()
    assert bench.unit_file(args, spec, "step") != before
    assert bench.policy_files_digest("milp-static", "vehicle") is None
    shipped = bench.policy_files_digest("ppo:shipped=vehicle_v2:shield=on", "vehicle")
    assert shipped is not None and shipped != bench.policy_files_digest("ppo", "vqa")


def test_a_fault_schedule_reaches_every_run_and_the_cache_key(bench, tmp_path):
    """``--faults``: every run is simulated under the schedule (here vqa's edge-to-cloud link
    1000x slower for the whole 10 minutes, so no request makes the SLO), and the schedule's
    content is part of the cache key."""
    faults = tmp_path / "slow.yaml"
    faults.write_text(
        "faults:\n  - {kind: slow_link, from: edge, to: cloud, at: 0, factor: 1000}\n"
    )
    plain = quick(bench, tmp_path / "c", 1)
    slow = quick(bench, tmp_path / "c", 1)
    slow.faults = str(faults)
    assert bench.unit_file(plain, "milp-static", "step") != bench.unit_file(
        slow, "milp-static", "step"
    )
    ok = bench.unit(plain, "static", "milp-static", "step")["own"][0].totals
    hit = bench.unit(slow, "static", "milp-static", "step")["own"][0].totals
    assert ok["slo_attainment"] > 0.99 and hit["slo_attainment"] < 0.01
    assert "link edge -> cloud x1000 slower 0-inf s" in bench.fault_text(slow)


def test_the_fleet_target_is_15_percent_below_milp_static(bench, tmp_path):
    """On the fleet scenario the checks add the issue's '>= 15 % below milp-static': met at
    0.80 x milp-static's $, missed at 0.90 x (which still meets the 10 % check)."""
    import copy

    from jbrl.evaluation.aggregate import Evaluation, aggregate

    args = quick(bench, tmp_path / "c", 1)
    base = bench.unit(args, "milp-static", "milp-static", "step")["own"][0]
    args.scenario = "fleet"
    for factor, met in ((0.80, True), (0.90, False)):
        subject = copy.deepcopy(base)
        subject.policy = "ppo-v2"
        subject.totals["dollars"] *= factor
        ev = Evaluation(
            scenario="fleet",
            simulator="des",
            seeds=[0],
            interval_s=60.0,
            load_time_s=None,
            policies=["ppo-v2", "milp-static"],
            traces={"step": bench.test_trace("step", bench.load_scenario("vqa"))},
            runs=[subject, base],
        )
        aggregate(ev)
        checks = {
            name: ok for name, ok, _ in bench.subject_checks(args, ev, "ppo-v2", ["milp-static"])
        }
        assert checks[">= 15 % below milp-static (fleet)"] is met
        assert checks[">= 10 % below the cheapest causal baseline at 99 % on every trace"]


def test_with_both_shield_settings_the_subject_meets_baselines_deployed_alike(bench):
    """``--shield both``: a shielded subject is compared with the shielded baselines, its
    unshielded twin with the unshielded ones; references and learned policies never count."""
    args = bench.parse_args(
        ["--shield", "both", "--policies", "ppo-v2=ppo:shipped=vqa_v2,ppo,milp-static,oracle"]
    )
    policies = bench.labelled(args)
    assert bench.baselines(policies, "ppo-v2") == ["milp-static"]
    assert bench.baselines(policies, "ppo-v2 (no shield)") == ["milp-static (no shield)"]
