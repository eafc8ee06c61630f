"""Issue 13's policy benchmark: the policies behind the SLO shield on test traces of every load
generator kind, with the issue's acceptance checks for one policy (``--subject``).

Traces (2 h, test seed 0, never used in training or selection): the three held-out traces of
``configs/traces/`` (diurnal with bursts, step, flash crowds) and one trace per generator kind of
issue 9 (``jbrl.envs.workload.KIND_TRACE_SPECS``: diurnal, random walk, on/off superposition,
flash crowds, a weekly cycle). Validation during training uses seed 1 of the same specs; the
training distributions draw their own seeds below ``EVAL_SEED_BASE``.

Every run goes through the discrete-event simulator (default) with ``--seeds`` seeds, once with
the scenario's own model load times and once with every load time forced to ``--load-time``. The
shield is part of the deployment: with ``--shield on`` (default) every policy runs behind it
(``:shield=on``), ``off`` without it, ``both`` each policy both ways; the clairvoyant references
(``oracle``, ``milp-oracle``) are bounds, not deployments, and always run unshielded. A policy may be named
``label=spec`` (``ppo-v2=ppo:path=runs/x/best/model.zip``).

    python experiments/evaluate_policies.py --scenario vqa --policies "ppo,milp-static,oracle"
    python experiments/evaluate_policies.py --sim fluid --seeds 1 --duration 1800  # a quick look

Writes ``experiments/results/policies_<scenario>.md`` (tables, checks, machine) and ``.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _results import field_help
from evaluate_vqa import evaluations_of, git_commit, machine, run_unit

from jbrl.envs.workload import ALL_TRACE_SPECS, KIND_TRACE_SPECS, eval_traces
from jbrl.evaluation.aggregate import Evaluation, RunRecord
from jbrl.evaluation.policies import build_policies
from jbrl.evaluation.report import markdown_table
from jbrl.evaluation.traces import resolve_trace
from jbrl.planning.tables import ServingSpec
from jbrl.scenario import load_scenario
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCES = ("oracle", "milp-oracle")
"""Clairvoyant references: reported, never a baseline the subject must beat."""
NO_SHIELD = " (no shield)"
"""The label suffix of a policy's unshielded twin (``--shield both``)."""
DEFAULT_POLICIES = (
    "ppo,milp-reactive:headroom=0.2,milp-reactive:headroom=0.5,milp-hysteresis,"
    "milp-predictive,milp-static,autoscaler:target=0.75,oracle"
)


@dataclass
class Args:
    """Benchmark settings (each field is a command-line option)."""

    scenario: str = "vqa"
    """embedded scenario name or YAML file"""
    policies: str = DEFAULT_POLICIES
    """comma-separated policy specs, each optionally label=spec"""
    subject: str = "ppo"
    """the policy (label) the issue's checks are for"""
    shield: str = "on"
    """on: every policy behind the SLO shield; off: none; both: each both ways"""
    traces: str = ",".join(ALL_TRACE_SPECS)
    """test traces: names of jbrl.envs.workload.ALL_TRACE_SPECS (seed 0) or CSV files"""
    sim: str = "des"
    """simulator: des (every request) or fluid"""
    seeds: int = 2
    """seeds per (policy, trace, load-time setting)"""
    interval: float = 60.0
    """control interval (s of simulated time)"""
    load_time: float = 30.0
    """the forced model load time of the second setting (s)"""
    decision_ms: float = 2.0
    """the subject's decision-time target (issue 13: 2 ms on vqa, 10 ms on the fleet)"""
    duration: float | None = None
    """cut every trace to this many seconds (quick looks only)"""
    faults: str = ""
    """fault schedule (YAML/JSON, jbrl.sim.faults: crashes, link slow-downs) every run is
    subjected to, unannounced to the policies; '' none"""
    processes: int = 2
    """parallel worker processes"""
    out: str = ""
    """Markdown report (default experiments/results/policies_<scenario>.md)"""
    cache: str = "runs/evaluate_policies"
    """finished (policy, trace) units are kept here and reused by a rerun with the same
    settings (nothing lost on a crash; policies and seeds added later run alone); '' keeps
    none"""


def parse_args(argv: list[str] | None = None) -> Args:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    helps = field_help(Args)
    for f in dataclasses.fields(Args):
        kind = float if f.name in ("interval", "load_time", "decision_ms") else type(f.default)
        kind = float if f.name == "duration" else kind
        ap.add_argument(
            f"--{f.name.replace('_', '-')}", type=kind, default=f.default, help=helps.get(f.name)
        )
    args = Args(**vars(ap.parse_args(argv)))
    if args.shield not in ("on", "off", "both"):
        ap.error(f"--shield: on, off or both, not {args.shield!r}")
    return args


