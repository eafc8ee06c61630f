"""Issue 14: tiny files that sized unbounded work, and loader inputs that ended in a traceback.

Every test runs ``jbrl`` in a subprocess with a time and memory cap (``run_jbrl``): on the code
before issue 14 these ran for ever, filled memory or printed a traceback.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import JELLYBEAN_DIR, assert_bad_input, run_jbrl

REPO = Path(__file__).resolve().parents[2]
VQA_YAML = REPO / "configs" / "scenarios" / "vqa.yaml"


@pytest.mark.parametrize(
    "text",
    [
        "time_s,scale\n0,1\n1e308,1\n",
        "# duration_s: 1e308\ntime_s,scale\n0,1\n",
        "time_s,scale\n0,1\n1e9,1\n",
    ],
    ids=["row-1e308", "duration-1e308", "row-1e9"],
)
def test_huge_trace_times_are_refused(tmp_path: Path, text: str) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(text)
    assert_bad_input(run_jbrl(["trace", "show", str(trace)], timeout=30), "trace_s")
    sim = ["simulate", "--scenario", "vqa", "--policy", "milp-static", "--trace", str(trace)]
    assert_bad_input(run_jbrl([*sim, "--sim", "fluid"], timeout=60), "trace_s")
    ev = ["evaluate", "--scenario", "vqa", "--trace", str(trace), "--policies", "milp-static"]
    assert_bad_input(run_jbrl([*ev, "--sim", "fluid", "--seeds", "1"], timeout=60), "trace_s")


@pytest.mark.parametrize("duration", ["inf", "1e999", "nan", "-5"])
def test_simulate_duration_must_be_finite(duration: str) -> None:
    """The fuzz campaign's find: ``--duration inf`` crashed sizing the progress bar."""
    step = REPO / "configs" / "traces" / "step.csv"
    sim = ["simulate", "--scenario", "vqa", "--policy", "milp-static", "--trace", str(step)]
    assert_bad_input(run_jbrl([*sim, "--sim", "fluid", "--duration", duration]), "--duration")


def test_limits_can_be_raised_on_the_command_line(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("time_s,scale\n0,1\n8000000,1\n")
    assert_bad_input(run_jbrl(["trace", "show", str(trace)]), "trace_s=7776000")
    code, out, err = run_jbrl(["--limit", "trace_s=9000000", "trace", "show", str(trace)])
    assert code == 0, err


def test_request_level_run_is_sized_before_it_starts(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("time_s,scale\n0,500\n")
    plan = tmp_path / "p.json"
    assert run_jbrl(["plan", "--scenario", "vqa", "-o", str(plan)])[0] == 0
    args = ["simulate", "--scenario", "vqa", "--plan", str(plan), "--trace", str(trace)]
    assert_bad_input(run_jbrl([*args, "--sim", "des", "--duration", "86400"]), "requests")
    assert_bad_input(
        run_jbrl([*args, "--sim", "fluid", "--duration", "3600", "--interval", "1e-6"]),
        "intervals",
    )


@pytest.mark.parametrize("count", [100_000_000, 1_000_000])
def test_worker_pools_are_bounded(tmp_path: Path, count: int) -> None:
    text = VQA_YAML.read_text().replace("count: 5", f"count: {count}", 1)
    scen = tmp_path / "s.yaml"
    scen.write_text(text)
    result = run_jbrl(["scenario", "validate", str(scen)], timeout=60, mem_gb=3)
    assert_bad_input(result, "workers", str(count))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.yaml", "a: " + "[" * 3000 + "]" * 3000 + "\n"),
        ("deep2.yaml", "a: " + "[" * 900 + "]" * 900 + "\n"),
        ("deep.json", "[" * 5000 + "]" * 5000),
        (
            "bomb.yaml",
            "a: &a [1,1,1,1,1,1,1,1,1,1]\n"
            + "".join(
                f"a{i}: &a{i} [{','.join([f'*a{i - 1}' if i > 1 else '*a'] * 10)}]\n"
                for i in range(1, 9)
            ),
        ),
        ("cycle.yaml", "a: &x [*x]\n"),
        ("nan.yaml", "name: .nan\n"),
    ],
)
def test_nested_or_self_referencing_documents(tmp_path: Path, name: str, text: str) -> None:
    f = tmp_path / name
    f.write_text(text)
    assert_bad_input(run_jbrl(["scenario", "validate", str(f)], timeout=60))


