"""Shared fixtures: the JellyBean reference inputs and one tiny scenario.

Every Ray the tests start stays on 127.0.0.1: Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``
once, when it is first imported, so it is set here, before any test module imports Ray (the
multi-node cluster of ``test_cluster.py`` starts its head in the test process).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from jbrl.scenario import Scenario, load_scenario, scenario_from_dict
from jbrl.sim import DesSimulator, SimConfig

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"


def experiment_module(name: str) -> ModuleType:
    """Import ``experiments/<name>.py``: the scripts import their siblings (``_results``,
    ``evaluate_vqa``) by plain name, so the folder is on the path while they load."""
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXPERIMENTS))


JELLYBEAN_DIR = REPO.parent / "shared" / "data" / "jellybean-vqa-medium"
PLAN_JSON_KEYS = {
    "solver",
    "status",
    "compute_cost",
    "communication_cost",
    "total_cost",
    "accuracy",
    "model_assignment",
    "worker_assignment",
    "routing",
    "solve_time_s",
    "gap",
}
"""Fields every planner's JSON output carries (``jbrl plan --json``, ``PlanResult.to_dict``)."""

# JellyBean's README plan on its published VQA "medium" inputs.
JELLYBEAN_REFERENCE_PLAN: dict[str, Any] = {
    "model_assignment": {
        "ExtractImageFeature": "resnet18",
        "SpeechRecognition": "wav2vec2-large-960h-lv60-self",
        "VQA": "default",
    },
    "worker_assignment": {
        "ExtractImageFeature": [
            {"worker": "workflow-compute-cpu-1"},
            {"worker": "workflow-compute-cpu-2"},
            {"worker": "workflow-compute-cpu-5"},
        ],
        "SpeechRecognition": [
            {"worker": "workflow-compute-gpu-1"},
            {"worker": "workflow-compute-cpu-3"},
        ],
        "VQA": [{"worker": "workflow-compute-cpu-6"}],
    },
}


def tiny_scenario_dict() -> dict[str, Any]:
    """Two tiers, one source, a two-operator chain, four workers. Numbers are test values."""
    return {
        "name": "tiny",
        "description": "test fixture",
        "tiers": ["edge", "cloud"],
        "sources": [{"name": "cam", "rate": 10.0, "tier": "edge"}],
        "operators": [
            {"name": "detect", "variants": ["small", "large"]},
            {"name": "track"},
        ],
        "edges": [
            {"from": "cam", "to": "detect", "ratio": 1.0, "message_kb": 100.0},
            {
                "from": "detect",
                "to": "track",
                "ratio": 1.0,
                "message_kb": {"small": 1.0, "large": 2.0},
            },
        ],
        "accuracy": {
            "operators": ["detect"],
            "table": [
                {"variants": {"detect": "small"}, "accuracy": 70.0},
                {"variants": {"detect": "large"}, "accuracy": 80.0},
            ],
        },
        "workers": [
            {"name": "e1", "type": "edge-cpu", "tier": "edge", "price": 0.1},
            {"name": "e2", "type": "edge-cpu", "tier": "edge", "price": 0.1},
            {"name": "c1", "type": "cloud-gpu", "tier": "cloud", "price": 1.0},
            {"name": "c2", "type": "cloud-cpu", "tier": "cloud", "price": 0.4},
        ],
        "links": [{"from": "edge", "to": "cloud", "cost_per_gb": 0.5}],
        "profiles": [
            {
                "operator": "detect",
                "variant": "small",
                "worker_type": "edge-cpu",
                "p50_ms": 80,
                "p90_ms": 100,
            },
            {
                "operator": "detect",
                "variant": "large",
                "worker_type": "edge-cpu",
                "p50_ms": 160,
                "p90_ms": 200,
            },
            {
                "operator": "detect",
                "variant": "small",
                "worker_type": "cloud-gpu",
                "p50_ms": 8,
                "p90_ms": 10,
            },
            {
                "operator": "detect",
                "variant": "large",
                "worker_type": "cloud-gpu",
                "p50_ms": 16,
                "p90_ms": 20,
            },
            {"operator": "track", "worker_type": "cloud-cpu", "p50_ms": 20, "p90_ms": 25},
            {"operator": "track", "worker_type": "edge-cpu", "p50_ms": 40, "p90_ms": 50},
        ],
        "slo": {"min_accuracy": 75.0, "latency_ms": 1000.0, "attainment": 0.99},
    }


