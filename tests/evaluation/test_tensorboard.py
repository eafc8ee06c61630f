"""TensorBoard output that the usual scripts read: ``EventAccumulator(...).Scalars(tag)`` sees
the evaluation's, the controller's and training's scalars, and the evaluation's custom-scalars
layout puts every policy on one $/hour chart and one SLO-attainment chart."""

from __future__ import annotations

import re

import numpy as np
import pytest

from jbrl.evaluation.plots import file_safe
from jbrl.evaluation.runner import evaluate
from jbrl.evaluation.tensorboard import CHARTS, tag, write_tensorboard
from jbrl.scenario import load_scenario
from jbrl.scenario.traces import generate_trace

pytest.importorskip("tensorboard")
pytest.importorskip("torch")

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

POLICIES = ["milp-reactive:headroom=0.2", "milp-static"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    vqa = load_scenario("vqa")
    traces = {"ramp": generate_trace("step", 300, seed=1, sources=vqa, params={"high": 1.3})}
    ev = evaluate(vqa, traces, POLICIES, sim="fluid", seeds=1, interval=60.0)
    root = write_tensorboard(ev, tmp_path_factory.mktemp("tb"))
    assert root is not None
    return ev, root


def _load(path) -> EventAccumulator:
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalars_are_read_by_event_accumulator(written):
    ev, root = written
    for p in POLICIES:
        acc = _load(root / file_safe(p))
        tags = acc.Tags()["scalars"]
        for key in ("dollars_per_hour", "slo_attainment", "capacity", "dollars_cumulative"):
            assert tag("ramp", key) in tags, (p, key, tags)
        run = ev.first_run(p, "ramp")
        assert run is not None
        per_hour = acc.Scalars(tag("ramp", "dollars_per_hour"))
        assert [e.step for e in per_hour] == [int(t) for t in run.series["t"]]
        # 60 s intervals: $/hour = the interval's dollars x 60
        want = np.asarray(run.series["dollars"]) * 60.0
        assert np.allclose([e.value for e in per_hour], want, rtol=1e-5)
        spent = acc.Scalars(tag("ramp", "dollars_cumulative"))[-1].value
        assert spent == pytest.approx(run.totals["dollars"], rel=1e-5)


def test_custom_scalars_layout_puts_every_policy_on_one_chart(written):
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    _, root = written
    acc = _load(root)
    events = acc.Tensors(metadata.CONFIG_SUMMARY_TAG)
    assert events, acc.Tags()
    layout = layout_pb2.Layout()
    layout.ParseFromString(events[-1].tensor_proto.string_val[0])
    (category,) = layout.category
    assert "ramp" in category.title and "vqa" in category.title
    charts = {c.title: list(c.multiline.tag) for c in category.chart}
    assert set(charts) == set(CHARTS)
    for title in ("$/hour, all policies", "SLO attainment, all policies"):
        (regex,) = charts[title]
        for p in POLICIES:  # the one chart matches a series in every policy's run
            tags = _load(root / file_safe(p)).Tags()["scalars"]
            assert [t for t in tags if re.fullmatch(regex, t)] == [tag("ramp", CHARTS[title])]


def test_controller_log_scalars_are_read(tmp_path):
    from jbrl.control.log import DecisionLog

    log = DecisionLog(tmp_path, tensorboard=True)
    assert log.tensorboard_error is None
    for step in range(3):
        log.decision({"step": step}, {"control/dollars_per_hour": 1.5 + step}, step)
    log.close()
    values = [e.value for e in _load(tmp_path).Scalars("control/dollars_per_hour")]
    assert values == [1.5, 2.5, 3.5]
