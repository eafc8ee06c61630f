"""The autoscaler baseline (issue 13, item 5): tuning on the training distribution, and figures
before / after the rebuild on Ray Serve's semantics.

    python experiments/autoscaler_baseline.py tune       # grid over target_ongoing_requests
    python experiments/autoscaler_baseline.py tune --scenario fleet --interval 300 --processes 2
    python experiments/autoscaler_baseline.py figures --before 3dfb165 --after autoscaler:target=T

``tune``: ``autoscaler:target=T`` for T in the grid (and ``:design=D`` for each ``--design``
D), fluid simulator, on traces of the training
distribution only (seeds 4242-4244 of :func:`jbrl.envs.workload.product_trace` with the
evaluation specs, as ``milp-hysteresis`` was tuned; never ``configs/traces/``), with the
scenario's load times and with 30 s loads; chosen: the cheapest T whose pooled attainment is
>= 99 % in both. ``figures``: DES, constant 1.35x nominal (2 seeds, 2 h), ``configs/traces/
step.csv`` and the demo trace (``diurnal_bursts``), the autoscaler before (its module at git
revision ``--before``, loaded from git) and after, with ``milp-static`` beside. Writes
``experiments/results/autoscaler.md`` (one section per part, and per scenario for scenarios
other than vqa) and ``autoscaler.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import write_section

from jbrl.agents.policy import register_policy
from jbrl.envs.workload import EVAL_TRACE_SPECS, product_trace
from jbrl.evaluation.aggregate import Evaluation
from jbrl.evaluation.runner import evaluate
from jbrl.evaluation.traces import resolve_trace
from jbrl.scenario import load_scenario
from jbrl.scenario.traces import Trace, constant_trace

RESULTS = Path(__file__).parent / "results"
MD = RESULTS / "autoscaler.md"
JSON = RESULTS / "autoscaler.json"
TRAIN_SEEDS = (4242, 4243, 4244)
GRID = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def training_traces(scenario: Any) -> dict[str, Trace]:
    """The evaluation specs at training-range seeds (below EVAL_SEED_BASE)."""
    out = {}
    for name, (kinds, params) in EVAL_TRACE_SPECS.items():
        for seed in TRAIN_SEEDS:
            tr = product_trace(kinds, params, 7200.0, seed)
            out[f"{name}-{seed}"] = tr.for_scenario(scenario)
    return out


def summary(ev: Evaluation) -> dict[str, dict[str, float]]:
    """policy -> pooled attainment, worst run, $ and plan changes (summed over traces)."""
    return {r.policy: r.to_dict(timings=False) for r in ev.summary}


def header() -> None:
    if not MD.exists():
        MD.parent.mkdir(parents=True, exist_ok=True)
        MD.write_text(
            "# Autoscaler baseline (Ray Serve semantics)\n\n"
            "Written by `experiments/autoscaler_baseline.py` (its docstring has the protocol).\n",
            "utf-8",
        )


def tune(
    scenario_name: str,
    designs: list[float] | None = None,
    interval: float = 60.0,
    processes: int = 1,
) -> dict[str, Any]:
    s = load_scenario(scenario_name)
    traces = training_traces(s)
    specs = [
        f"autoscaler:target={t}" + (f":design={d:g}" if d else "")
        for d in designs or [0.0]
        for t in GRID
    ]
    res: dict[str, Any] = {}
    for label, load in (("own load times", None), ("30 s loads", 30.0)):
        ev = evaluate(
            s,
            traces,
            specs,
            sim="fluid",
            seeds=1,
            interval=interval,
            load_time=load,
            processes=processes,
        )
        res[label] = summary(ev)
    ok = [sp for sp in specs if all(res[lab][sp]["slo_attainment"] >= 0.99 for lab in res)]
    chosen = min(ok, key=lambda sp: res["own load times"][sp]["dollars"]) if ok else None
    lines = [
        f"Scenario {scenario_name}, fluid, {len(traces)} training traces (evaluation specs at "
        f"seeds {TRAIN_SEEDS}), 2 h each, {interval:g} s decisions; {machine()}.",
        "",
        "| spec | load times | $ (sum of runs) | SLO pooled | worst run | plan changes (sum) |",
        "|---|---|---|---|---|---|",
    ]
    for lab, rows in res.items():
        for sp in specs:
            r = rows[sp]
            lines.append(
                f"| {sp} | {lab} | {r['dollars']:.3f} | {100 * r['slo_attainment']:.2f}% | "
                f"{100 * r['worst_attainment']:.2f}% | {r['plan_changes']} |"
            )
    lines += ["", f"Chosen (cheapest with pooled SLO >= 99 % in both): **{chosen}**"]
    tag, title = part_key("tune", scenario_name), f"## Tuning ({scenario_name})"
    write_section(MD, f"<!-- {tag} -->", f"<!-- /{tag} -->", title + "\n\n" + "\n".join(lines))
    return {"results": res, "chosen": chosen}


def part_key(part: str, scenario_name: str) -> str:
    """The results' section and JSON key of ``part``: the part's name for vqa (the sections
    written first), ``<part> <scenario>`` for the others, so one scenario's tuning never
    overwrites another's."""
    return part if scenario_name == "vqa" else f"{part} {scenario_name}"