def test_deep_plan_json(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("[" * 1000 + "]" * 1000)
    assert_bad_input(run_jbrl(["cost", "--scenario", "vqa", "--plan", str(plan)]), "depth")
    plan.write_text('{"worker_assignment": {}, "x": ' + "9" * 5000 + "}")
    assert_bad_input(run_jbrl(["cost", "--scenario", "vqa", "--plan", str(plan)]))


def test_long_workflow_chain_validates_without_recursion(tmp_path: Path) -> None:
    n = 3000
    ops = "".join(f"  - {{name: o{i}}}\n" for i in range(n))
    edges = "  - {from: s, to: o0}\n" + "".join(
        f"  - {{from: o{i}, to: o{i + 1}}}\n" for i in range(n - 1)
    )
    edges += f"  - {{from: o{n - 1}, to: o0}}\n"  # a cycle through the whole chain
    profiles = "".join(
        f"  - {{operator: o{i}, worker_type: t, p50_ms: 1, p90_ms: 1}}\n" for i in range(n)
    )
    f = tmp_path / "chain.yaml"
    f.write_text(
        "name: chain\ntiers: [a]\nsources: [{name: s, rate: 1}]\noperators:\n"
        + ops
        + "edges:\n"
        + edges
        + "workers: [{name: w, type: t, tier: a, price: 1}]\n"
        + "profiles:\n"
        + profiles
        + "slo: {min_accuracy: 0, latency_ms: 100}\n"
    )
    assert_bad_input(run_jbrl(["scenario", "validate", str(f)], timeout=60), "cycle")


# --------------------------------------------------------------------------- JellyBean inputs


@pytest.fixture
def jb(tmp_path: Path) -> Path:
    d = tmp_path / "jb"
    shutil.copytree(JELLYBEAN_DIR, d)
    return d


JB_CORRUPTIONS = {
    "config-bytes": ("config.yaml", bytes(range(256)) * 4),
    "config-string-factor": ("config.yaml", b"INPUT:\n  COMM_COST_SCALING_FACTOR: abc\n"),
    "config-list": ("config.yaml", b"INPUT: [1, 2]\n"),
    "partition-dicts": ("workers_partition.json", b'[{"a": 1}, {"b": 2}]'),
    "partition-nested": ("workers_partition.json", b"[[[1]], [2]]"),
    "accuracy-per-op-list": (
        "accuracy_profiles.json",
        b'{"end_to_end": {"operators": [], "profile": []}, "per_operator": {"a": 1}}',
    ),
    "accuracy-per-op-number": (
        "accuracy_profiles.json",
        b'{"end_to_end": {"operators": [], "profile": []}, "per_operator": 7}',
    ),
    "accuracy-per-op-item-list": (
        "accuracy_profiles.json",
        b'{"end_to_end": {"operators": [], "profile": []}, "per_operator": [[1, 2]]}',
    ),
    "accuracy-top-list": ("accuracy_profiles.json", b"[1, 2, 3]"),
    "requirement-list": ("accuracy_requirement.json", b"[56]"),
    "requirement-nan": ("accuracy_requirement.json", b'{"sink": "VQA", "threshold": NaN}'),
    "csv-bytes": ("workers_specs.csv", bytes(range(256)) * 4),
    "csv-deep-quote": ("logical_graph.csv", b'"' + b"x" * 100 + b"\n"),
    "deep-partition": ("workers_partition.json", b"[" * 5000 + b"]" * 5000),
}


@pytest.mark.parametrize("case", sorted(JB_CORRUPTIONS))
def test_jellybean_importer_corrupt_files(jb: Path, case: str) -> None:
    name, data = JB_CORRUPTIONS[case]
    (jb / name).write_bytes(data)
    assert_bad_input(run_jbrl(["scenario", "validate", str(jb)], timeout=60), name)


def test_jellybean_conflicting_profile_rows(jb: Path) -> None:
    rows = (jb / "execution_profile.csv").read_text().splitlines()
    op, worker, variant, ms = rows[0].split(",")[:4]
    same = f"{op},{worker},{variant},{ms}"
    other = f"{op},{worker},{variant},{float(ms) * 2}"
    (jb / "execution_profile.csv").write_text("\n".join([*rows, same]) + "\n")
    assert run_jbrl(["scenario", "validate", str(jb)])[0] == 0  # an identical repeat is fine
    (jb / "execution_profile.csv").write_text("\n".join([*rows, other]) + "\n")
    assert_bad_input(run_jbrl(["scenario", "validate", str(jb)]), "execution_profile.csv")


def test_jellybean_sink_is_checked(jb: Path) -> None:
    (jb / "accuracy_requirement.json").write_text('{"sink": "NoSuchOperator", "threshold": 56}')
    assert_bad_input(run_jbrl(["scenario", "validate", str(jb)]), "sink", "NoSuchOperator")


def test_conflicting_profiles_in_a_scenario_file(tmp_path: Path) -> None:
    data = yaml.safe_load(VQA_YAML.read_text())
    data["profiles"].append(dict(data["profiles"][0]))
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(data))
    assert run_jbrl(["scenario", "validate", str(f)])[0] == 0  # an identical repeat is fine
    data["profiles"][-1].pop("batches", None)  # (batch rows must agree with p50/p90)
    data["profiles"][-1]["p90_ms"] = data["profiles"][0]["p90_ms"] * 3
    f.write_text(yaml.safe_dump(data))
    assert_bad_input(run_jbrl(["scenario", "validate", str(f)]), "conflicts")
