"""Cross-reference checks (jbrl.scenario.validation): one message per problem, all at once."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jbrl.errors import InputError
from jbrl.scenario import Scenario, scenario_from_dict
from jbrl.scenario.model import Edge, Link
from jbrl.scenario.validation import find_cycle, first_duplicate, reference_errors


def test_valid_scenario_has_no_errors(tiny: Scenario) -> None:
    assert reference_errors(tiny) == []


def test_every_problem_is_reported_in_order(tiny: Scenario, tiny_dict: dict[str, Any]) -> None:
    w = tiny.workers
    workers = [
        w[0],
        w[1].model_copy(update={"name": "e1"}),  # duplicate worker
        w[2].model_copy(update={"tier": "moon"}),  # unknown tier
        w[3],
    ]
    edges = [tiny.edges[0], tiny.edges[1].model_copy(update={"message_kb": {"tiny": 1.0}})]
    links = [*tiny.links, Link.model_validate({"from": "nowhere", "to": "cam"})]
    profiles = [tiny.profiles[0].model_copy(update={"worker_type": "tpu"}), *tiny.profiles[1:]]
    broken = tiny.model_copy(
        update={"workers": workers, "edges": edges, "links": links, "profiles": profiles}
    )
    errors = [
        "workers: duplicate name 'e1'",
        "tiers/sources/workers: name 'e1' is used twice (link ends must be unambiguous)",
        "workers[2].tier: unknown tier 'moon'",
        "edges[1].message_kb: 'tiny' is not a variant of 'detect'",
        "links[1].from: 'nowhere' is not a tier, worker or source",
        "links[1].to: 'cam' is a source; traffic never flows to a source",
        "profiles[0].worker_type: no worker has type 'tpu'",
    ]
    assert reference_errors(broken) == errors
    # the loader names the first and counts the others
    doc = copy.deepcopy(tiny_dict)
    doc["workers"][1]["name"] = "e1"
    doc["workers"][2]["tier"] = "moon"
    with pytest.raises(InputError, match=r"workers': duplicate name 'e1' \(2 more problem"):
        scenario_from_dict(doc, "s.yaml")


def test_shape_and_coverage_are_checked_only_when_references_resolve(tiny: Scenario) -> None:
    cycle = [*tiny.edges, Edge.model_validate({"from": "track", "to": "detect"})]
    assert reference_errors(tiny.model_copy(update={"edges": cycle})) == [
        "edges: the workflow has a cycle detect -> track -> detect"
    ]
    no_track = [p for p in tiny.profiles if p.operator != "track"]
    assert reference_errors(tiny.model_copy(update={"profiles": no_track})) == [
        "profiles: variant 'default' of operator 'track' has no profile on any worker"
    ]
    both = tiny.model_copy(update={"edges": cycle, "profiles": no_track})
    assert reference_errors(both) == ["edges: the workflow has a cycle detect -> track -> detect"]
    bad_tier = [tiny.workers[0].model_copy(update={"tier": 7}), *tiny.workers[1:]]
    assert reference_errors(tiny.model_copy(update={"edges": cycle, "workers": bad_tier})) == [
        "workers[0].tier: 7 is not a tier index (0..1)"
    ]


def test_helpers() -> None:
    assert first_duplicate(["a", "b", "a", "b"]) == "a"
    assert first_duplicate([]) is None
    edges = [Edge.model_validate({"from": u, "to": v}) for u, v in ("sa", "ab", "bc", "cb")]
    assert find_cycle(["s", "a", "b", "c"], edges) == ["b", "c", "b"]
    assert find_cycle(["s", "a", "b", "c"], edges[:3]) is None


def test_misspelt_field_is_named_unknown_with_a_suggestion(tiny_dict: dict[str, Any]) -> None:
    d = copy.deepcopy(tiny_dict)
    d["sloo"] = d.pop("slo")
    with pytest.raises(InputError) as exc:
        scenario_from_dict(d, "s.yaml")
    text = str(exc.value)
    assert text.startswith("s.yaml, field 'sloo': unknown field 'sloo' (did you mean 'slo'?)")
    assert len(text) < 200 and "workers" not in text  # the scenario is never dumped
    # nested, and an alias ('from') as the close match
    d = copy.deepcopy(tiny_dict)
    d["workers"][1]["pricee"] = d["workers"][1].pop("price")
    d["edges"][0]["form"] = d["edges"][0].pop("from")
    with pytest.raises(InputError) as exc:
        scenario_from_dict(d, "s.yaml")
    text = str(exc.value)
    assert "unknown field" in text and "did you mean" in text
    assert "field 'edges[0].form'" in text and "(did you mean 'from'?)" in text
    d = copy.deepcopy(tiny_dict)
    d["workers"][1]["pricee"] = d["workers"][1].pop("price")
    with pytest.raises(InputError, match=r"workers\[1\]\.pricee'.*did you mean 'price'\?"):
        scenario_from_dict(d, "s.yaml")
    d = copy.deepcopy(tiny_dict)
    d["zzz_qqq"] = 1  # nothing close: no suggestion
    with pytest.raises(InputError) as exc:
        scenario_from_dict(d, "s.yaml")
    assert "unknown field 'zzz_qqq'" in str(exc.value) and "did you mean" not in str(exc.value)


def test_missing_field_shows_no_value(tiny_dict: dict[str, Any]) -> None:
    d = copy.deepcopy(tiny_dict)
    del d["slo"]
    with pytest.raises(InputError) as exc:
        scenario_from_dict(d, "s.yaml")
    assert str(exc.value) == "s.yaml, field 'slo': Field required"
