"""The pieces of the MILP package: the model's column and row order (HiGHS's answer among
equal-cost optima depends on it), combinations, the transport split, the infeasibility text."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from jbrl.errors import InputError
from jbrl.planning.milp import MaxRate, MilpPlanner
from jbrl.planning.milp.bounds import explain_infeasible
from jbrl.planning.milp.combos import allowed_combinations, chosen_combo, used_variants
from jbrl.planning.milp.extract import transport
from jbrl.planning.milp.layout import plan_layout
from jbrl.planning.milp.model import build_model
from jbrl.planning.milp.warm_start import warm_start_values
from jbrl.planning.plan import Plan, WorkerShare
from jbrl.scenario import Scenario

# The tiny scenario at accuracy 0 (both detect variants), re-planned with a reconfiguration
# penalty from its own plan: every section of the model appears once. e1 and e2 form a group.
TINY_COLUMNS = [
    "z_0_small", "z_1_large", "y_detect_small", "y_detect_large",
    "x_e1_detect_small", "r_e1_detect_small", "d_e1_detect_small",
    "x_e1_detect_large", "r_e1_detect_large", "d_e1_detect_large",
    "x_e1_track_default", "r_e1_track_default", "d_e1_track_default",
    "x_c1_detect_small", "r_c1_detect_small", "x_c1_detect_large", "r_c1_detect_large",
    "x_c2_track_default", "r_c2_track_default",
    "f_detect_track_e1_e1_small", "f_detect_track_e1_c2_small",
    "f_detect_track_e1_e1_large", "f_detect_track_e1_c2_large",
    "f_detect_track_c1_c2_small", "f_detect_track_c1_c2_large",
]  # fmt: skip
TINY_ROWS = [
    "pick_combo", "variant_detect_small", "variant_detect_large",
    "cap_e1_detect_small", "min_rate_e1_detect_small", "use_variant_e1_detect_small",
    "reconfig_e1_detect_small",
    "cap_e1_detect_large", "min_rate_e1_detect_large", "use_variant_e1_detect_large",
    "reconfig_e1_detect_large",
    "cap_e1_track_default", "min_rate_e1_track_default", "reconfig_e1_track_default",
    "one_op_e1",
    "cap_c1_detect_small", "min_rate_c1_detect_small", "use_variant_c1_detect_small",
    "cap_c1_detect_large", "min_rate_c1_detect_large", "use_variant_c1_detect_large",
    "one_op_c1",
    "cap_c2_track_default", "min_rate_c2_track_default", "one_op_c2",
    "demand_detect", "variant_rate_detect_small", "variant_rate_detect_large", "demand_track",
    "outflow_detect_track_e1_small", "outflow_detect_track_e1_large",
    "outflow_detect_track_c1_small", "outflow_detect_track_c1_large",
    "inflow_detect_track_e1", "inflow_detect_track_c2",
]  # fmt: skip


def test_model_columns_and_rows_keep_their_order(tiny: Scenario) -> None:
    current = MilpPlanner(latency_model="none").plan(tiny, accuracy=0.0).plan
    planner = MilpPlanner(latency_model="none", reconfig_penalty=0.5)
    options = planner.model_options()
    combos = allowed_combinations(tiny, 0.0, {}, False)
    layout = plan_layout(tiny, combos, current, options)
    built = build_model(tiny, tiny.demand(), layout, current, options, scale_mode=False)
    assert built.lm.col_names == TINY_COLUMNS
    assert built.lm.row_names == TINY_ROWS
    assert built.size() == {
        "columns": len(TINY_COLUMNS),
        "rows": len(TINY_ROWS),
        "integers": 2 + 6,  # z and x
        "combinations": 2,
    }


def test_max_rate_model_has_the_scale_and_no_costs(tiny: Scenario) -> None:
    options = MilpPlanner(latency_model="none").model_options()
    combos = allowed_combinations(tiny, 0.0, {}, False)
    layout = plan_layout(tiny, combos, None, options)  # 'small' dominates 'large': pruned
    assert [c[0]["detect"] for c in layout.combos] == ["small"]
    assert layout.notes == ["1 dominated variant combination(s) dropped"]
    built = build_model(tiny, tiny.demand(), layout, None, options, scale_mode=True)
    assert built.lam == 0 and built.lm.col_names[0] == "scale"
    assert built.z == []
    assert built.lm.col_cost == [-1.0] + [0.0] * (built.lm.num_cols - 1)


def test_allowed_combinations(tiny: Scenario) -> None:
    assert [c[1] for c in allowed_combinations(tiny, 0.0, {}, False)] == [70.0, 80.0]
    assert [c[1] for c in allowed_combinations(tiny, 75.0, {}, False)] == [80.0]
    assert [c[1] for c in allowed_combinations(tiny, 0.0, {}, True)] == [80.0]
    assert [c[1] for c in allowed_combinations(tiny, 0.0, {"detect": "small"}, False)] == [70.0]
    with pytest.raises(InputError, match="variants.detect"):
        allowed_combinations(tiny, 0.0, {"detect": "huge"}, False)
    combos = allowed_combinations(tiny, 0.0, {}, False)
    assert used_variants(tiny, combos[1:]) == {"detect": ["large"], "track": ["default"]}
    assert chosen_combo(combos, [], [0.0]) == combos[0]
    assert chosen_combo(combos, [3, 4], [0, 0, 0, 0.0, 1.0]) == combos[1]


def test_transport_fills_receivers_exactly() -> None:
    by_group_op: Mapping[tuple[int, str], list[tuple[str, float]]] = {
        (0, "u"): [("a1", 4.0), ("a2", 4.0)],  # senders: 8 req/s, ratio 1.5 -> up to 12
        (1, "v"): [("b1", 5.0), ("b2", 5.0), ("b3", 2.0)],  # receivers: 12 req/s
    }
    flows = transport("u", "v", 1.5, {(0, 1): 12.0}, by_group_op)
    into: dict[str, float] = {}
    out: dict[str, float] = {}
    for f in flows:
        assert f.edge == ("u", "v")
        into[f.receiver] = into.get(f.receiver, 0.0) + f.rate
        out[f.sender] = out.get(f.sender, 0.0) + f.rate
    assert into == pytest.approx({"b1": 5.0, "b2": 5.0, "b3": 2.0})
    assert all(out[w] <= 6.0 + 1e-9 for w in out)  # ratio x what each sender serves


class _Probe:
    """A planner that sustains a fixed multiple of any request."""

    max_util = 0.9
    most_accurate = False

    def __init__(self, scale: float, variants: dict[str, str] | None = None) -> None:
        self.scale = scale
        self.variants = variants or {}

    def max_rate(
        self,
        scenario: Scenario,
        accuracy: float | None = None,
        rates: Mapping[str, float] | None = None,
    ) -> MaxRate:
        base = dict(rates or scenario.nominal_rates())
        scaled = {s: self.scale * v for s, v in base.items()}
        return MaxRate(self.scale, scaled, base, accuracy or 0.0, "optimal", 0.0)


def test_explain_infeasible(tiny: Scenario) -> None:
    rates = {"cam": 10.0}
    short = explain_infeasible(tiny, rates, 75.0, _Probe(0.5))
    assert short["message"].startswith("the requested rates need more capacity")
    assert short["max_rate_scale"] == 0.5 and short["max_rates"] == {"cam": 5.0}
    assert short["max_util"] == 0.9 and short["proven"] is True
    too_accurate = explain_infeasible(tiny, rates, 90.0, _Probe(2.0))
    assert too_accurate["message"].startswith("accuracy 90 is above the best reachable 80")
    assert too_accurate["max_rate_accuracy"] == 80.0
    other = explain_infeasible(tiny, rates, 75.0, _Probe(2.0), "custom")
    assert other["message"] == "custom"
    fixed = explain_infeasible(tiny, rates, 0.0, _Probe(2.0, {"detect": "small"}))
    assert fixed["best_reachable_accuracy"] == 70.0


def test_warm_start_values(tiny: Scenario) -> None:
    start = MilpPlanner(latency_model="none").plan(tiny).plan
    planner = MilpPlanner(latency_model="none")
    options = planner.model_options()
    combos = allowed_combinations(tiny, 75.0, {}, False)
    built = build_model(
        tiny, tiny.demand(), plan_layout(tiny, combos, None, options), None, options, False
    )
    values = warm_start_values(tiny, built, start, tiny.nominal_rates())
    assert values is not None
    cols, vals = values
    assert list(cols) == list(built.x.values())  # one combination: no z columns
    assert sum(vals) == sum(len(v) for v in start.worker_assignment.values())
    other = Plan({"detect": "small"}, {"detect": [WorkerShare("c1", None)]}, None, {})
    assert warm_start_values(tiny, built, other, tiny.nominal_rates()) is None