@pytest.fixture
def tiny_dict() -> dict[str, Any]:
    return tiny_scenario_dict()


@pytest.fixture
def tiny() -> Scenario:
    return scenario_from_dict(tiny_scenario_dict(), "<tiny>")


@pytest.fixture(scope="session")
def jellybean() -> Scenario:
    if not JELLYBEAN_DIR.is_dir():
        pytest.fail(f"JellyBean reference inputs not found at {JELLYBEAN_DIR}")
    return load_scenario(JELLYBEAN_DIR)


JELLYBEAN_BOUND_MS = 2000.0
"""A latency bound for JellyBean's inputs (which have none) where a test needs attainment."""


@pytest.fixture(scope="session")
def jellybean_bounded() -> Scenario:
    """JellyBean's inputs given a 2000 ms latency bound (the import option)."""
    from jbrl.scenario.jellybean import import_jellybean

    if not JELLYBEAN_DIR.is_dir():
        pytest.fail(f"JellyBean reference inputs not found at {JELLYBEAN_DIR}")
    return import_jellybean(JELLYBEAN_DIR, latency_ms=JELLYBEAN_BOUND_MS)


def single_worker_scenario(
    p50_ms: float = 100.0, p90_ms: float | None = None, rate: float = 5.0, slo_ms: float = 1000.0
) -> Scenario:
    """One source, one operator, one worker (same tier): the queue of the queueing-theory tests.

    ``p90_ms`` defaults to ``p50_ms``: a fixed mean for the exponential/deterministic service.
    """
    return scenario_from_dict(
        {
            "name": "single",
            "tiers": ["edge"],
            "sources": [{"name": "src", "rate": rate}],
            "operators": [{"name": "op"}],
            "edges": [{"from": "src", "to": "op", "message_kb": 1.0}],
            "workers": [{"name": "w", "type": "cpu", "tier": "edge", "price": 1.0}],
            "profiles": [
                {
                    "operator": "op",
                    "worker_type": "cpu",
                    "p50_ms": p50_ms,
                    "p90_ms": p50_ms if p90_ms is None else p90_ms,
                }
            ],
            "slo": {"min_accuracy": 0.0, "latency_ms": slo_ms},
        },
        "<single>",
    )


@pytest.fixture(scope="session")
def vqa() -> Scenario:
    """The embedded ``vqa`` scenario."""
    return load_scenario("vqa")


def run_jbrl(
    args: list[str], cwd: Path | None = None, timeout: float = 90.0, mem_gb: float = 6.0
) -> tuple[int, str, str]:
    """``jbrl ARGS`` in a subprocess with a wall-time and an address-space cap, so that a
    command that would run for ever or fill memory fails the test instead of the machine:
    (exit code, stdout, stderr); exit code -9 when it ran past ``timeout``."""
    import os
    import resource
    import subprocess
    import sys

    def cap() -> None:
        size = int(mem_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-c", "from jbrl.cli import run; run()", *args]
    try:
        p = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=cap
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return -9, out, err
    return p.returncode, p.stdout, p.stderr


def assert_bad_input(result: tuple[int, str, str], *needles: str) -> None:
    """Exit 2 with one message (no traceback) that contains every needle."""
    code, out, err = result
    assert "Traceback" not in err and "Traceback" not in out, err[-2000:]
    assert code == 2, f"exit {code}: {err[-2000:]}"
    text = " ".join(err.split())
    for n in needles:
        assert n in text, f"{n!r} not in {text!r}"


def des_latencies(
    scenario: Scenario,
    plan: Any,
    rates: dict[str, float],
    *,
    seconds: float,
    warmup: float,
    seed: int,
    family: str = "lognormal",
    chunks: int = 4,
) -> Any:
    """Request latencies in seconds (a numpy array) of ``plan`` in the DES at constant
    ``rates``: ``seconds`` measured in ``chunks`` equal steps after ``warmup`` seconds, no
    timeout. The latency model's tests compare their predictions with it."""
    import numpy as np

    sim = DesSimulator(SimConfig(service=family, timeout_s=1e9))
    sim.reset(scenario, plan, seed=seed)
    sim.advance(warmup, rates)
    lat: list[float] = []
    for _ in range(chunks):
        sim.advance(seconds / chunks, rates)
        lat += sim.interval_latencies()
    return np.array(lat) / 1000.0