def labelled(args: Args) -> dict[str, str]:
    """label -> policy spec, with the shield settings applied."""
    out: dict[str, str] = {}
    for item in (p.strip() for p in args.policies.split(",")):
        if not item:
            continue
        label, _, spec = item.partition("=") if "=" in item.split(":")[0] else ("", "", item)
        label = label or spec
        if spec.split(":")[0] in REFERENCES:  # a bound, not a deployment: never shielded
            out[label] = spec
            continue
        if args.shield in ("on", "both"):
            out[label] = f"{spec}:shield=on"
        if args.shield in ("off", "both"):
            out[f"{label}{NO_SHIELD}" if args.shield == "both" else label] = spec
    return out


def test_trace(name: str, scenario: Scenario) -> Trace:
    """A named test trace (seed 0) or a trace CSV, per source of ``scenario``."""
    if name in KIND_TRACE_SPECS:
        return eval_traces(scenario, seed=0, names=[name])[name]
    return resolve_trace(name, scenario)[1]


def unit_file(args: Args, spec: str, trace_name: str) -> Path | None:
    """Where the unit's records are cached: keyed by everything that decides its figures except
    the number of seeds (the file holds seeds 0 .. k-1; seed i's run is the same whatever the
    number of seeds)."""
    if not args.cache:
        return None
    key = [args.scenario, spec, trace_name, args.sim, args.interval, args.load_time]
    key += [args.duration]
    if args.faults:  # the schedule's content, wherever the file lives
        key.append(hashlib.sha256(Path(args.faults).read_bytes()).hexdigest()[:16])
    files = policy_files_digest(spec, args.scenario)
    if files is not None:  # a retrained policy at the same path must not reuse old runs
        key.append(files)
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    return Path(args.cache) / f"{trace_name}__{digest}.json"


@functools.cache
def policy_files_digest(spec: str, scenario: str) -> str | None:
    """For a ``ppo`` spec, a digest of its policy folder's files (model, normalization,
    action table); None for every other policy, whose spec names all it runs."""
    from jbrl.agents.policy import parse_policy_spec
    from jbrl.agents.ppo import MODEL_FILE, NORM_FILE, policy_folder
    from jbrl.envs.serving import LADDER_FILES

    name, params = parse_policy_spec(spec)
    if name != "ppo":
        return None
    folder = policy_folder(params.get("path"), params.get("shipped"), load_scenario(scenario))
    h = hashlib.sha256()
    for f in (MODEL_FILE, NORM_FILE, *LADDER_FILES.values()):
        if (folder / f).is_file():
            h.update(f.encode() + (folder / f).read_bytes())
    return h.hexdigest()[:16]


def cached_seeds(path: Path | None, seeds: int) -> int:
    """How many of the first ``seeds`` seeds of a unit its cache file holds."""
    if path is None or not path.is_file():
        return 0
    raw = json.loads(path.read_text("utf-8"))
    return min(seeds, *(len(v) for v in raw.values()))


def unit(args: Args, label: str, spec: str, trace_name: str) -> dict[str, list[RunRecord]]:
    """One policy on one trace, both load-time settings, every seed; records under ``label``.
    Seeds an earlier invocation with the same settings ran come from the cache; only the
    missing ones run (``--seeds 2`` after ``--seeds 1`` runs seed 1 alone)."""
    path = unit_file(args, spec, trace_name)
    saved: dict[str, list[RunRecord]] = {"own": [], "forced": []}
    if path is not None and path.is_file():
        raw = json.loads(path.read_text("utf-8"))
        saved = {k: [RunRecord.from_dict(d) for d in raw[k]] for k in saved}
    have = min(len(v) for v in saved.values())
    if have < args.seeds:
        scen = load_scenario(args.scenario)
        got = run_unit(args, spec, trace_name, test_trace(trace_name, scen), first_seed=have)
        saved = {k: saved[k][:have] + got[k] for k in saved}
        if path is not None and not any(r.error for recs in got.values() for r in recs):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({k: [r.to_dict() for r in v] for k, v in saved.items()}))
            tmp.replace(path)
    return {
        k: [dataclasses.replace(r, policy=label) for r in v[: args.seeds]] for k, v in saved.items()
    }


