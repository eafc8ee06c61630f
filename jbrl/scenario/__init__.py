"""Scenario layer: the data model, its loaders and the JellyBean importer."""

from jbrl.scenario.loader import (
    DEFAULT_SCENARIO,
    embedded_scenarios,
    load_scenario,
    scenario_from_dict,
    scenario_json_schema,
    scenario_to_yaml,
)
from jbrl.scenario.model import (
    Accuracy,
    Edge,
    LinkInfo,
    Operator,
    Profile,
    Scenario,
    Slo,
    Source,
    Worker,
)

__all__ = [
    "DEFAULT_SCENARIO",
    "Accuracy",
    "Edge",
    "LinkInfo",
    "Operator",
    "Profile",
    "Scenario",
    "Slo",
    "Source",
    "Worker",
    "embedded_scenarios",
    "load_scenario",
    "scenario_from_dict",
    "scenario_json_schema",
    "scenario_to_yaml",
]
