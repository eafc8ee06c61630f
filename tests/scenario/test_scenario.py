"""Scenario model: loading, lookups, JSON Schema, JellyBean import round trip."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from jbrl.cli import main
from jbrl.scenario import load_scenario, scenario_json_schema, scenario_to_yaml
from tests.conftest import JELLYBEAN_DIR


def test_jellybean_import(jellybean):
    s = jellybean
    assert s.tiers == ["tier0", "tier1"]
    assert [o.name for o in s.operators] == ["ExtractImageFeature", "SpeechRecognition", "VQA"]
    assert s.comm_cost_scale == pytest.approx(0.1)
    assert s.slo.min_accuracy == pytest.approx(56.0)
    assert s.demand()["VQA"] == pytest.approx(40.0)
    acc = s.accuracy_of(
        {"ExtractImageFeature": "resnet18", "SpeechRecognition": "wav2vec2-large-960h-lv60-self"}
    )
    assert acc == pytest.approx(56.59)
    # planning latency is execution_profile.csv; p50/p90 come from the percentile files
    p = s.profile("VQA", "default", "workflow-compute-gpu-1")
    assert p.plan_ms < p.p90_ms and p.p50_ms <= p.p90_ms
    assert s.link("workflow-compute-gpu-1", "workflow-compute-cpu-1").allowed is False
    assert s.link("ReadImage", "workflow-compute-gpu-2").cost_per_gb == 1.0
    assert s.link("ReadImage", "workflow-compute-cpu-2").cost_per_gb == 0.0


def test_yaml_round_trip(jellybean, tmp_path):
    f = tmp_path / "jb.yaml"
    f.write_text(scenario_to_yaml(jellybean))
    again = load_scenario(f)
    assert again == jellybean


def test_worker_count_expansion(tiny_dict):
    from jbrl.scenario import scenario_from_dict

    tiny_dict["workers"].append(
        {"name": "pool", "type": "cloud-cpu", "tier": "cloud", "price": 0.4, "count": 3}
    )
    s = scenario_from_dict(tiny_dict, "x")
    assert [w.name for w in s.workers][-3:] == ["pool-1", "pool-2", "pool-3"]
    assert s.capacity("track", "default", "pool-2") == pytest.approx(40.0)


def test_fan_out_demand(tiny_dict):
    from jbrl.scenario import scenario_from_dict

    tiny_dict["edges"][1]["ratio"] = 3.0
    s = scenario_from_dict(tiny_dict, "x")
    assert s.demand({"cam": 2.0})["track"] == pytest.approx(6.0)


def test_schema_validates_documents(jellybean, tiny_dict):
    schema = scenario_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(tiny_dict, schema)
    jsonschema.validate(yaml.safe_load(scenario_to_yaml(jellybean)), schema)


def test_cli_schema_and_import(tmp_path, capsys):
    assert main(["scenario", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "jbrl scenario"
    out = tmp_path / "jb.yaml"
    assert main(["scenario", "import-jellybean", str(JELLYBEAN_DIR), "-o", str(out)]) == 0
    assert main(["scenario", "validate", str(out), "--json"]) == 0
    assert '"valid": true' in capsys.readouterr().out


def test_cli_show_accepts_directory(capsys):
    assert main(["scenario", "show", str(JELLYBEAN_DIR)]) == 0
    assert "VQA" in capsys.readouterr().out


def test_cli_show_summarises_a_fleet_scale_scenario(capsys):
    """Long accuracy tables show only combinations that meet the target (with the count);
    long worker lists are shown as pools (first .. last, count)."""
    sc = load_scenario("fleet")
    combos = list(sc.variant_combinations())
    meeting = [a for a, acc in combos if acc >= sc.slo.min_accuracy]
    assert main(["scenario", "show", "fleet"]) == 0
    out = "".join(capsys.readouterr().out.split())  # tables wrap cells at the terminal width
    assert f"{len(meeting)}of{len(combos)}combinationsmeetthetarget" in out
    cloud_cpu = [w.name for w in sc.workers if w.type == "cloud-cpu"]
    assert f"{cloud_cpu[0]}..{cloud_cpu[-1]}" in out
    assert "site-a-cpu-2" not in out  # listed as a pool, not one row per worker


def test_cli_cost_reference_plan(tmp_path, capsys):
    from tests.conftest import JELLYBEAN_REFERENCE_PLAN

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(JELLYBEAN_REFERENCE_PLAN))
    assert main(["cost", "--scenario", str(JELLYBEAN_DIR), "--plan", str(plan), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["compute_cost"] == pytest.approx(6.242)
    assert data["communication_cost"] == pytest.approx(1.2667783, abs=1e-4)
    assert data["operators"]["VQA"]["utilization"] == pytest.approx(
        40 / data["operators"]["VQA"]["capacity"]
    )
    # an infeasible rate: exit 3, violations named
    assert (
        main(["cost", "--scenario", str(JELLYBEAN_DIR), "--plan", str(plan), "--rate", "80"]) == 3
    )
    assert "capacity_short" in capsys.readouterr().out
    # an unknown worker: exit 2
    bad = json.loads(plan.read_text())
    bad["worker_assignment"]["VQA"] = [{"worker": "nope"}]
    plan.write_text(json.dumps(bad))
    assert main(["cost", "--scenario", str(JELLYBEAN_DIR), "--plan", str(plan)]) == 2