def run_all(args: Args, policies: dict[str, str], traces: list[str]) -> dict[str, list[RunRecord]]:
    """Every (policy, trace) unit over ``args.processes`` spawned processes; a crashed unit is
    recorded as errors and the rest go on."""
    from rich.progress import Progress

    runs: dict[str, list[RunRecord]] = {"own": [], "forced": []}
    units = [(label, t) for label in policies for t in traces]
    ctx = multiprocessing.get_context("spawn")  # a forked child would inherit HiGHS's pool
    with Progress() as bar, ProcessPoolExecutor(args.processes, mp_context=ctx) as pool:
        task = bar.add_task("benchmark", total=len(units))
        futs = {pool.submit(unit, args, lb, policies[lb], t): (lb, t) for lb, t in units}
        for fut in as_completed(futs):
            lb, t = futs[fut]
            try:
                got = fut.result()
            except Exception as exc:  # record the crash, keep going
                err = f"{type(exc).__name__}: {exc}"
                got = {k: [RunRecord(lb, t, i, error=err) for i in range(args.seeds)] for k in runs}
            for k, recs in got.items():
                runs[k] += recs
            bar.update(task, advance=1, description=f"done {lb} on {t}")
    order = {u: i for i, u in enumerate(units)}
    for recs in runs.values():
        recs.sort(key=lambda r: (order[(r.policy, r.trace)], r.seed))
    return runs


# --------------------------------------------------------------------------- checks


def worst_run(ev: Evaluation, p: str) -> float:
    """The lowest attainment of any single run of ``p`` (nan when it has none)."""
    r = ev.row(p)
    return r.worst_attainment if r is not None else math.nan


def worst_trace(ev: Evaluation, p: str) -> float:
    """The lowest pooled (over seeds) attainment of ``p`` on any trace."""
    rows = [ev.row(p, t) for t in ev.traces]
    return min((r.slo_attainment for r in rows if r is not None), default=math.nan)


def dollars(ev: Evaluation, p: str) -> float:
    r = ev.row(p)
    return r.dollars if r is not None else math.nan


def baselines(policies: dict[str, str], subject: str) -> list[str]:
    """The causal baselines the subject must beat: every policy but the subject, the
    clairvoyant references and the other learned policies (ablations and earlier versions),
    deployed as the subject is (the issue compares shielded against shielded): with
    ``--shield both`` a shielded subject is checked against the shielded baselines only."""
    shielded = not subject.endswith(NO_SHIELD)
    return [
        lb
        for lb, spec in policies.items()
        if lb != subject
        and spec.split(":")[0] not in (*REFERENCES, "ppo")
        and lb.endswith(NO_SHIELD) != shielded
    ]


def subject_checks(
    args: Args, ev: Evaluation, subject: str, causal: list[str]
) -> list[tuple[str, bool, str]]:
    """(check, passed, detail) for each of the issue's targets the benchmark measures;
    ``causal``: the baselines (:func:`baselines`)."""
    row = ev.row(subject)
    if row is None or row.errors:
        return [("ran", False, row.error if row is not None else "not evaluated")]
    hours = sum(t.duration for t in ev.traces.values()) / 3600
    refs = [p for p in ev.policies if p.split(":")[0] in REFERENCES]
    ok = [p for p in causal if worst_trace(ev, p) >= 0.99]
    cheapest = min(ok, key=lambda p: dollars(ev, p)) if ok else None
    oracle = next((p for p in refs if p.split(":")[0] == "oracle"), None)
    out = [
        (
            "worst run >= 99 % on every trace",
            worst_run(ev, subject) >= 0.99,
            f"worst run {100 * worst_run(ev, subject):.2f} %",
        ),
        (
            ">= 10 % below the cheapest causal baseline at 99 % on every trace",
            cheapest is not None and row.dollars <= 0.9 * dollars(ev, cheapest),
            "no causal baseline reaches 99 % on every trace"
            if cheapest is None
            else f"{row.dollars / dollars(ev, cheapest) - 1:+.1%} vs {cheapest} "
            f"({dollars(ev, cheapest):.3f} $)",
        ),
    ]
    static = next((p for p in causal if p.split(":")[0] == "milp-static"), None)
    if Path(args.scenario).stem == "fleet" and static is not None:  # the fleet target
        out.append(
            (
                ">= 15 % below milp-static (fleet)",
                row.dollars <= 0.85 * dollars(ev, static),
                f"{row.dollars / dollars(ev, static) - 1:+.1%} vs {static} "
                f"({dollars(ev, static):.3f} $)",
            )
        )
    if oracle is not None:
        ro = ev.row(oracle)
        out.append(
            (
                "within 10 % of oracle's $",
                row.dollars <= 1.1 * dollars(ev, oracle),
                f"{row.dollars / dollars(ev, oracle) - 1:+.1%} (oracle {dollars(ev, oracle):.3f} $"
                f", its worst run {100 * worst_run(ev, oracle):.2f} %)",
            )
        )
        ratios = [load_ratio(ev, subject, oracle, t) for t in ev.traces]
        worst_ratio = max(ratios, default=math.nan)
        out.append(
            (
                "no trace with more than twice oracle's model loads",
                ro is not None and worst_ratio <= 2.0,
                f"largest ratio {worst_ratio:.2f}",
            )
        )
    per_10 = row.reconfigurations / (hours * 6) if hours else math.nan
    out += [
        (
            "at most one model load per 10 minutes",
            per_10 <= 1.0,
            f"{per_10:.2f} per 10 min ({row.reconfigurations:.1f} per seed over {hours:g} h)",
        ),
        (
            f"decision <= {args.decision_ms:g} ms (mean)",
            row.decision_mean_ms <= args.decision_ms,
            f"{row.decision_mean_ms:.2f} ms mean, {row.decision_max_ms:.1f} ms max",
        ),
    ]
    return out


