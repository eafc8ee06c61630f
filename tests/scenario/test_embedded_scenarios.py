"""The embedded scenarios (vqa, vehicle, fleet): they load, every number has a provenance, every
variant has measured CPU profiles at batch sizes 1, 2, 4, 8 (and derived GPU ones), the fan-out
exists, the nominal load is about half of what the infrastructure sustains, the latency SLO is
reachable with margin, vehicle has a real variant choice and fleet is fleet-scale."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from jbrl.scenario import embedded_scenarios, load_scenario
from jbrl.scenario.model import Scenario

NAMES = ["vqa", "vehicle", "fleet"]
SMALL = ["vqa", "vehicle"]  # small enough for the exhaustive capacity search
BATCHES = [1, 2, 4, 8]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=NAMES)
def scenario(request) -> Scenario:
    return load_scenario(request.param)


def test_embedded_names_are_listed():
    assert set(NAMES) <= set(embedded_scenarios())


@pytest.mark.parametrize("name", NAMES)
def test_file_and_embedded_agree(name):
    from_file = load_scenario(ROOT / "configs" / "scenarios" / f"{name}.yaml")
    assert from_file == load_scenario(name)


def test_every_variant_has_a_profile(scenario):
    for op in scenario.operators:
        for var in op.variants:
            assert any(p.operator == op.name and p.variant == var for p in scenario.profiles), (
                op.name,
                var,
            )
            # and a measured CPU profile, not only a derived GPU one
            assert any(
                p.operator == op.name and p.variant == var and _measured(p)
                for p in scenario.profiles
            ), (op.name, var)


def _measured(p) -> bool:
    return "measured by `jbrl profile`" in (p.provenance or "")


def test_every_number_has_a_provenance(scenario):
    items = [
        *scenario.profiles,
        *scenario.workers,
        *scenario.links,
        *scenario.sources,
        *scenario.edges,
        *scenario.accuracy.table,
    ]
    assert scenario.links, "the edge -> cloud link and its price must be listed"
    for it in items:
        assert it.provenance and it.provenance.strip(), it
    for key in ("latency_cpu", "latency_gpu", "accuracy", "prices", "network", "rates", "slo"):
        assert scenario.provenance.get(key, "").strip(), key
    for p in scenario.profiles:
        assert _measured(p) or (p.provenance or "").startswith("derived"), p


def test_profiles_are_consistent(scenario):
    measured = _measured_batches()
    for p in scenario.profiles:
        assert 0 < p.p50_ms <= p.p90_ms
        assert p.output_kb is not None and p.output_kb > 0
        assert p.load_s is not None and p.load_s >= 0
        # batch profiles: every batch size measured on the CPU (1, 2, 4, 8; the slowest vehicle
        # detectors may lack the largest, see _measured_batches), measured or derived alike;
        # batch 1 is the profile
        if scenario.name == "vqa":
            # vqa keeps the profiles the shipped vqa policy was trained on (batch 1, and 4 for
            # the quick models); rebuilding it from configs/profiles changes that policy's
            # ladder and layout, so it is rebuilt when the policy is retrained (issue 13)
            assert [b.batch for b in p.batches] in ([], [1], [1, 4]), p.variant
            continue
        want = measured[p.variant]
        assert [b.batch for b in p.batches] == want, (p.operator, p.variant, p.worker_type)
        if scenario.name != "vehicle":
            assert want == BATCHES, p.variant
        assert (p.batches[0].p50_ms, p.batches[0].p90_ms) == (p.p50_ms, p.p90_ms)
        assert all(0 < b.p50_ms <= b.p90_ms for b in p.batches)
        # a batch can be padded to a larger one: whole-batch latency never falls with the size
        pairs = list(itertools.pairwise(p.batches))
        assert all(a.p50_ms <= b.p50_ms and a.p90_ms <= b.p90_ms for a, b in pairs), p.variant


def _measured_batches() -> dict[str, list[int]]:
    """Batch sizes of every variant in configs/profiles/cpu-1thread.yaml: 1, 2, 4, 8, or for
    the slow vehicle detectors (seconds per frame on one core) a prefix of at least 1, 2 when
    the shared machine left no time for the larger ones (re-measure with
    experiments/profile_scenarios.py measure --models ...)."""
    import yaml

    doc = yaml.safe_load((ROOT / "configs" / "profiles" / "cpu-1thread.yaml").read_text())
    out = {p["variant"]: [b["batch"] for b in p["batches"]] for p in doc["profiles"]}
    for var, batches in out.items():
        assert len(batches) >= 2 and batches == BATCHES[: len(batches)], (var, batches)
    return out


def test_vehicle_has_a_fan_out_edge():
    sc = load_scenario("vehicle")
    fan = [e for e in sc.edges if e.ratio > 1]
    assert fan and fan[0].source == "Detector" and fan[0].target == "ReId"
    demand = sc.demand()
    assert demand["ReId"] == pytest.approx(demand["Detector"] * fan[0].ratio)
    assert demand["Tracker"] == pytest.approx(demand["Camera"], rel=1e-9)


def _max_scale(sc: Scenario, assignment: dict[str, str]) -> float:
    """Largest s such that s x nominal demand is served (one operator per worker)."""
    ops = [o.name for o in sc.operators]
    demand = sc.demand()
    # group identical workers (same capacity for every operator) to keep the search small
    groups: dict[tuple[float, ...], int] = {}
    for w in sc.workers:
        sig = tuple(sc.capacity(op, assignment[op], w.name) for op in ops)
        groups[sig] = groups.get(sig, 0) + 1
    sigs = list(groups)
    per_group = [
        [c for c in itertools.product(range(groups[s] + 1), repeat=len(ops)) if sum(c) <= groups[s]]
        for s in sigs
    ]
    best = 0.0
    for split in itertools.product(*per_group):
        s = math.inf
        for j, op in enumerate(ops):
            cap = sum(split[g][j] * sigs[g][j] for g in range(len(sigs)))
            s = min(s, cap / demand[op])
        best = max(best, s)
    return best


@pytest.mark.parametrize("name", SMALL)
def test_nominal_load_is_about_half_of_the_sustainable_load(name):
    scenario = load_scenario(name)
    feasible = [a for a, acc in scenario.variant_combinations() if acc >= scenario.slo.min_accuracy]
    assert feasible, "the default accuracy target must be reachable"
    assert len(feasible) < len(list(scenario.variant_combinations())) or len(feasible) == 1
    best = max(_max_scale(scenario, a) for a in feasible)
    assert 1.9 <= best <= 2.6, f"infrastructure sustains {best:.2f}x the nominal load"


def _worst_path_ms(sc: Scenario, assignment: dict[str, str]) -> float:
    """Slowest source-to-sink path: each operator at its slowest worker type's p90, plus a
    cross-tier transfer (size / bandwidth + latency) on every edge."""
    net = sc.network
    slowest: dict[str, float] = {}
    for op in sc.operator_map:
        ps = [p for p in sc.profiles if p.operator == op and p.variant == assignment[op]]
        slowest[op] = max(sc.planning_ms(p) for p in ps)
    finish: dict[str, float] = {s.name: 0.0 for s in sc.sources}
    src_var = {s.name: "" for s in sc.sources}
    for op in sc.topo_order:
        arrivals = []
        for e in sc.in_edges[op]:
            kb = e.message_kb_for(assignment.get(e.source, src_var.get(e.source, "")))
            transfer = kb / 1024.0 / net.cross_tier_bandwidth_mb_s * 1000.0
            arrivals.append(finish[e.source] + transfer + net.cross_tier_latency_ms)
        finish[op] = max(arrivals) + slowest[op]
    return max(finish[s] for s in sc.sinks)


def test_latency_slo_is_reachable_with_margin(scenario):
    for assignment, acc in scenario.variant_combinations():
        if acc < scenario.slo.min_accuracy:
            continue
        worst = _worst_path_ms(scenario, assignment)
        assert worst <= 0.9 * scenario.slo.latency_ms, (assignment, worst)


def test_vqa_accuracy_is_the_stated_product():
    sc = load_scenario("vqa")
    top1 = {"resnet18": 69.758, "resnet152": 78.312}
    wer = {"wav2vec2-base": 8.6, "wav2vec2-large": 3.9}
    for img, t in top1.items():
        for sp, w in wer.items():
            acc = sc.accuracy_of(
                {"ExtractImageFeature": img, "SpeechRecognition": sp, "VQA": "visualbert"}
            )
            assert acc == pytest.approx(t * (1 - w / 100), abs=1e-3)


def test_milp_agrees_that_nominal_is_about_half(scenario):
    """Cross-check with the exact planner where it is installed (it also enforces forbidden
    backward traffic and bandwidth, so its bound can only be lower than the capacity one;
    capacity-only, as the nominal rates were set)."""
    milp = pytest.importorskip("jbrl.planning.milp")
    result = milp.max_rate(scenario, latency_model="none")
    assert result.status in ("optimal", "feasible")
    share = 3.0 if scenario.name == "fleet" else 2.0  # fleet: a third (scenario_fleet.py)
    assert 0.95 * share <= result.scale <= 1.15 * share, result.scale


def test_profile_files_load_with_every_batch_size():
    """configs/profiles: the measured CPU file and the derived GPU files are valid profiles
    with the measured batch sizes (1, 2, 4, 8; see _measured_batches), and every scenario
    variant is in them."""
    import yaml

    from jbrl.scenario.model import Profile

    names: dict[str, set[str]] = {}
    measured = _measured_batches()
    for f in sorted((ROOT / "configs" / "profiles").glob("*.yaml")):
        profiles = [Profile.model_validate(p) for p in yaml.safe_load(f.read_text())["profiles"]]
        assert profiles, f
        for p in profiles:
            assert [b.batch for b in p.batches] == measured[p.variant], f.name
        names[f.name] = {p.variant for p in profiles}
    assert {"cpu-1thread.yaml", "gpu-t4-derived.yaml", "gpu-v100-derived.yaml"} <= set(names)
    for sc in (load_scenario(n) for n in NAMES):
        for op in sc.operators:
            for var in op.variants:
                assert var in names["cpu-1thread.yaml"], (sc.name, var)  # names = profile names


def test_vehicle_has_a_real_variant_choice():
    """At least four combinations meet the target, and the MILP's choice changes with the load
    across 0.25 .. 0.9 of the largest sustainable rate (experiments/vehicle_choice.py)."""
    milp = pytest.importorskip("jbrl.planning.milp")
    from jbrl.planning import get_planner

    sc = load_scenario("vehicle")
    meeting = [a for a, acc in sc.variant_combinations() if acc >= sc.slo.min_accuracy]
    assert len(meeting) >= 4
    peak = milp.max_rate(sc).scale * sc.sources[0].rate
    picks = set()
    for f in (0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.9):
        res = get_planner("milp").plan(sc, rates={"Camera": f * peak})
        assert res.feasible and res.accuracy >= sc.slo.min_accuracy
        ma = res.plan.model_assignment
        picks.add((ma["Detector"], ma["ReId"]))
    assert len(picks) >= 2, picks


def test_fleet_is_fleet_scale():
    sc = load_scenario("fleet")
    assert len(sc.workers) >= 60 and len(sc.tiers) == 3
    assert len(sc.sources) >= 3 and len({s.rate for s in sc.sources}) == len(sc.sources)
    gpu_types = {w.type for w in sc.workers if w.type.endswith(("t4", "v100"))}
    assert {"cloud-t4", "cloud-v100"} <= gpu_types
    text = (ROOT / "configs" / "scenarios" / "fleet.yaml").read_text()
    assert text.count("count:") >= 8  # pools, not lists of workers
    for link in sc.links:  # every inter-tier link has a cited price, bandwidth and latency
        assert link.bandwidth_mb_s and link.latency_ms is not None and link.provenance
    # a site's devices hold only that site's operators
    for w in sc.workers:
        if w.type.startswith("site-"):
            site = w.type.split("-")[1]
            ops = {p.operator for p in sc.profiles if p.worker_type == w.type}
            assert ops and all(o.endswith(f"-{site}") for o in ops), (w.type, ops)
