"""Fluid vs DES at steady load on the JellyBean VQA inputs and on the embedded ``vqa`` scenario:
served throughput within 2 %, dollars within 1 %, SLO attainment within 3 points, at utilisation
0.5, 0.8, 0.95 and in overload (see :mod:`jbrl.sim.agreement` for the procedure)."""

from __future__ import annotations

import pytest

from jbrl.planning.plan import plan_from_dict
from jbrl.sim.agreement import busiest_utilization, compare
from tests.conftest import JELLYBEAN_REFERENCE_PLAN

# The MILP's plan for vqa at its nominal rates (jbrl plan --scenario vqa), fixed here so the
# test does not depend on the planner.
VQA_PLAN = {
    "model_assignment": {
        "ExtractImageFeature": "resnet101",
        "SpeechRecognition": "wav2vec2-base",
        "VQA": "visualbert",
    },
    "worker_assignment": {
        "ExtractImageFeature": [{"worker": f"edge-cpu-{i}", "rate": 4.725} for i in (1, 2, 3, 4)],
        "SpeechRecognition": [{"worker": "cloud-gpu-1", "rate": 18.9}],
        "VQA": [{"worker": f"cloud-cpu-{i}", "rate": 6.3} for i in (1, 2, 3)],
    },
    "routing": [
        *[
            {
                "edge": ["ReadImage", "ExtractImageFeature"],
                "from": "ReadImage",
                "to": f"edge-cpu-{i}",
                "rate": 4.725,
            }
            for i in (1, 2, 3, 4)
        ],
        {
            "edge": ["ReadSpeech", "SpeechRecognition"],
            "from": "ReadSpeech",
            "to": "cloud-gpu-1",
            "rate": 18.9,
        },
        {
            "edge": ["ExtractImageFeature", "VQA"],
            "from": "edge-cpu-1",
            "to": "cloud-cpu-1",
            "rate": 4.725,
        },
        {
            "edge": ["ExtractImageFeature", "VQA"],
            "from": "edge-cpu-2",
            "to": "cloud-cpu-1",
            "rate": 1.575,
        },
        {
            "edge": ["ExtractImageFeature", "VQA"],
            "from": "edge-cpu-2",
            "to": "cloud-cpu-2",
            "rate": 3.15,
        },
        {
            "edge": ["ExtractImageFeature", "VQA"],
            "from": "edge-cpu-3",
            "to": "cloud-cpu-2",
            "rate": 3.15,
        },
        {
            "edge": ["ExtractImageFeature", "VQA"],
            "from": "edge-cpu-3",
            "to": "cloud-cpu-3",
            "rate": 1.575,
        },
        {
            "edge": ["ExtractImageFeature", "VQA"],
            "from": "edge-cpu-4",
            "to": "cloud-cpu-3",
            "rate": 4.725,
        },
        *[
            {
                "edge": ["SpeechRecognition", "VQA"],
                "from": "cloud-gpu-1",
                "to": f"cloud-cpu-{i}",
                "rate": 6.3,
            }
            for i in (1, 2, 3)
        ],
    ],
}

# (utilisation, seconds per DES run, seeds): near saturation waits converge slowly
LEVELS = [(0.5, 1800, (0,)), (0.8, 1800, (0,)), (0.95, 3600, (0,)), (1.2, 1800, (0,))]
VQA_LEVELS = [(0.5, 1800, (0,)), (0.8, 1800, (0,)), (0.95, 7200, (0, 1)), (1.2, 1800, (0,))]


def check(row) -> None:
    assert abs(row.throughput_diff) <= 0.02, row
    assert abs(row.dollars_diff) <= 0.01, row
    assert abs(row.slo_diff_points) <= 3.0, row


@pytest.mark.slow
@pytest.mark.parametrize(("rho", "duration", "seeds"), LEVELS)
def test_agreement_on_jellybean_inputs(jellybean_bounded, rho, duration, seeds):
    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    check(compare(jellybean_bounded, plan, rho, duration, seeds=seeds))


@pytest.mark.slow
@pytest.mark.parametrize(("rho", "duration", "seeds"), VQA_LEVELS)
def test_agreement_on_vqa(vqa, rho, duration, seeds):
    plan = plan_from_dict(VQA_PLAN)
    assert 0.7 < busiest_utilization(vqa, plan) < 1.0
    check(compare(vqa, plan, rho, duration, seeds=seeds))


def test_agreement_quick(jellybean_bounded):
    """A fast smoke version for every CI run: moderate load, short runs."""
    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    row = compare(jellybean_bounded, plan, 0.8, 900, warmup=120)
    check(row)
