"""``jbrl plan``: output keys, exit codes, infeasible JSON with numbers, --max-rate, files."""

from __future__ import annotations

import json

import pytest

from jbrl.cli import main
from jbrl.planning.plan import load_plan
from tests.conftest import JELLYBEAN_DIR, PLAN_JSON_KEYS

D = str(JELLYBEAN_DIR)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_milp_json(capsys):
    code, out, _ = run(capsys, "plan", "--scenario", D, "--solver", "milp", "--json")
    assert code == 0
    d = json.loads(out)  # nothing else on stdout (HiGHS's banner included)
    assert set(d) >= PLAN_JSON_KEYS
    assert d["status"] == "optimal" and d["total_cost"] <= 7.5088
    assert all("rate" in w for ws in d["worker_assignment"].values() for w in ws)


@pytest.mark.parametrize("solver", ["jellybean", "cloud-only", "most-accurate"])
def test_other_solvers(capsys, solver):
    code, out, _ = run(capsys, "plan", "-s", D, "--solver", solver, "--json")
    assert code == 0
    d = json.loads(out)
    assert d["solver"] == solver and d["status"] in ("optimal", "feasible")


def test_human_output(capsys):
    code, out, _ = run(capsys, "plan", "--scenario", D)
    assert code == 0
    assert "ExtractImageFeature" in out and "total_cost" in out and "optimal" in out


def test_infeasible_accuracy_exit_3(capsys):
    code, out, err = run(capsys, "plan", "--scenario", D, "--accuracy", "60", "--json")
    assert code == 3
    d = json.loads(out)
    assert d["status"] == "infeasible"
    assert d["reason"]["best_reachable_accuracy"] == pytest.approx(58.33)
    assert d["reason"]["max_rate_scale"] > 1
    assert "infeasible" in err


def test_infeasible_rate_exit_3(capsys):
    code, out, _ = run(capsys, "plan", "-s", D, "--rate", "1000", "--json")
    assert code == 3
    d = json.loads(out)
    assert d["status"] == "infeasible"
    assert 0 < d["reason"]["max_rate_scale"] < 1
    assert set(d["reason"]["max_rates"]) == {"ReadImage", "ReadSpeech"}
    code, _, err = run(capsys, "plan", "-s", D, "--solver", "jellybean", "--rate", "1000")
    assert code == 3 and "sustain" in err


def test_rates_per_source_and_max_util(capsys):
    code, out, _ = run(
        capsys, "plan", "-s", D, "--rate", "ReadImage=30", "--max-util", "0.8", "--json"
    )
    assert code == 0
    d = json.loads(out)
    vqa = sum(w["rate"] for w in d["worker_assignment"]["VQA"])
    assert vqa == pytest.approx(30.0)


def test_max_rate(capsys):
    code, out, _ = run(capsys, "plan", "-s", D, "--max-rate", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["max_rate_scale"] > 1
    assert d["max_rates"]["ReadImage"] == pytest.approx(40 * d["max_rate_scale"])
    code, out, _ = run(capsys, "plan", "-s", D, "--max-rate")
    assert code == 0 and "sustains" in out
    code, out, _ = run(capsys, "plan", "-s", D, "--max-rate", "--accuracy", "60", "--json")
    assert code == 3 and json.loads(out)["status"] == "infeasible"


def test_output_file_and_model(tmp_path, capsys):
    plan_file = tmp_path / "plan.json"
    lp = tmp_path / "model.lp"
    code, _, _ = run(capsys, "plan", "-s", D, "-o", str(plan_file), "--write-model", str(lp))
    assert code == 0 and lp.read_text().startswith("\\")
    plan = load_plan(plan_file)
    assert plan.meta["solver"] == "milp"
    code, out, _ = run(capsys, "cost", "-s", D, "--plan", str(plan_file), "--json")
    assert code == 0
    assert json.loads(out)["total_cost"] == pytest.approx(
        json.loads(plan_file.read_text())["total_cost"]
    )


def test_bad_input_exit_2(capsys):
    assert run(capsys, "plan", "-s", D, "--solver", "jellybean", "--gap", "0.1")[0] == 2
    assert run(capsys, "plan", "-s", D, "--rate", "Nowhere=3")[0] == 2
    assert run(capsys, "plan", "-s", D, "--max-util", "1.5")[0] == 2
    assert run(capsys, "plan", "-s", D, "--write-model", "m.txt")[0] == 2
    assert run(capsys, "plan", "-s", D, "--solver", "nope")[0] == 2


def test_json_stdout_is_clean_in_a_fresh_process():
    """HiGHS prints a banner on C-level stdout when first used; --json must stay parseable."""
    import subprocess
    import sys

    code = "import sys; from jbrl.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "plan", "-s", D, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "optimal"
