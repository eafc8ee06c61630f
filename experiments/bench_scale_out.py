"""Benchmark of the scale-out path: one evaluation in this process, in a local process pool and as
Ray tasks (a local Ray, and a local multi-node cluster), Ray's overhead per task, and a sweep.

Part A: 8 policies x 6 traces x 2 seeds in the fluid simulator on ``vqa`` (the three embedded
evaluation traces and three generated ones, 2 h each): wall time per way of running it, the
figures compared (every value of the JSON less its wall-clock measurements must be identical),
the nodes the Ray tasks ran on, and Ray's cost per task: the time inside the tasks against the
wall time, and no-op tasks (pure scheduling and transfer).

Part B: ``configs/sweep/ppo_vqa_quick.yaml`` (4 trials) on Ray Tune on the multi-node cluster:
wall time, each trial's wall time and validation figures.

The multi-node cluster is ``ray.cluster_utils.Cluster`` on this machine: a head that runs no
task (0 CPUs) and two worker nodes of 1 CPU each, all on 127.0.0.1.

Usage::

    python experiments/bench_scale_out.py              # both parts (15 minutes on 2 idle cores, 45 at load 35)
    python experiments/bench_scale_out.py --skip-sweep

Results go to experiments/results/scale_out.md (and scale_out.json).
"""

from __future__ import annotations

import os

# before Ray is imported: every node of the local cluster on 127.0.0.1
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
from _results import write_section  # noqa: E402

POLICIES = [
    "ppo",
    "milp-reactive:headroom=0.2",
    "milp-hysteresis",
    "milp-oracle",
    "milp-static",
    "jellybean",
    "jellybean-reactive",
    "autoscaler",
]
GENERATED = {  # name -> (kind, seed, params): three more 2-hour traces
    "diurnal_g": ("diurnal", 11, {"amplitude": 0.4, "period_s": 7200.0, "noise": 0.03}),
    "random_walk_g": ("random_walk", 12, {"sigma": 0.05, "reversion_s": 1200.0}),
    "bursty_g": ("bursty", 13, {"flash_per_hour": 1.0, "flash_peak": 1.4}),
}


@dataclass
class Args:
    """Benchmark options (see ``--help``)."""

    seeds: int = 2
    noop_tasks: int = 400
    skip_sweep: bool = False
    out: Path = REPO / "experiments" / "results"


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


