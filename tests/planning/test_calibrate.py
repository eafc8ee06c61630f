"""The SLO-aware MILP's calibration search (:mod:`jbrl.planning.milp.calibrate`): the ladder of
per-stage looseness and the capacity-only floor below it."""

from __future__ import annotations

import math

from jbrl.planning.milp import MilpPlanner
from jbrl.planning.milp.calibrate import FLOOR, FLOOR_UTILS, Attempt, search_looseness
from jbrl.scenario import load_scenario
from jbrl.scenario.synth import synth_scenario


def fake_floor(costs: dict[float, float], confirmed_up_to: float, calls: list[float]):
    """A floor whose plan at cap ``u`` costs ``costs[u]`` and is confirmed for ``u <= confirmed_up_to``."""

    def floor(u: float) -> Attempt[str]:
        calls.append(u)
        return Attempt(FLOOR, f"u={u}", costs[u], u <= confirmed_up_to + 1e-12, util=u)

    return floor


def ladder_confirmed_at(cost: float):
    """Every rung has a plan costing ``cost`` and is confirmed (light load)."""
    return lambda theta: Attempt(theta, f"theta={theta}", cost, True)


def linear_costs() -> dict[float, float]:
    """Cost falls as the cap rises: 10 at u = 0.5 ... 5 at u = 1."""
    return {u: 10.0 * (1.0 - (u - 0.5)) for u in FLOOR_UTILS}


def test_floor_taken_at_the_largest_confirmed_cap() -> None:
    calls: list[float] = []
    out = search_looseness(ladder_confirmed_at(9.0), floor=fake_floor(linear_costs(), 0.8, calls))
    assert out.chosen is not None and out.chosen.util == 0.8
    assert out.chosen.solution == "u=0.8"
    # a downward scan that stops at the first confirmed cap
    assert calls == [1.0, 0.95, 0.9, 0.85, 0.8]


def test_floor_scan_finds_a_confirmed_cap_between_rejected_ones() -> None:
    """The prediction need not be monotone in the cap: 0.9 confirmed, 0.75 rejected (bisection
    would probe 0.75 first and miss 0.9)."""
    calls: list[float] = []

    def floor(u: float) -> Attempt[str]:
        calls.append(u)
        return Attempt(FLOOR, f"u={u}", linear_costs()[u], math.isclose(u, 0.9), util=u)

    out = search_looseness(ladder_confirmed_at(9.0), floor=floor)
    assert out.chosen is not None and out.chosen.util == 0.9
    assert calls == [1.0, 0.95, 0.9]


def test_floor_scan_stops_when_caps_stop_being_cheaper() -> None:
    calls: list[float] = []
    # loosest rung costs 7.5: caps below 0.75 cost more; none confirmed
    out = search_looseness(ladder_confirmed_at(7.5), floor=fake_floor(linear_costs(), 0.0, calls))
    assert out.chosen is not None and out.chosen.util is None
    assert calls == [1.0, 0.95, 0.9, 0.85, 0.8, 0.75]


def test_floor_not_taken_when_no_cheaper_cap_is_confirmed() -> None:
    calls: list[float] = []
    # only caps <= 0.6 are confirmed, and they cost more than the loosest rung (7.0)
    out = search_looseness(ladder_confirmed_at(7.0), floor=fake_floor(linear_costs(), 0.6, calls))
    assert out.chosen is not None and out.chosen.util is None and out.chosen.theta == 8.0


def test_floor_at_full_capacity_when_confirmed() -> None:
    calls: list[float] = []
    out = search_looseness(ladder_confirmed_at(9.0), floor=fake_floor(linear_costs(), 1.0, calls))
    assert out.chosen is not None and out.chosen.util == 1.0 and calls == [1.0]


def test_floor_not_tried_when_the_loosest_rung_is_rejected() -> None:
    calls: list[float] = []

    def attempt(theta: float) -> Attempt[str]:
        return Attempt(theta, f"theta={theta}", 10.0 / theta, theta <= 1.0)

    out = search_looseness(attempt, floor=fake_floor(linear_costs(), 1.0, calls))
    assert calls == []
    assert out.chosen is not None and out.chosen.theta == 1.0


def test_the_floor_removes_padding_on_a_light_synth_load() -> None:
    """synth seed 0 at half its SLO-aware max rate: every per-stage rung pads (its plan is
    predicted near 100 %); the floor's capacity-only plan is cheaper and still predicted to
    meet the target."""
    s = synth_scenario(operators=3, variants=2, workers=12, tiers=2, seed=0)
    mr = MilpPlanner().max_rate(s)
    rates = {k: 0.5 * v for k, v in mr.rates.items()}
    res = MilpPlanner().plan(s, rates)
    lat = res.extra["latency"]
    rungs = lat["rungs"]
    loosest = next(r for r in rungs if r["theta"] == 8.0)
    assert loosest["confirmed"]
    assert lat["theta"] is None and lat["max_util"] is not None
    assert res.total_cost is not None and res.total_cost < loosest["objective"] - 1e-6
    assert lat["predicted"]["attainment"] >= s.slo.attainment - 1e-6
    assert not any(math.isinf(r["objective"]) for r in rungs if r["max_util"] == lat["max_util"])


def test_a_combination_plans_wherever_its_max_rate_says_it_can() -> None:
    # The cost model bounds each worker column by the workers it takes to serve the demand;
    # with stage levels that bound must use the tightest level's SLO-safe rate (the path
    # budgets may force it), or the cost model turns infeasible below the max rate: vqa's
    # resnet34 combination had max rate 1.07 x nominal and no plan at 1.0 x.
    s = load_scenario("vqa")
    for variants in (
        {"ExtractImageFeature": "resnet34", "SpeechRecognition": "wav2vec2-large"},
        {"ExtractImageFeature": "resnet101", "SpeechRecognition": "wav2vec2-base"},
    ):
        planner = MilpPlanner(max_batch=1, variants=variants)
        mr = planner.max_rate(s)
        assert mr.status == "optimal" and mr.scale > 1.0
        for f in (0.5, 0.95):
            rates = {k: v * f * mr.scale for k, v in s.nominal_rates().items()}
            res = planner.plan(s, rates=rates)
            assert res.feasible, (variants, f, res.to_dict().get("reason"))
