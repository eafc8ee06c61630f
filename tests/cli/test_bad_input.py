"""Bad input: one clear InputError naming file, field and value; never another exception."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jbrl.cli import main
from jbrl.errors import InputError
from jbrl.planning.plan import load_plan
from jbrl.scenario import load_scenario, scenario_from_dict
from tests.conftest import JELLYBEAN_DIR, tiny_scenario_dict


def load_err(data, file="s.yaml") -> InputError:
    with pytest.raises(InputError) as info:
        scenario_from_dict(data, file)
    return info.value


def test_cycle():
    d = tiny_scenario_dict()
    d["edges"].append({"from": "track", "to": "detect"})
    e = load_err(d)
    assert "cycle" in str(e) and "s.yaml" in str(e)


def test_unknown_operator_in_edge():
    d = tiny_scenario_dict()
    d["edges"][1]["to"] = "trakc"
    e = load_err(d)
    assert e.field == "edges[1].to" and "'trakc'" in str(e)


def test_unknown_worker_in_profile():
    d = tiny_scenario_dict()
    d["profiles"].append({"operator": "track", "worker": "ghost", "p50_ms": 1, "p90_ms": 2})
    e = load_err(d)
    assert e.field == "profiles[6].worker" and "'ghost'" in str(e)


def test_unknown_variant_in_accuracy_table():
    d = tiny_scenario_dict()
    d["accuracy"]["table"][0]["variants"]["detect"] = "tiny"
    e = load_err(d)
    assert "accuracy.table[0].variants.detect" in str(e) and "'tiny'" in str(e)


def test_variant_without_profile():
    d = tiny_scenario_dict()
    d["profiles"] = [p for p in d["profiles"] if p.get("variant") != "large"]
    e = load_err(d)
    assert "'large'" in str(e) and "no profile" in str(e)


@pytest.mark.parametrize("value", [-1.0, 0.0, float("nan"), "fast"])
def test_bad_source_rate(value):
    d = tiny_scenario_dict()
    d["sources"][0]["rate"] = value
    e = load_err(d)
    assert e.field == "sources[0].rate"
    assert e.has_value


@pytest.mark.parametrize("value", [-0.5, 0, float("inf")])
def test_bad_worker_price(value):
    d = tiny_scenario_dict()
    d["workers"][2]["price"] = value
    e = load_err(d)
    assert e.field == "workers[2].price"


def test_duplicate_worker_name():
    d = tiny_scenario_dict()
    d["workers"][1]["name"] = "e1"
    e = load_err(d)
    assert "duplicate name 'e1'" in str(e) and e.field == "workers"


def test_duplicate_variant():
    d = tiny_scenario_dict()
    d["operators"][0]["variants"] = ["small", "small"]
    e = load_err(d)
    assert "duplicate variant" in str(e)


def test_unknown_field_is_named():
    d = tiny_scenario_dict()
    d["workers"][0]["prise"] = 0.1
    e = load_err(d)
    assert e.field == "workers[0].prise"


def test_missing_scenario_file(tmp_path):
    with pytest.raises(InputError) as info:
        load_scenario(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


def test_yaml_syntax_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(InputError) as info:
        load_scenario(p)
    assert "bad.yaml" in str(info.value)


def _jb_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "jb"
    shutil.copytree(JELLYBEAN_DIR, dst)
    return dst


def test_jellybean_wrong_csv_width(tmp_path):
    d = _jb_copy(tmp_path)
    (d / "workers_specs.csv").write_text("workflow-compute-cpu-1,0.096,extra\n")
    with pytest.raises(InputError) as info:
        load_scenario(d)
    e = info.value
    assert e.file.endswith("workers_specs.csv") and e.field == "line 1"


def test_jellybean_missing_file(tmp_path):
    d = _jb_copy(tmp_path)
    (d / "workers_specs.csv").unlink()
    with pytest.raises(InputError) as info:
        load_scenario(d)
    assert info.value.file.endswith("workers_specs.csv")


def test_jellybean_negative_price(tmp_path):
    d = _jb_copy(tmp_path)
    p = d / "workers_specs.csv"
    p.write_text(p.read_text().replace("0.096", "-0.096"))
    with pytest.raises(InputError) as info:
        load_scenario(d)
    assert info.value.value == -0.096


def test_jellybean_stray_trailing_comma_is_accepted():
    # line 5 of the published execution_profile.csv ends with a stray comma
    line5 = (JELLYBEAN_DIR / "execution_profile.csv").read_text().splitlines()[4]
    assert line5.endswith(",")
    s = load_scenario(JELLYBEAN_DIR)
    assert s.capacity("SpeechRecognition", "wav2vec2-base-960h", "workflow-compute-cpu-3") > 0


def test_plan_errors(tmp_path):
    p = tmp_path / "plan.json"
    p.write_text(json.dumps({"worker_assignment": {"A": [{"worker": "w", "rate": -3}]}}))
    with pytest.raises(InputError) as info:
        load_plan(p)
    assert info.value.field == "worker_assignment.A[0].rate" and info.value.value == -3
    p.write_text("{not json")
    with pytest.raises(InputError):
        load_plan(p)


def test_cli_bad_input_exit_2_without_traceback(tmp_path, capsys):
    d = tiny_scenario_dict()
    d["workers"][0]["price"] = -1
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(d))
    assert main(["scenario", "validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert "workers[0].price" in err and "Traceback" not in err and "s.yaml" in err


# --------------------------------------------------------------------------- property tests

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _mutate(base, mutations):
    """A deep copy of ``base`` with each (path, delete|replace, junk) applied where it fits."""
    d = copy.deepcopy(base)
    for path, action, junk in mutations:
        parent = d
        try:
            for key in path[:-1]:
                parent = parent[key]
            if action == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = junk
        except (KeyError, IndexError, TypeError):
            continue
    return d


BASE = tiny_scenario_dict()
ALL_PATHS = [p for p in _paths(BASE) if p]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(ALL_PATHS), st.sampled_from(["delete", "replace"]), JUNK),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_scenarios_give_only_input_errors(mutations):
    d = _mutate(BASE, mutations)
    try:
        s = scenario_from_dict(d, "m.yaml")
    except InputError as e:
        assert str(e).startswith("m.yaml")
        return
    # a valid mutation: the model must be usable
    assert all(math.isfinite(w.price) and w.price > 0 for w in s.workers)
    s.demand()


JB_FILES = sorted(p.name for p in JELLYBEAN_DIR.iterdir() if p.suffix in (".csv", ".json"))


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(JB_FILES),
    edit=st.sampled_from(["truncate", "garble", "blank", "dup"]),
    pos=st.integers(0, 10_000),
    junk=st.text(alphabet=',.-x0123456789 \n"[]{}', max_size=8),
)
def test_mutated_jellybean_inputs_give_only_input_errors(tmp_path_factory, name, edit, pos, junk):
    d = tmp_path_factory.mktemp("jb")
    for p in JELLYBEAN_DIR.iterdir():
        shutil.copy(p, d / p.name)
    text = (d / name).read_text()
    i = pos % max(1, len(text))
    if edit == "truncate":
        text = text[:i]
    elif edit == "garble":
        text = text[:i] + junk + text[i + len(junk) :]
    elif edit == "blank":
        text = ""
    else:
        text = text + text[:i]
    (d / name).write_text(text)
    try:
        load_scenario(d)
    except InputError as e:
        assert str(d) in str(e) or e.field is not None


PLAN_BASE = {
    "model_assignment": {"detect": "small"},
    "worker_assignment": {
        "detect": [{"worker": "e1", "rate": 5.0}, {"worker": "e2"}],
        "track": ["c2"],
    },
    "routing": [{"edge": ["cam", "detect"], "from": "cam", "to": "e1", "rate": 5.0}],
}
PLAN_PATHS = [p for p in _paths(PLAN_BASE) if p]


@settings(max_examples=200, deadline=None)
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(PLAN_PATHS), st.sampled_from(["delete", "replace"]), JUNK),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_plans_give_only_input_errors_or_named_violations(mutations):
    from jbrl.planning.cost import evaluate_plan
    from jbrl.planning.plan import plan_from_dict

    d = _mutate(PLAN_BASE, mutations)
    try:
        plan = plan_from_dict(d, "p.json")
    except InputError as e:
        assert str(e).startswith("p.json")
        return
    report = evaluate_plan(TINY_SCENARIO, plan)  # must not raise
    assert report.total_cost >= 0


TINY_SCENARIO = scenario_from_dict(tiny_scenario_dict(), "<tiny>")


def test_console_script_bad_input_has_no_traceback(tmp_path):
    import subprocess
    import sys

    f = tmp_path / "s.yaml"
    d = tiny_scenario_dict()
    d["edges"].append({"from": "track", "to": "detect"})
    f.write_text(yaml.safe_dump(d))
    exe = Path(sys.executable).with_name("jbrl")
    proc = subprocess.run(
        [str(exe), "scenario", "validate", str(f)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "cycle" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
