"""What makes the plots readable, checked on the figures: shared y-axes from 0, legends outside
the data, the SLO bound and target drawn, model-load downtime recorded and shaded, minutes,
plain tick labels, titles naming scenario, trace and simulator."""

from __future__ import annotations

import math

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from jbrl.evaluation.plots import (  # noqa: E402
    evaluation_figures,
    simulation_figure,
    trace_figure,
)
from jbrl.evaluation.runner import evaluate  # noqa: E402
from jbrl.planning import get_planner  # noqa: E402
from jbrl.scenario import load_scenario  # noqa: E402
from jbrl.scenario.traces import generate_trace  # noqa: E402
from jbrl.sim import make_simulator, rollout  # noqa: E402

POLICIES = ["milp-reactive:headroom=0.2", "milp-static", "autoscaler"]


@pytest.fixture(scope="module")
def vqa():
    return load_scenario("vqa")


@pytest.fixture(scope="module")
def ev(vqa):
    trace = generate_trace("step", 900, seed=1, sources=vqa, params={"low": 0.6, "high": 1.6})
    return evaluate(vqa, {"ramp": trace}, POLICIES, sim="fluid", seeds=1, load_time=45.0)


@pytest.fixture(scope="module")
def figs(ev):
    out = evaluation_figures(ev, "ramp")
    for fig in out.values():
        fig.canvas.draw()
    yield out
    for fig in out.values():
        plt.close(fig)


def _labels(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


def _spans(ax) -> list:
    """The shaded spans of ``ax`` (the step lines are patches too)."""
    from matplotlib.patches import StepPatch

    return [p for p in ax.patches if not isinstance(p, StepPatch)]


def _is_plain(label: str) -> bool:
    return not any(x in label for x in ("$", "\\times", "×", "^", "e+"))


def test_model_loads_are_recorded_with_their_load_time(ev):
    run = ev.first_run("milp-reactive:headroom=0.2", "ramp")
    assert run is not None
    loads = run.series["reconfigurations"]
    loading = run.series["loading_s"]
    assert sum(loads) > 0
    for n, s in zip(loads, loading, strict=True):
        assert (s == 45.0) if n > 0 else (s == 0.0)  # every load forced to 45 s


def test_capacity_panels_share_y_from_zero_with_loading_shaded(ev, figs):
    fig = figs["capacity"]
    axes = fig.axes
    assert len(axes) == len(POLICIES)
    limits = {ax.get_ylim() for ax in axes}
    assert len(limits) == 1 and next(iter(limits))[0] == 0  # one scale, from 0
    top = next(iter(limits))[1]
    peak = max(max(r.series["capacity"] + r.series["peak_load"]) for r in ev.runs)
    assert top >= peak  # nothing cut off
    reactive = axes[POLICIES.index("milp-reactive:headroom=0.2")]
    assert _spans(reactive), "model-load downtime not shaded"
    assert _spans(axes[POLICIES.index("milp-static")]) == []  # no loads, no shading
    (legend,) = fig.legends
    lowest = min(ax.get_window_extent().y0 for ax in axes)
    assert legend.get_window_extent().y1 <= lowest  # below the panels, not on the data
    texts = [t.get_text() for t in legend.get_texts()]
    assert "peak load in interval" in texts and any("model loading" in t for t in texts)
    assert axes[-1].get_xlabel() == "time (min)"
    title = fig.get_suptitle()
    assert "vqa" in title and "ramp" in title and "fluid" in title


@pytest.mark.parametrize("kind", ["attainment", "dollars", "latency-cdf"])
def test_single_axes_plots(ev, figs, kind):
    (ax,) = figs[kind].axes
    legend = ax.get_legend()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # outside the data
    if kind != "latency-cdf":
        assert ax.get_ylim()[0] == 0 and ax.get_xlabel() == "time (min)"
    for axis in (ax.xaxis, ax.yaxis):
        assert all(_is_plain(x) for x in _labels(axis)), _labels(axis)
    title = ax.get_title()
    assert "vqa" in title and "ramp" in title and "fluid" in title
    texts = " ".join(t.get_text() for t in legend.get_texts())
    if kind == "attainment":
        assert ev.attainment_target in [ln.get_ydata()[0] for ln in ax.get_lines()]
        assert "target 99 %" in texts
    if kind == "latency-cdf":
        assert "latency bound" in texts and "attainment target" in texts


def test_simulation_figure_bound_target_minutes_plain_ticks(vqa):
    plan = get_planner("milp").plan(vqa).plan
    trace = generate_trace("constant", 600, sources=vqa)
    result = rollout(make_simulator("fluid"), vqa, trace, plan, 60.0)
    fig = simulation_figure(result, vqa, "flat.csv")
    fig.canvas.draw()
    rates, attainment, latency, dollars = fig.axes
    assert rates.get_ylim()[0] == 0 and dollars.get_ylim()[0] == 0
    assert vqa.slo.attainment in [ln.get_ydata()[0] for ln in attainment.get_lines()]
    assert vqa.slo.latency_ms in [ln.get_ydata()[0] for ln in latency.get_lines()]
    assert latency.get_yscale() == "log"
    assert all(_is_plain(x) for x in _labels(latency.yaxis)), _labels(latency.yaxis)
    assert dollars.get_xlabel() == "time (min)"
    assert math.isclose(dollars.get_xlim()[1], 10.0, rel_tol=0.1)  # 600 s in minutes
    assert "flat.csv" in fig.get_suptitle() and "fluid" in fig.get_suptitle()
    plt.close(fig)


def test_trace_figure_merges_equal_columns_and_draws_the_limit(vqa):
    trace = generate_trace("step", 600, sources=vqa)
    fig = trace_figure(trace, "t", limits={s: 30.0 for s in trace.columns})
    (ax,) = fig.axes
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0] == " = ".join(trace.columns)  # equal columns named together
    assert any("sustainable" in t for t in texts)
    assert ax.get_ylim()[0] == 0 and ax.get_xlabel() == "time (min)"
    plt.close(fig)