def load_ratio(ev: Evaluation, p: str, ref: str, trace: str) -> float:
    """``p``'s model loads on ``trace`` over ``ref``'s (a trace where both load nothing: 0; where
    only ``p`` loads: inf)."""
    a, b = ev.row(p, trace), ev.row(ref, trace)
    if a is None or b is None:
        return math.nan
    if b.reconfigurations == 0:
        return 0.0 if a.reconfigurations == 0 else math.inf
    return a.reconfigurations / b.reconfigurations


def per_trace_table(ev: Evaluation) -> list[str]:
    """Per trace and policy: $ per run, worst run's attainment, model loads, shield
    interventions per run."""
    head = "| trace | " + " | ".join(f"`{p}`" for p in ev.policies) + " |"
    lines = [head, "|" + "---|" * (len(ev.policies) + 1)]
    for t in ev.traces:
        cells = []
        for p in ev.policies:
            r = ev.row(p, t)
            if r is None or r.errors:
                cells.append("error")
                continue
            sh = "" if math.isnan(r.shield_interventions) else f", {r.shield_interventions:g} sh"
            cells.append(
                f"{r.dollars:.3f} $, {100 * r.worst_attainment:.2f} %, "
                f"{r.reconfigurations:g} ld{sh}"
            )
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines


LEVEL_BINS = (0.5, 0.75, 1.0, 1.25, 1.5)
"""Load levels of the combination table, as multiples of the nominal rate."""


