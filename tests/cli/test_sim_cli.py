"""``jbrl trace generate/show`` and ``jbrl simulate``: output, files, plots, exit codes."""

from __future__ import annotations

import json

import pytest

from jbrl.cli import main
from tests.conftest import JELLYBEAN_DIR, JELLYBEAN_REFERENCE_PLAN

D = str(JELLYBEAN_DIR)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def plan_file(tmp_path):
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(JELLYBEAN_REFERENCE_PLAN))
    return p


@pytest.fixture
def trace_file(tmp_path, capsys):
    p = tmp_path / "t.csv"
    code, _, _ = run(
        capsys, "trace", "generate", "--kind", "diurnal", "--duration", "1800", "--seed", "3",
        "-s", D, "--step", "120", "-p", "mean=0.6", "-p", "amplitude=0.2", "-o", str(p),
    )  # fmt: skip
    assert code == 0
    return p


def test_trace_generate_and_show(tmp_path, capsys):
    out_csv = tmp_path / "b.csv"
    code, out, _ = run(
        capsys, "trace", "generate", "--kind", "bursty", "--duration", "3600", "--seed", "1",
        "--param", "burst=3", "-o", str(out_csv), "--json",
    )  # fmt: skip
    assert code == 0
    summary = json.loads(out)
    assert summary["rows"] == 60 and set(summary["columns"]) == {"scale"}
    assert out_csv.read_text().startswith("# duration_s: 3600")
    png = tmp_path / "b.png"
    code, out, _ = run(capsys, "trace", "show", str(out_csv), "--plot", str(png))
    assert code == 0 and "scale" in out and "3600" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run(capsys, "trace", "show", str(out_csv), "-s", D, "--json")
    assert code == 0 and set(json.loads(out)["columns"]) == {"ReadImage", "ReadSpeech"}


def test_same_seed_same_file(tmp_path, capsys):
    texts = []
    for name in ("a.csv", "b.csv"):
        run(capsys, "trace", "generate", "-k", "random_walk", "-d", "600", "--step", "10",
            "-o", str(tmp_path / name))  # fmt: skip
        texts.append((tmp_path / name).read_text())
    assert texts[0] == texts[1]


@pytest.mark.parametrize("sim", ["fluid", "des"])
def test_simulate_plan_json(capsys, plan_file, trace_file, sim):
    code, out, _ = run(
        capsys, "simulate", "-s", D, "--plan", str(plan_file), "--trace", str(trace_file),
        "--sim", sim, "--interval", "300", "--json",
    )  # fmt: skip
    assert code == 0
    d = json.loads(out)
    assert d["simulator"] == sim and len(d["intervals"]) == 6
    t = d["totals"]
    assert t["arrivals"] == pytest.approx(t["completed"] + t["dropped_total"] + t["in_flight"])
    assert t["compute_dollars"] == pytest.approx(6.242 / 2)
    assert t["slo_attainment"] is None  # JellyBean's inputs have no latency bound
    assert {"p50", "p95", "p99"} <= set(d["intervals"][0]["latency_ms"])


def test_simulate_table_plot_faults_and_options(tmp_path, capsys, plan_file, trace_file):
    faults = tmp_path / "f.yaml"
    faults.write_text(
        "faults:\n"
        "  - {kind: crash, worker: workflow-compute-cpu-5, at: 300, until: 600}\n"
        "  - {kind: slow_link, from: tier0, to: tier1, at: 0, until: 900, factor: 2}\n"
    )
    png = tmp_path / "sim.png"
    code, out, _ = run(
        capsys, "simulate", "-s", D, "--plan", str(plan_file), "--trace", str(trace_file),
        "--sim", "des", "--faults", str(faults), "--seed", "4", "--service", "exponential",
        "--timeout", "5", "--plot", str(png), "--rows", "5",
    )  # fmt: skip
    assert code == 0, out
    assert "Totals" in out and "Per interval" in out and "SLO attainment" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_simulate_milp_static_policy(capsys, trace_file):
    code, out, _ = run(
        capsys, "simulate", "-s", D, "--policy", "milp-static", "--trace", str(trace_file),
        "--json",
    )  # fmt: skip
    assert code == 0
    d = json.loads(out)
    assert d["totals"]["completed"] > 0
    assert "routing" in d["plan"]  # the MILP's plan, made for the trace's peak


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--plan", "PLAN"], "no such file"),  # the trace is missing
        (["--trace", "TRACE"], "exactly one of --plan or --policy"),
        (["--trace", "TRACE", "--plan", "PLAN", "--policy", "milp-static"], "exactly one"),
        (["--trace", "TRACE", "--policy", "ppo"], "unknown policy"),
        (["--trace", "TRACE", "--plan", "PLAN", "--faults", "FAULTS"], "unknown worker"),
        (["--trace", "BADTRACE", "--plan", "PLAN"], "negative"),
        (["--trace", "TRACE", "--plan", "BADPLAN"], "cannot be simulated"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, plan_file, trace_file, args, words):
    faults = tmp_path / "f.yaml"
    faults.write_text("- {kind: crash, worker: gpu-99, at: 1}\n")
    bad_trace = tmp_path / "bad.csv"
    bad_trace.write_text("time_s,ReadImage,ReadSpeech\n0,1,-2\n")
    bad_plan = tmp_path / "bad.json"
    bad_plan.write_text(json.dumps({"worker_assignment": {"VQA": [{"worker": "nobody"}]}}))
    subst = {
        "PLAN": str(plan_file),
        "TRACE": str(trace_file) if "--trace" in args else "",
        "FAULTS": str(faults),
        "BADTRACE": str(bad_trace),
        "BADPLAN": str(bad_plan),
    }
    argv = ["simulate", "-s", D] + [subst.get(a, a) for a in args]
    if "--trace" not in args:
        argv += ["--trace", str(tmp_path / "missing.csv")]
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert words in " ".join(err.split())
    assert "Traceback" not in err


def test_trace_generate_bad_input(tmp_path, capsys):
    code, _, err = run(capsys, "trace", "generate", "-k", "sawtooth", "-d", "60", "-o",
                       str(tmp_path / "x.csv"))  # fmt: skip
    assert code == 2 and "unknown trace kind" in err
    code, _, err = run(capsys, "trace", "generate", "-k", "step", "-d", "60", "-p", "high",
                       "-o", str(tmp_path / "x.csv"))  # fmt: skip
    assert code == 2 and "KEY=NUMBER" in err
    code, _, err = run(capsys, "trace", "show", str(tmp_path / "nope.csv"))
    assert code == 2 and "no such file" in " ".join(err.split())


def test_unwritable_plot_exits_2(tmp_path, capsys, plan_file, trace_file):
    png = tmp_path / "no-such-folder" / "p.png"
    code, _, err = run(capsys, "trace", "show", str(trace_file), "--plot", str(png))
    assert code == 2 and "cannot write file" in " ".join(err.split())
    code, _, err = run(capsys, "simulate", "-s", D, "--plan", str(plan_file), "--trace",
                       str(trace_file), "--duration", "240", "--plot", str(png))  # fmt: skip
    assert code == 2 and "cannot write file" in " ".join(err.split())
    assert "Traceback" not in err