def load_before(ref: str) -> None:
    """Register the autoscaler module at git revision ``ref`` as ``autoscaler-before``."""
    src = subprocess.run(
        ["git", "show", f"{ref}:agents/rules/autoscaler.py"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "autoscaler_before.py"
    path.write_text(src, "utf-8")
    spec = importlib.util.spec_from_file_location("autoscaler_before", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["autoscaler_before"] = mod
    spec.loader.exec_module(mod)
    register_policy("autoscaler-before", mod.AutoscalerPolicy)


def figures(scenario_name: str, before: str, after: list[str]) -> dict[str, Any]:
    load_before(before)
    s = load_scenario(scenario_name)
    specs = ["milp-static", "autoscaler-before", "autoscaler", *after]
    cases = {
        "constant 1.35x": ({"constant_1.35x": constant_trace(s, 7200.0, scale=1.35)}, [0, 1]),
        "step.csv": ({"step": resolve_trace("step", s)[1]}, [0]),
        "demo (diurnal_bursts)": ({"diurnal_bursts": resolve_trace("diurnal_bursts", s)[1]}, [0]),
    }
    out: dict[str, Any] = {}
    lines = [
        f"Scenario {scenario_name}, DES, 60 s intervals, scenario's load times; {machine()}. "
        f"before = `agents/rules/autoscaler.py` at {before} (`autoscaler-before`, its defaults); "
        "after = `autoscaler` (Ray Serve's defaults) and the tuned spec.",
        "",
        "| trace | policy | seeds | $ | SLO pooled | worst run | plan changes / run | model loads / run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case, (traces, seeds) in cases.items():
        ev = evaluate(s, traces, specs, sim="des", seeds=seeds)
        rows = summary(ev)
        out[case] = rows
        for sp in specs:
            r = rows[sp]
            lines.append(
                f"| {case} | {sp} | {len(seeds)} | {r['dollars']:.3f} | "
                f"{100 * r['slo_attainment']:.2f}% | {100 * r['worst_attainment']:.2f}% | "
                f"{r['plan_changes']} | {r['reconfigurations']} |"
            )
    write_section(
        MD, "<!-- figures -->", "<!-- /figures -->", "## Before / after\n\n" + "\n".join(lines)
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["tune", "figures"])
    ap.add_argument("--scenario", default="vqa")
    ap.add_argument("--before", default="3dfb165", help="git revision of the old autoscaler")
    ap.add_argument(
        "--after", nargs="*", default=[], help="more specs of the rebuilt autoscaler (tuned)"
    )
    ap.add_argument(
        "--design",
        nargs="*",
        type=float,
        default=[0.0],
        help="tune: also over these design loads (x nominal the models are chosen for; 0: the "
        "first observed load)",
    )
    ap.add_argument(
        "--interval", type=float, default=60.0, help="tune: control interval (s; the fleet: 300)"
    )
    ap.add_argument("--processes", type=int, default=1, help="tune: parallel worker processes")
    a = ap.parse_args()
    header()
    part = (
        tune(a.scenario, a.design, a.interval, a.processes)
        if a.part == "tune"
        else figures(a.scenario, a.before, a.after)
    )
    data = json.loads(JSON.read_text()) if JSON.exists() else {}  # read now: parts run apart
    data[part_key(a.part, a.scenario)] = part
    JSON.write_text(json.dumps(data, indent=1, default=str) + "\n", "utf-8")


if __name__ == "__main__":
    main()