def combination_table(ev: Evaluation, policy: str, scenario: Scenario) -> list[str]:
    """How often ``policy`` ran each variant combination, per load level (intervals over every
    run; the combination is read from the interval's accuracy, the level is the largest
    source's rate over the largest nominal rate)."""
    spec = ServingSpec(scenario)
    names = {
        round(float(a), 4): "/".join(c.values())
        for c, a in zip(spec.combos, spec.combo_accuracy, strict=True)
    }
    nominal = max(scenario.nominal_rates().values())
    edges = [0.0, *LEVEL_BINS, math.inf]
    labels = [
        f"{lo:g}-{hi:g}x" if math.isfinite(hi) else f">= {lo:g}x"
        for lo, hi in zip(edges, edges[1:], strict=False)
    ]
    counts: dict[str, list[int]] = {}
    for r in ev.runs:
        if r.policy != policy or r.error is not None or "accuracy" not in r.series:
            continue
        for acc, load in zip(r.series["accuracy"], r.series["load"], strict=False):
            name = names.get(round(acc, 4), f"accuracy {acc:.2f}")
            k = int(np.searchsorted(LEVEL_BINS, load / nominal, side="right"))
            counts.setdefault(name, [0] * len(labels))[k] += 1
    if not counts:
        return []
    lines = ["| combination | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 1)]
    totals = [sum(c[k] for c in counts.values()) for k in range(len(labels))]
    for name, c in sorted(counts.items()):
        cells = [f"{100 * n / t:.0f} %" if t else "-" for n, t in zip(c, totals, strict=True)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| intervals | " + " | ".join(str(t) for t in totals) + " |")
    return lines


# --------------------------------------------------------------------------- report


def evaluations(
    args: Args, base: Scenario, policies: dict[str, str], runs: dict[str, list[RunRecord]]
) -> dict[str, Evaluation]:
    names = [t.strip() for t in args.traces.split(",") if t.strip()]
    traces = {n: test_trace(n, base) for n in names}
    if args.duration is not None:
        traces = {n: t.with_duration(min(args.duration, t.duration)) for n, t in traces.items()}
    return evaluations_of(args, base, list(policies), traces, runs)


def fault_text(args: Args) -> str:
    """The fault schedule of ``args.faults`` in words (one clause per fault)."""
    from jbrl.sim import load_faults

    sched = load_faults(args.faults, load_scenario(args.scenario))
    parts = [f"{c.worker} down {c.at:g}-{c.until:g} s" for c in sched.crashes]
    parts += [
        f"link {d.source} -> {d.target} x{d.factor:g} slower {d.at:g}-{d.until:g} s"
        for d in sched.slowdowns
    ]
    return "; ".join(parts) or "no faults"


def report(args: Args, evs: dict[str, Evaluation], policies: dict[str, str], meta: dict) -> str:
    own = evs["own"]
    text = [
        f"# Policies on test traces of every load kind: {own.scenario}",
        "",
        f"Generated by `python experiments/evaluate_policies.py {' '.join(meta['argv'])}` on "
        f"{meta['started']} (git {meta['commit']}), {meta['wall_s'] / 60:.1f} min wall time.",
        "",
        f"- Machine: {meta['machine']}.",
        f"- {meta['cached_runs']} of {meta['runs']} (policy, trace, seed) runs came from the "
        "cache (`--cache`: runs of earlier invocations with the same settings; the wall time "
        "above is this invocation's).",
        f"- Simulator: {args.sim}; {args.seeds} seed(s) per run; control interval "
        f"{args.interval:g} s; shield: {args.shield}; traces (test seed 0, never used in "
        f"training or selection): {', '.join(own.traces)}"
        + (f", cut to {args.duration:g} s" if args.duration else ", 2 h each")
        + ".",
        *(
            [f"- Every run under the fault schedule `{args.faults}`: {fault_text(args)}."]
            if args.faults
            else []
        ),
        "- Policies: "
        + "; ".join(f"`{lb}` = `{sp}`" for lb, sp in policies.items() if lb != sp)
        + ". oracle and milp-oracle read the whole trace (references, not deployable); "
        "milp-static reads its peak.",
        "- Per-trace cells: $ per run, the worst run's SLO attainment, model loads per run "
        "(`ld`), shield interventions per run (`sh`).",
    ]
    for key, ev in evs.items():
        title = "own model load times" if key == "own" else f"every load {args.load_time:g} s"
        text += ["", f"## {title}", "", markdown_table(ev), "", *per_trace_table(ev), ""]
        if args.subject in ev.policies:
            text += [f"Checks for `{args.subject}`:", ""]
            causal = baselines(policies, args.subject)
            for name, passed, detail in subject_checks(args, ev, args.subject, causal):
                text.append(f"- {name}: **{'pass' if passed else 'FAIL'}** ({detail}).")
            table = combination_table(ev, args.subject, load_scenario(args.scenario))
            if table:
                text += ["", f"Variant combinations `{args.subject}` ran, per load level:", ""]
                text += table
    return "\n".join(text) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    meta: dict[str, Any] = {
        "argv": sys.argv[1:] if argv is None else argv,
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "machine": machine(),
    }
    base = load_scenario(args.scenario)
    policies = labelled(args)
    built = build_policies(list(policies.values()), base)
    bad = {spec: why for spec, why in built.items() if isinstance(why, str)}
    if bad:  # a bad spec fails here, before any run
        print("; ".join(f"{spec}: {why}" for spec, why in bad.items()), file=sys.stderr)
        return 2
    names = [t.strip() for t in args.traces.split(",") if t.strip()]
    files = [unit_file(args, policies[lb], t) for lb in policies for t in names]
    meta["cached_runs"] = sum(cached_seeds(f, args.seeds) for f in files)
    meta["runs"] = len(files) * args.seeds
    runs = run_all(args, policies, names)
    meta["wall_s"] = time.perf_counter() - t0
    evs = evaluations(args, base, policies, runs)
    out = Path(args.out or RESULTS / f"policies_{base.name}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(args, evs, policies, meta), "utf-8")
    data = {
        "args": dataclasses.asdict(args),
        **meta,
        **{k: ev.to_dict(series=False) for k, ev in evs.items()},
    }
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n", "utf-8")
    print(f"wrote {out} and {out.with_suffix('.json')} in {meta['wall_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