@contextmanager
def local_cluster() -> Iterator[Any]:
    """A head (0 CPUs) and two worker nodes of 1 CPU on 127.0.0.1; Ray's files in a short
    temporary directory, removed afterwards."""
    from ray.cluster_utils import Cluster

    root = tempfile.mkdtemp(prefix="jbrl-bench-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = root
    node = {"node_ip_address": "127.0.0.1"}
    c = Cluster(initialize_head=True, head_node_args={**node, "num_cpus": 0,
                                                      "include_dashboard": False})  # fmt: skip
    try:
        for _ in range(2):
            c.add_node(**node, num_cpus=1)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()
        os.environ.pop("RAY_TMPDIR", None)
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- part A


def workload() -> tuple[Any, dict[str, Any]]:
    """The scenario and the six traces."""
    from jbrl.evaluation.traces import default_traces
    from jbrl.scenario import load_scenario
    from jbrl.scenario.traces import generate_trace

    vqa = load_scenario("vqa")
    traces = dict(default_traces(vqa))
    for name, (kind, seed, params) in GENERATED.items():
        traces[name] = generate_trace(kind, 7200, seed=seed, sources=vqa, params=params)
    return vqa, traces


def timed_evaluation(executor: Any, processes: int, args: Args) -> dict[str, Any]:
    """One evaluation; its wall time, figures (no timings) and, on Ray, where it ran."""
    from jbrl.evaluation.runner import evaluate

    vqa, traces = workload()
    t0 = time.perf_counter()
    ev = evaluate(vqa, traces, POLICIES, sim="fluid", seeds=args.seeds, processes=processes,
                  executor=executor)  # fmt: skip
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {"wall_s": wall, "runs": len(ev.runs), "load": machine()["loadavg"]}
    failed = [r for r in ev.runs if r.error is not None]
    if failed:
        raise SystemExit(f"{len(failed)} runs failed, e.g. {failed[0].policy}: {failed[0].error}")
    out["figures"] = ev.to_dict(timings=False)
    print(f"  {wall:.1f} s", flush=True)
    if executor is not None:
        out["start_s"] = executor.start_s
        out["nodes"] = len(executor.nodes)
        out["runs_per_node"] = sorted(executor.nodes.values())
        out["task_s_sum"] = sum(executor.task_s)
        out["task_s_median"] = statistics.median(executor.task_s)
        out["tasks"] = len(executor.task_s)
    return out


def compare(ref: Any, other: Any, path: str = "") -> tuple[int, list[str]]:
    """The number of values (leaves) of ``ref`` and the paths where ``other`` differs."""
    if isinstance(ref, dict) and isinstance(other, dict) and ref.keys() == other.keys():
        pairs = [(f"{path}/{k}", ref[k], other[k]) for k in ref]
    elif isinstance(ref, list) and isinstance(other, list) and len(ref) == len(other):
        pairs = [(f"{path}[{i}]", a, b) for i, (a, b) in enumerate(zip(ref, other, strict=True))]
    else:
        return 1, ([] if ref == other else [path])
    n, diff = 0, []
    for p, a, b in pairs:
        m, d = compare(a, b, p)
        n, diff = n + m, diff + d
    return n, diff


def noop_overhead(n: int) -> dict[str, float]:
    """Ray's own cost per task (Ray already connected): ``n`` no-op tasks submitted at once
    (wall / n), and 50 sequential round trips (submit, run, get)."""
    import ray

    @ray.remote(num_cpus=1)
    def noop(x: int) -> int:
        return x

    ray.get([noop.remote(i) for i in range(8)])  # warm the workers
    t0 = time.perf_counter()
    ray.get([noop.remote(i) for i in range(n)])
    batch = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i in range(50):
        ray.get(noop.remote(i))
    return {"batch_ms_per_task": batch * 1000.0, "round_trip_ms": (time.perf_counter() - t0) * 20}


def part_a(args: Args) -> dict[str, Any]:
    from jbrl.evaluation.executors import RayTasks

    res: dict[str, Any] = {"machine_before": machine()}
    print("A1: in this process ...", flush=True)
    res["in_process"] = timed_evaluation(None, 1, args)
    print("A2: process pool (2 processes) ...", flush=True)
    res["process_pool_2"] = timed_evaluation(None, 2, args)
    print("A3: local Ray (one node, 2 CPUs) ...", flush=True)
    run_dir = Path(tempfile.mkdtemp(prefix="jbrl-b-", dir="/tmp"))
    with RayTasks(None, run_dir=run_dir, num_cpus=2) as tasks:
        res["ray_local"] = timed_evaluation(tasks, 1, args)
        res["ray_local"]["noop"] = noop_overhead(args.noop_tasks)
    shutil.rmtree(run_dir, ignore_errors=True)
    print("A4: local multi-node cluster (2 worker nodes x 1 CPU) ...", flush=True)
    with local_cluster() as c:
        t0 = time.perf_counter()
        with RayTasks(c.address) as tasks:
            res["ray_cluster"] = timed_evaluation(tasks, 1, args)
            res["ray_cluster"]["noop"] = noop_overhead(args.noop_tasks)
        res["ray_cluster"]["with_connect_s"] = time.perf_counter() - t0
    ref = res["in_process"]["figures"]
    for key in ("process_pool_2", "ray_local", "ray_cluster"):
        res[key]["identical"] = res[key]["figures"] == ref
        res[key]["values"], res[key]["differing"] = compare(ref, res[key]["figures"])
    res["machine_after"] = machine()
    return res


# --------------------------------------------------------------------------- part B


def part_b() -> dict[str, Any]:
    from jbrl.agents.ppo.sweep import run_sweep
    from jbrl.agents.ppo.sweep_config import load_sweep_config

    cfg = load_sweep_config(REPO / "configs" / "sweep" / "ppo_vqa_quick.yaml")
    root = Path(tempfile.mkdtemp(prefix="jbrl-sw-", dir="/tmp"))
    cfg = cfg.model_copy(update={"runs_dir": str(root)})
    res: dict[str, Any] = {"machine_before": machine(), "config": cfg.name}
    try:
        with local_cluster() as c:
            result = run_sweep(cfg, address=c.address, on_status=_say)
        res["wall_s"] = result.wall_s
        res["trials"] = [t.to_dict() for t in result.trials]
        res["best"] = None if result.best is None else result.best.trial
        res["shipped"] = sorted(p.name for p in (result.sweep_dir / "best").iterdir())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res["machine_after"] = machine()
    return res


def _say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- report


START = "<!-- bench_scale_out.py: start -->"
END = "<!-- bench_scale_out.py: end -->"


def markdown(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """The measured part of scale_out.md (the text around it is written by hand)."""
    lines = [f"Measured by `experiments/bench_scale_out.py` on {datetime.now(UTC):%Y-%m-%d}.", ""]
    if a is not None:
        lines += _part_a_md(a)
    if b is not None:
        lines += _part_b_md(b)
    return "\n".join(lines) + "\n"


def _part_a_md(a: dict[str, Any]) -> list[str]:
    m0, m1 = a["machine_before"], a["machine_after"]
    ip = a["in_process"]
    n = ip["runs"]
    lines = [
        f"### A. One evaluation: {len(POLICIES)} policies x 6 traces x 2 seeds = {n} runs "
        "(fluid, vqa, 2 h traces)",
        "",
        f"Machine: {m0['nproc']} cores, load average {m0['loadavg']} before and "
        f"{m1['loadavg']} after (shared with other work), Python {m0['python']}.",
        "",
        "| how | Ray start | wall (evaluation) | nodes (runs each) | time inside tasks | "
        "figures equal to in-process |",
        "|---|---|---|---|---|---|",
    ]
    rows: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
        ("in_process", "in this process", lambda r: "-"),
        ("process_pool_2", "process pool, 2 processes (spawn)", lambda r: "-"),
        ("ray_local", "Ray tasks, local Ray (1 node, 2 CPUs)", lambda r: f"{r['start_s']:.1f} s"),
        ("ray_cluster", "Ray tasks, local cluster (2 worker nodes x 1 CPU)",
         lambda r: f"{r['start_s']:.1f} s (join)"),
    ]  # fmt: skip
    for key, name, start in rows:
        r = a[key]
        nodes = f"{r['nodes']} ({', '.join(map(str, r['runs_per_node']))})" if "nodes" in r else "-"
        inside = f"{r['task_s_sum']:.1f} s" if "task_s_sum" in r else "-"
        same = "reference" if key == "in_process" else _same(r)
        lines.append(f"| {name} | {start(r)} | {r['wall_s']:.1f} s | {nodes} | {inside} | {same} |")
    lines += ["", *_overhead_md(a), ""]
    return lines


def _same(r: dict[str, Any]) -> str:
    """ "yes (n values)" or "NO: k of n values differ, e.g. path"."""
    if r["identical"]:
        return f"yes, all {r['values']} values"
    d = r["differing"]
    return f"NO: {len(d)} of {r['values']} values differ, e.g. `{d[0]}`"


def _overhead_md(a: dict[str, Any]) -> list[str]:
    ip = a["in_process"]
    out = ["Ray's cost per task (one task = one (policy, trace, seed) run):", ""]
    for key, name, slots in (("ray_local", "local Ray", 2), ("ray_cluster", "local cluster", 2)):
        r = a[key]
        n = r["tasks"]
        extra = (r["task_s_sum"] - ip["wall_s"]) / n * 1000.0
        idle = (slots * r["wall_s"] - r["task_s_sum"]) / n * 1000.0
        out.append(
            f"* {name}: no-op tasks {r['noop']['batch_ms_per_task']:.2f} ms each when submitted "
            f"together, {r['noop']['round_trip_ms']:.2f} ms for one round trip; in this "
            f"evaluation a task spent {r['task_s_sum'] / n * 1000.0:.0f} ms inside its worker "
            f"({extra:+.0f} ms against the in-process run, {ip['wall_s'] / n * 1000.0:.0f} ms: "
            f"two tasks at a time share 2 cores with the driver, Ray's processes and other "
            f"work, and every worker process pays its first imports), and {idle:.0f} CPU-ms "
            f"per task went to scheduling, transfer and the idle tail ({slots} CPUs x wall - "
            f"time inside tasks)."
        )
    return out


def _part_b_md(b: dict[str, Any]) -> list[str]:
    m0, m1 = b["machine_before"], b["machine_after"]
    lines = [
        f"### B. A sweep on Ray Tune: `configs/sweep/{b['config']}.yaml`, "
        f"{len(b['trials'])} trials on the local cluster (2 worker nodes x 1 CPU)",
        "",
        f"Load average {m0['loadavg']} before, {m1['loadavg']} after. Sweep wall time "
        f"{b['wall_s']:.0f} s (Ray join, Tune, {len(b['trials'])} trials two at a time, the "
        "results and best/).",
        "",
        "| trial | seed | env.reward.slo_miss | val $/h | val SLO | model loads | score | "
        "best at step | trial wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in b["trials"]:
        p = t["params"]
        mark = " (best)" if t["trial"] == b["best"] else ""
        lines.append(
            f"| {t['trial']}{mark} | {p.get('seed')} | {p.get('env.reward.slo_miss')} | "
            f"{_n(t['cost_per_hour'], '.3f')} | {_n(t['slo_attainment'], '.4f')} | "
            f"{_n(t['reconfigurations'], '.1f')} | {_n(t['score'], '.3f')} | {t['steps']} | "
            f"{_n(t['wall_s'], '.0f')} s |"
        )
    lines += ["", f"The best trial's policy folder held: {', '.join(b['shipped'])}.", ""]
    return lines


def _n(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=Args.seeds)
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--out", type=Path, default=Args.out)
    ns = ap.parse_args()
    args = Args(seeds=ns.seeds, skip_sweep=ns.skip_sweep, out=ns.out)
    a = part_a(args)
    b = None if args.skip_sweep else part_b()
    data = {"part_a": {k: ({kk: vv for kk, vv in v.items() if kk != "figures"}
                           if isinstance(v, dict) else v) for k, v in a.items()},
            "part_b": b}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale_out.json").write_text(json.dumps(data, indent=1) + "\n", "utf-8")
    write_section(args.out / "scale_out.md", START, END, markdown(a, b))
    print(markdown(a, b))


if __name__ == "__main__":
    main()
