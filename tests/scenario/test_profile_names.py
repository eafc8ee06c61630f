"""One name per model (issue 16, item 6): the embedded scenarios' variant names are the names in
the profile files they were built from, and both are the ``jbrl profile`` registry's names
(never an older alias such as ``visualbert-vqa``), so a profile, a scenario variant and the
model that serves it match by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from jbrl.profiling.models import ALIASES, MODELS
from jbrl.scenario import embedded_scenarios
from jbrl.scenario.loader import embedded_scenario_text

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "configs" / "profiles"
PROFILE_FILE = re.compile(r"configs/profiles/([\w.-]+\.yaml)")


def _profile_names(files: set[str]) -> dict[str, set[str]]:
    """operator -> variant names in the profile files ``files`` (configs/profiles)."""
    out: dict[str, set[str]] = {}
    for f in sorted(files):
        for p in yaml.safe_load((PROFILES / f).read_text("utf-8"))["profiles"]:
            out.setdefault(p["operator"], set()).add(p["variant"])
    return out


def _built_from(doc: dict) -> set[str]:
    """The profile files a scenario names in its provenance (latency_cpu, latency_gpu)."""
    text = " ".join(str(v) for v in doc["provenance"].values())
    return set(PROFILE_FILE.findall(text))


def _base(op: str, names: dict[str, set[str]]) -> str:
    """The profiled operator of a scenario operator: itself, or for fleet's per-site copies
    (``ExtractImageFeature-a``) the name before the site suffix."""
    return op if op in names else op.rsplit("-", 1)[0]


@pytest.mark.parametrize("name", embedded_scenarios())
def test_variant_names_are_the_profile_files_names(name: str) -> None:
    doc = yaml.safe_load(embedded_scenario_text(name))
    files = _built_from(doc)
    assert "cpu-1thread.yaml" in files, files  # measured CPU profiles, at least
    assert files <= {p.name for p in PROFILES.glob("*.yaml")}, files
    names = _profile_names(files)
    used = {(op["name"], v) for op in doc["operators"] for v in op["variants"]}
    used |= {(p["operator"], p["variant"]) for p in doc["profiles"]}
    for op, var in sorted(used):
        base = _base(op, names)
        assert var in names.get(base, set()), (name, op, var, sorted(names.get(base, ())))


def test_profile_files_use_the_registry_names() -> None:
    names = _profile_names({p.name for p in PROFILES.glob("*.yaml")})
    assert names
    for op, variants in names.items():
        for var in variants:
            assert var in MODELS and var not in ALIASES, (op, var)
            assert MODELS[var].operator == op, (op, var, MODELS[var].operator)


@pytest.mark.parametrize("name", embedded_scenarios())
def test_no_old_model_alias_in_the_scenario_text(name: str) -> None:
    """Provenance texts name models by their registry names too (a checkpoint's hub path such
    as ``facebook/wav2vec2-large-960h-lv60-self`` is a reference, not a model name)."""
    text = embedded_scenario_text(name)
    for alias in ALIASES:
        if alias == "vqa":  # also a scenario's name: a text search cannot tell them apart
            continue
        hits = re.findall(rf"(?<![\w/-]){re.escape(alias)}(?![\w-])", text)
        assert not hits, (name, alias, hits[:3])
