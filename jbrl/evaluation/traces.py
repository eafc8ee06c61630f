"""The evaluation traces: the held-out set shipped in ``configs/traces/`` and trace files.

``jbrl evaluate``, ``jbrl demo`` and ``experiments/evaluate_vqa.py`` name a trace either by a CSV
path or by the name of an embedded trace (``diurnal_bursts``, ``flash_crowd``, ``step``; written
by ``experiments/make_eval_traces.py`` and never used for training). Each resolves to a trace per
source of the scenario.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from jbrl.errors import InputError, Param
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace, load_trace, parse_trace

TRACES_PACKAGE = "jbrl.configs"
TRACES_DIR = "traces"


def embedded_traces() -> list[str]:
    """Names of the default evaluation traces shipped in ``configs/traces/``."""
    root = resources.files(TRACES_PACKAGE) / TRACES_DIR
    if not root.is_dir():
        return []
    return sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".csv"))


def resolve_trace(spec: str | Path, scenario: Scenario) -> tuple[str, Trace]:
    """A trace CSV path or the name of an embedded evaluation trace -> (name, per-source trace)."""
    path = Path(spec)
    if path.is_file():
        return path.stem, load_trace(path, scenario)
    name = str(spec)
    if name in embedded_traces():
        text = (resources.files(TRACES_PACKAGE) / TRACES_DIR / f"{name}.csv").read_text("utf-8")
        return name, parse_trace(text, f"<embedded trace {name}>").for_scenario(scenario)
    raise InputError(
        f"no such trace file or embedded trace (embedded: {', '.join(embedded_traces()) or 'none'})",
        field=Param.TRACE,
        value=name,
    )


def default_traces(scenario: Scenario) -> dict[str, Trace]:
    """Every embedded evaluation trace, per source of ``scenario``."""
    return dict(resolve_trace(n, scenario) for n in embedded_traces())
