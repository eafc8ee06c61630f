"""Batching fidelity figures (issue 11): the DES against exact results, the latency model
against the DES on a validation grid, and the fluid simulator against the DES with batch sizes
above 1. Writes its sections of ``experiments/results/batching.md``::

    .venv/bin/python experiments/bench_batching.py [--part all|reference|model|fluid] [--scale 1]

* **reference**: the DES's mean sojourn against the bulk-service chain M/M^(1,b)/1
  (:func:`jbrl.planning.latency.bulk_ctmc_sojourn`; Chaudhry & Templeton 1983), exponential
  batch service of 1 s whatever the size; and the saturated throughput against ``b / E[S_b]``
  (deterministic and lognormal service, offered twice the capacity). Criterion: within 5 %.
* **model**: the latency model's batched sojourn (:func:`jbrl.planning.latency.worker_sojourn`)
  against the DES, one worker whose batch of ``n`` takes ``50 + 20 n`` ms on average (a GPU-like
  profile: batch 8 serves 3.5x batch 1's rate), at 0.3-0.95 of its full-batch capacity
  ``b / E[S_b]``, ``b`` in 1, 2, 4, 8, four service shapes, and a fill timeout of 50 ms on
  part of the grid. Errors: the mean (relative), and the model's CDF at the DES's p90 and p99
  (points; a positive error is optimistic: the model says more requests finish in time).
* **fluid**: :func:`jbrl.sim.agreement.compare` (as ``experiments/sim_agreement.py``) on plans with
  batch sizes above 1 at utilisation 0.5 / 0.8 / 0.95 of the busiest worker's full-batch
  capacity. Criteria: throughput within 2 %, dollars within 1 %, SLO attainment within 3 points.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _results import write_section  # noqa: E402  (sibling module of the scripts)

from jbrl.planning.latency import batch_service, bulk_ctmc_sojourn, worker_sojourn
from jbrl.planning.plan import Plan, plan_from_dict
from jbrl.scenario import Scenario, load_scenario, scenario_from_dict
from jbrl.sim import DesSimulator, SimConfig
from jbrl.sim.agreement import AgreementRow, busiest_utilization, compare, markdown_table

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results" / "batching.md"
Z90 = 1.2815515655446004


@dataclass
class Args:
    """Settings (each is a command-line flag)."""

    part: str = "all"
    """reference, model, fluid or all"""
    scale: float = 1.0
    """multiplies every run length"""
    seeds: int = 2
    """DES replications per fluid-vs-DES level"""
    out: str = str(RESULTS)
    """markdown file whose sections are (re)written"""


# --------------------------------------------------------------------------- scenarios


def one_worker(means_ms: list[float], sigma: float, rate: float, tau: float = 0.0) -> Scenario:
    """One source, one operator, one worker whose batch of ``n`` takes a lognormal of mean
    ``means_ms[n - 1]`` and log-sd ``sigma`` (sigma 0: a fixed time; p90 = p50 then)."""
    rows = []
    for n, mean in enumerate(means_ms, start=1):
        p50 = mean * math.exp(-sigma * sigma / 2)
        rows.append({"batch": n, "p50_ms": p50, "p90_ms": p50 * math.exp(sigma * Z90)})
    return scenario_from_dict(
        {
            "name": "one-worker",
            "tiers": ["edge"],
            "sources": [{"name": "src", "rate": rate}],
            "operators": [{"name": "op"}],
            "edges": [{"from": "src", "to": "op", "message_kb": 1.0}],
            "workers": [{"name": "w", "type": "gpu", "tier": "edge", "price": 1.0}],
            "profiles": [
                {
                    "operator": "op",
                    "worker_type": "gpu",
                    "p50_ms": rows[0]["p50_ms"],
                    "p90_ms": rows[0]["p90_ms"],
                    "batches": rows[1:],
                }
            ],
            "slo": {"min_accuracy": 0.0, "latency_ms": 1000.0},
            "batch_wait_timeout_s": tau,
        },
        "<one worker>",
    )


def batch_plan(b: int) -> Plan:
    return plan_from_dict({"worker_assignment": {"op": [{"worker": "w", "batch": b}]}})


def des_latencies(
    sc: Scenario, plan: Plan, rate: float, requests: float, service: str, seed: int
) -> np.ndarray:
    """Sojourn times (s) of about ``requests`` requests at steady state (after a warm-up of a
    tenth as many)."""
    return np.concatenate(des_batches(sc, plan, rate, requests, service, seed))


def des_batches(
    sc: Scenario, plan: Plan, rate: float, requests: float, service: str, seed: int
) -> list[np.ndarray]:
    """As :func:`des_latencies`, in four consecutive batches (for batch-means intervals)."""
    sim = DesSimulator(SimConfig(service=service, timeout_s=1e9))  # type: ignore[arg-type]
    sim.reset(sc, plan, seed=seed)
    sim.advance(0.1 * requests / rate, {"src": rate})
    out = []
    for _ in range(4):
        sim.advance(requests / 4 / rate, {"src": rate})
        out.append(np.array(sim.interval_latencies()) / 1000.0)
    return out


# --------------------------------------------------------------------------- reference


def reference_part(scale: float) -> list[str]:
    lines = [
        "## The DES against exact results (experiments/bench_batching.py --part reference)",
        "",
        "Mean sojourn of M/M^(1,b)/1 (a free server takes min(queue, b); exponential batch "
        "service of 1 s whatever the size; Chaudhry & Templeton, *A First Course in Bulk Queues*, "
        "1983), from its Markov chain solved numerically, against the DES with exponential "
        f"service ({150_000 * scale:,.0f} requests after a warm-up, seed 5). Criterion: 5 %.",
        "",
        "| lambda (1/s) | b | load lambda / b | CTMC mean sojourn (s) | DES (s) | diff |",
        "|---|---|---|---|---|---|",
    ]
    for lam, b in [(1.5, 2), (3.0, 4), (2.0, 4), (6.0, 8), (3.6, 4)]:
        want = bulk_ctmc_sojourn(lam, 1.0, b, levels=2000)
        sc = one_worker([1000.0] * b, 0.0, lam)
        got = float(des_latencies(sc, batch_plan(b), lam, 150_000 * scale, "exponential", 5).mean())
        lines.append(
            f"| {lam:g} | {b} | {lam / b:.2f} | {want:.4f} | {got:.4f} | "
            f"{100 * (got / want - 1):+.2f} % |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "Saturated throughput: offered twice the capacity ``b / E[S_b]`` (batch of n: "
        "50 + 20 n ms on average), 200 s after 20 s of warm-up, seed 1.",
        "",
        "| service | b | b / E[S_b] (req/s) | DES served (req/s) | diff |",
        "|---|---|---|---|---|",
    ]
    for service, sigma in [("deterministic", 0.0), ("lognormal", 0.3)]:
        for b in (2, 4, 8):
            means = [50.0 + 20.0 * n for n in range(1, b + 1)]
            sc = one_worker(means, sigma, 1.0)
            bs = batch_service(sc, "op", "default", "w", service)  # type: ignore[arg-type]
            cap = bs.max_throughput(b)
            sim = DesSimulator(SimConfig(service=service, timeout_s=1e9))  # type: ignore[arg-type]
            sim.reset(sc, batch_plan(b), seed=1)
            sim.advance(20.0, {"src": 2 * cap})
            m = sim.advance(200.0 * scale, {"src": 2 * cap})
            got = m.completed / m.duration
            lines.append(
                f"| {service} | {b} | {cap:.3f} | {got:.3f} | {100 * (got / cap - 1):+.2f} % |"
            )
            print(lines[-1], flush=True)
    return lines


# --------------------------------------------------------------------------- model


SHAPES: list[tuple[str, str, float]] = [
    # (label, DES service family, lognormal log-sd)
    ("lognormal sd 0.1", "lognormal", 0.1),
    ("lognormal sd 0.3", "lognormal", 0.3),
    ("lognormal sd 0.6", "lognormal", 0.6),
    ("exponential", "exponential", 0.3),
]
LOADS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def model_cases() -> list[tuple[str, str, float, int, float, float]]:
    """(shape label, family, sigma, b, load, timeout)."""
    out = []
    for label, fam, sigma in SHAPES:
        for b in (1, 2, 4, 8):
            for u in LOADS:
                out.append((label, fam, sigma, b, u, 0.0))
    for b in (4, 8):
        for u in LOADS:
            out.append(("lognormal sd 0.3", "lognormal", 0.3, b, u, 0.05))
    return out


def model_row(
    i: int, label: str, fam: str, sigma: float, b: int, u: float, tau: float, scale: float
) -> dict[str, Any]:
    """Case ``i`` of the grid: DES seeds ``100 i`` (and ``100 i + 1`` at loads >= 0.9: the
    sample mean converges slowly there), every case its own arrivals."""
    means = [50.0 + 20.0 * n for n in range(1, b + 1)]
    sc = one_worker(means, sigma, 1.0, tau)
    bs = batch_service(sc, "op", "default", "w", fam)  # type: ignore[arg-type]
    lam = u * bs.max_throughput(b)
    seeds = (100 * i, 100 * i + 1) if u >= 0.9 else (100 * i,)
    parts = [
        p for seed in seeds for p in des_batches(sc, batch_plan(b), lam, 40_000 * scale, fam, seed)
    ]
    lat = np.concatenate(parts)
    part_means = np.array([p.mean() for p in parts])
    half = 1.96 * part_means.std(ddof=1) / math.sqrt(len(parts))  # batch means
    t0 = time.perf_counter()
    soj = worker_sojourn(bs, lam, b, tau)
    model_ms = 1000 * (time.perf_counter() - t0)
    q90, q99 = np.quantile(lat, [0.9, 0.99])
    return {
        "shape": label,
        "b": b,
        "u": u,
        "tau": tau,
        "n": len(lat),
        "des_mean": float(lat.mean()),
        "des_ci": float(half / lat.mean()),
        "mean_err": soj.mean_s / float(lat.mean()) - 1.0,
        "des_p90": float(q90),
        "des_p99": float(q99),
        "p90_err": 100 * (float(soj.cdf(np.array([q90]))[0]) - 0.90),
        "p99_err": 100 * (float(soj.cdf(np.array([q99]))[0]) - 0.99),
        "model_p99": soj.quantile(0.99),
        "model_ms": model_ms,
    }


def model_part(scale: float) -> list[str]:
    rows = []
    for i, case in enumerate(model_cases()):
        r = model_row(i, *case, scale)
        rows.append(r)
        print(
            f"{r['shape']:18s} b={r['b']} u={r['u']:.2f} tau={r['tau']:g}: mean "
            f"{100 * r['mean_err']:+.1f} % (DES +-{100 * r['des_ci']:.1f} %), at p90 {r['p90_err']:+.2f} pt, at p99 "
            f"{r['p99_err']:+.2f} pt",
            flush=True,
        )
    return model_table(rows, scale)


def model_table(rows: list[dict[str, Any]], scale: float) -> list[str]:
    def summary(sel: list[dict[str, Any]], what: str) -> str:
        if not sel:
            return f"| {what} | 0 | | | | |"
        me = np.array([100 * r["mean_err"] for r in sel])
        inside = sum(abs(r["mean_err"]) <= r["des_ci"] for r in sel)
        e90 = np.array([r["p90_err"] for r in sel])
        e99 = np.array([r["p99_err"] for r in sel])
        return (
            f"| {what} | {len(sel)} | {me.min():+.1f} / {np.median(me):+.1f} / {me.max():+.1f} | "
            f"{inside} | "
            f"{e90.min():+.2f} / {np.median(e90):+.2f} / {e90.max():+.2f} | "
            f"{e99.min():+.2f} / {np.median(e99):+.2f} / {e99.max():+.2f} |"
        )

    lines = [
        "## The latency model against the DES (experiments/bench_batching.py --part model)",
        "",
        "One worker, batch of n: 50 + 20 n ms on average; arrival rate = load x b / E[S_b]; "
        f"DES: {40_000 * scale:,.0f} requests after a warm-up (two such runs at loads >= 0.9), "
        "its own seeds per case. Errors: mean (model / DES - 1), with the DES mean's 95 % "
        "half-width (batch means over quarters of the runs: near saturation the DES's own mean "
        "is uncertain by several %); the model's CDF at the DES's p90 and p99 minus 0.90 / 0.99, "
        "in points (positive: optimistic). The model at b = 1 is the M/G/1 formula (exact mean).",
        "",
        "Summary (min / median / max):",
        "",
        "| cases | n | mean error (%) | mean within the DES's 95 % | at the DES's p90 (points) "
        "| at the DES's p99 (points) |",
        "|---|---|---|---|---|---|",
        summary(rows, "all"),
    ]
    for b in (1, 2, 4, 8):
        lines.append(summary([r for r in rows if r["b"] == b and r["tau"] == 0], f"b = {b}"))
    for label, _, _ in SHAPES:
        lines.append(summary([r for r in rows if r["shape"] == label], label))
    lines.append(summary([r for r in rows if r["tau"] > 0], "timeout 50 ms"))
    lines.append(summary([r for r in rows if r["u"] >= 0.9], "load >= 0.9"))
    lines += [
        "",
        "Every case:",
        "",
        "| shape | b | load | timeout (s) | DES mean (s) | mean error (DES 95 %) | DES p99 (s) "
        "| model p99 (s) "
        "| at p90 (points) | at p99 (points) | model time (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['b']} | {r['u']:.2f} | {r['tau']:g} | {r['des_mean']:.4f} | "
            f"{100 * r['mean_err']:+.1f} % (+-{100 * r['des_ci']:.1f}) | {r['des_p99']:.3f} | {r['model_p99']:.3f} | "
            f"{r['p90_err']:+.2f} | {r['p99_err']:+.2f} | {r['model_ms']:.0f} |"
        )
    return lines


# --------------------------------------------------------------------------- fluid

DURATIONS = {0.5: 1800.0, 0.8: 1800.0, 0.95: 7200.0}


def gpu_chain() -> tuple[Scenario, Plan, str]:
    """A two-stage chain with GPU-like batch gains: ``detect`` on two GPUs batching 8 and 4
    (fill timeout 20 ms), ``classify`` on a batching GPU (4) and a CPU (1)."""
    prof: list[dict[str, Any]] = []
    for op, wt, a, c, sigma in [
        ("detect", "gpu", 40.0, 12.0, 0.2),
        ("classify", "gpu", 20.0, 6.0, 0.3),
        ("classify", "cpu", 60.0, 60.0, 0.25),
    ]:
        rows = []
        for n in (1, 2, 4, 8):
            p50 = (a + c * n) * math.exp(-sigma * sigma / 2)
            rows.append({"batch": n, "p50_ms": p50, "p90_ms": p50 * math.exp(sigma * Z90)})
        prof.append(
            {
                "operator": op,
                "worker_type": wt,
                "p50_ms": rows[0]["p50_ms"],
                "p90_ms": rows[0]["p90_ms"],
                "batches": rows[1:],
            }
        )
    sc = scenario_from_dict(
        {
            "name": "gpu-chain",
            "tiers": ["edge", "cloud"],
            "sources": [{"name": "cam", "rate": 60.0, "tier": "edge"}],
            "operators": [{"name": "detect"}, {"name": "classify"}],
            "edges": [
                {"from": "cam", "to": "detect", "message_kb": 50.0},
                {"from": "detect", "to": "classify", "message_kb": 5.0},
            ],
            "workers": [
                {"name": "g1", "type": "gpu", "tier": "cloud", "price": 2.0},
                {"name": "g2", "type": "gpu", "tier": "cloud", "price": 2.0},
                {"name": "g3", "type": "gpu", "tier": "cloud", "price": 2.0},
                {"name": "c1", "type": "cpu", "tier": "cloud", "price": 0.3},
            ],
            "links": [
                {"from": "edge", "to": "cloud", "cost_per_gb": 0.1, "bandwidth_mb_s": 60.0},
            ],
            "profiles": prof,
            "slo": {"min_accuracy": 0.0, "latency_ms": 400.0, "attainment": 0.99},
            "batch_wait_timeout_s": 0.02,
        },
        "<gpu chain>",
    )
    plan = plan_from_dict(
        {
            "worker_assignment": {
                "detect": [{"worker": "g1", "batch": 8}, {"worker": "g2", "batch": 4}],
                "classify": [{"worker": "g3", "batch": 4}, {"worker": "c1", "rate": 3.0}],
            }
        }
    )
    return sc, plan, "detect on g1 (b = 8) and g2 (b = 4), classify on g3 (b = 4) and c1 (b = 1)"


def vqa_batched() -> tuple[Scenario, Plan, str]:
    """The embedded ``vqa`` scenario's MILP plan with batch 4 on every worker whose profile
    lists batch 4 (its CPU profiles gain little from batching: the figure tests the simulators,
    not the plan)."""
    from jbrl.planning import get_planner

    s = load_scenario("vqa")
    plan = get_planner("milp").plan(s).plan
    d = plan.to_dict()
    batched = []
    for op, shares in d["worker_assignment"].items():
        var = plan.model_assignment.get(op) or s.operator_map[op].variants[0]
        for sh in shares:
            prof = s.profile(op, var, sh["worker"])
            if prof is not None and 4 in prof.batch_sizes:
                sh["batch"] = 4
                batched.append(f"{op}@{sh['worker']}")
    what = "the MILP plan for the nominal rates, batch 4 on " + ", ".join(batched)
    return s, plan_from_dict(d), what


def vqa_routed() -> tuple[Scenario, Plan, str]:
    """The plan of ``tests/sim/test_sim_agreement.py`` (the MILP's vqa plan of 2026-11, four
    edge CPUs with routing) with batch 4 on the image and VQA workers: batching after batching,
    the image features reaching each VQA worker from mostly one edge worker."""
    import sys

    sys.path.insert(0, str(REPO))
    from tests.sim.test_sim_agreement import vqa_batched_plan

    what = (
        "the test's routed plan (tests/sim/test_sim_agreement.py), batch 4 on the four edge "
        "CPUs (image features) and the three cloud CPUs (VQA)"
    )
    return load_scenario("vqa"), vqa_batched_plan(), what


def fluid_part(scale: float, seeds: int) -> list[str]:
    rows: list[AgreementRow] = []
    notes = []
    t0 = time.perf_counter()
    for (s, plan, what), label in zip(
        (gpu_chain(), vqa_batched(), vqa_routed()),
        ("", " (MILP plan)", " (routed plan)"),
        strict=True,
    ):
        notes.append(
            f"`{s.name}{label}`: {what} (busiest worker at {busiest_utilization(s, plan):.3f} at the "
            "nominal rates)"
        )
        for rho, seconds in DURATIONS.items():
            row = compare(s, plan, rho, seconds * scale, seeds=tuple(range(seeds)))
            row.scenario += label
            rows.append(row)
            ok = (
                abs(row.throughput_diff) <= 0.02
                and abs(row.dollars_diff) <= 0.01
                and abs(row.slo_diff_points) <= 3.0
            )
            print(
                f"{row.scenario} rho={rho:g}: throughput {100 * row.throughput_diff:+.2f} %, "
                f"dollars {100 * row.dollars_diff:+.2f} %, SLO {row.slo_diff_points:+.2f} pt "
                f"{'ok' if ok else 'OUTSIDE THE CRITERIA'} ({row.des_seconds:.0f} s of DES)",
                flush=True,
            )
    return [
        "## Fluid vs DES with batching (experiments/bench_batching.py --part fluid)",
        "",
        "As experiments/sim_agreement.py (jbrl.sim.agreement.compare), on plans with batch sizes "
        "above 1; utilisation of the busiest worker (a batching worker's: rate x E[S_b] / b). "
        f"DES: {seeds} replication(s) per level of "
        + ", ".join(f"{d * scale:g} s at {r:g}" for r, d in DURATIONS.items())
        + " (the first 300 s left out). Criteria: throughput within 2 %, dollars within 1 %, SLO "
        "attainment within 3 points. Plans: " + "; ".join(notes) + ".",
        "",
        markdown_table(rows),
        "Batching after batching: a batch's outputs leave together, so a batching worker fed "
        "by batching workers (the routed plan: each VQA worker gets its image features mostly "
        "from one edge worker batching 4; gpu-chain: classify on g3 fed by g1 and g2) receives "
        "them in groups, about one upstream service apart. The latency model (and so the "
        "fluid) takes that into account (jbrl/planning/latency/feeders.py, groups.py: the "
        "senders' batch sizes thinned by routing, the bulk chain with group arrivals, the "
        "group epochs' regularity by QNA). Before it took such arrivals as Poisson: the routed "
        "plan at 0.95 was then -8.32 points (fluid 62.68 % against the DES's 71.00 %; "
        "2026-12-05 13:40 UTC, the same DES runs).",
        f"Generated in {time.perf_counter() - t0:.0f} s.",
    ]


# --------------------------------------------------------------------------- main


def machine() -> str:
    import os

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"Machine: {os.cpu_count()} logical CPUs, load average {load} (1/5/15 min) at the end. "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    args = Args(**vars(parser.parse_args()))
    out = Path(args.out)
    parts = ("reference", "model", "fluid") if args.part == "all" else (args.part,)
    for part in parts:
        t0 = time.perf_counter()
        if part == "reference":
            lines = reference_part(args.scale)
        elif part == "model":
            lines = model_part(args.scale)
        elif part == "fluid":
            lines = fluid_part(args.scale, args.seeds)
        else:
            raise SystemExit(f"--part: unknown part {part!r} (reference, model, fluid, all)")
        lines += ["", f"{machine()} Took {time.perf_counter() - t0:.0f} s."]
        write_section(out, f"<!-- {part}:start -->", f"<!-- {part}:end -->", "\n".join(lines))
        print(f"wrote the {part} section of {out}")


if __name__ == "__main__":
    main()
