"""``profile_scenarios.py measure``: CPU profiles of every variant of the embedded scenarios.

Runs ``jbrl profile`` (:func:`jbrl.profiling.profile_models`) with one thread at batch sizes
1, 2, 4 and 8 for every CPU variant of the embedded scenarios (vqa, vehicle, fleet; fleet uses
vqa's models) and writes ``configs/profiles/cpu-1thread.yaml`` in the ``jbrl profile -o``
format, plus every raw record (mean, min, max too) and the machine's load average before and
after each model in ``experiments/results/profiles_cpu.json``.

Latency is the compute thread's CPU time (``jbrl profile --clock cpu``): the machine is shared
by several people, and wall-clock time would include the time other processes run. Repeats
follow the cost of one call: 15 timed runs (2 warm-up) for the quick models, 10 (2)
for the speech models and YOLOS-Ti, and for the detectors that take seconds per frame on one
core :data:`SLOW_SCHEDULE` (fewer runs at the larger batches; each model's file entry and raw
record state them). The slow models are written after every batch size. ``--models a,b`` re-measures only those and merges them
into the existing files (for a model whose p90/p50 shows it was disturbed). Pin the process to
one core (``taskset -c 1``) on a shared machine; two ``--models`` runs pinned to different cores
may run at once (each merges its models into the files under a lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "configs" / "profiles"
CPU_FILE = PROFILES / "cpu-1thread.yaml"
RAW_FILE = ROOT / "experiments" / "results" / "profiles_cpu.json"
BATCHES = (1, 2, 4, 8)
CLOCK = "cpu"
"""The compute thread's CPU time: the machine is shared, so wall-clock time would count the
time the OS gives other processes (measured: 3x the CPU time at a load average of 5 on 2 cores)."""

QUICK = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "visualbert",
    "reid-resnet18",
    "reid-resnet34",
    "reid-resnet50",
    "reid-resnet101",
    "hungarian",
]
MEDIUM = ["wav2vec2-base", "wav2vec2-large", "yolos-tiny"]
SLOW = [
    "yolos-small",
    "detr-resnet50",
    "detr-resnet101",
    "conditional-detr-resnet50",
    "deformable-detr",
]
Schedule = dict[int, tuple[int, int]]
"""batch size -> (timed runs, warm-up runs)."""
SLOW_SCHEDULE: Schedule = {1: (3, 1), 2: (2, 1), 4: (1, 0), 8: (1, 0)}
"""The slow detectors (seconds per frame on one core; a batch of 8 is 8 frames): on the shared
machine a process got about a twentieth of a core, so batches 4 and 8 are one timed run each
(p50 = p90; the model is rebuilt for each batch size, so that run is its first at that size)."""
TIERS: list[tuple[list[str], Schedule]] = [
    (QUICK, dict.fromkeys(BATCHES, (15, 2))),
    (MEDIUM, dict.fromkeys(BATCHES, (10, 2))),
    (SLOW, SLOW_SCHEDULE),
]


def measured_models() -> list[str]:
    """Every model ``measure`` profiles, in order."""
    return [m for models, _ in TIERS for m in models]


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _calls(schedule: Schedule) -> list[tuple[list[int], int, int]]:
    """Consecutive batch sizes with the same (timed, warm-up) runs share one profiler call."""
    calls: list[tuple[list[int], int, int]] = []
    for b in sorted(schedule):
        repeats, warmup = schedule[b]
        if calls and calls[-1][1:] == (repeats, warmup):
            calls[-1][0].append(b)
        else:
            calls.append(([b], repeats, warmup))
    return calls


def _measure_one(model: str, schedule: Schedule) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """Profile one model at every batch size of ``schedule``; after each profiler call, the
    records so far and the machine state around them."""
    from jbrl.profiling import profile_models

    before, t0 = _loadavg(), time.time()
    records: list[Any] = []
    for batches, repeats, warmup in _calls(schedule):
        records += profile_models(
            [model], batch_sizes=batches, threads=1, repeats=repeats, warmup=warmup, clock=CLOCK
        )
        state = {
            "model": model,
            "schedule": {b: list(schedule[b]) for b in sorted(schedule) if b <= batches[-1]},
            "loadavg_before": before,
            "loadavg_after": _loadavg(),
            "wall_s": round(time.time() - t0, 1),
            "cpu_affinity": sorted(os.sched_getaffinity(0)),
            "nproc": os.cpu_count(),
        }
        for r in records[-len(batches) :]:
            print(
                f"  {r.model:26s} b={r.batch} p50={r.p50_ms:10.2f} p90={r.p90_ms:10.2f} "
                f"(p90/p50 {r.p90_ms / r.p50_ms:4.2f}) out={r.output_kb:8.2f}KB "
                f"load={r.load_s:.2f}s",
                flush=True,
            )
        print(f"  load average {state['loadavg_before']} -> {state['loadavg_after']}", flush=True)
        yield records, state


def _entry(records: Sequence[Any], schedule: Schedule) -> dict[str, Any]:
    """The profile entry; its provenance names the runs of every batch size whose runs
    differ from batch 1's (the profiler's text states batch 1's)."""
    from jbrl.profiling import records_to_profiles

    (entry,) = records_to_profiles(records)
    first = schedule[min(schedule)]
    other = [
        f"batch {r.batch}: {schedule[r.batch][0]} timed run(s) after {schedule[r.batch][1]} warm-up"
        for r in records
        if schedule[r.batch] != first
    ]
    if other:
        entry["provenance"] += " (" + "; ".join(other) + ")"
    return entry


def measure(only: Sequence[str] | None = None) -> None:
    """Profile the models (all, or ``only``) and write/merge the profile and raw files."""
    wanted = set(only or measured_models())
    unknown = wanted - set(measured_models())
    if unknown:
        raise SystemExit(f"not a measured model: {', '.join(sorted(unknown))}")
    fresh = not only  # a full run starts the files anew; --models merges into them
    for models, schedule in TIERS:
        for model in models:
            if model not in wanted:
                continue
            for records, state in _measure_one(model, schedule):
                entry = _entry(records, schedule)
                with _locked():  # re-read under the lock: another --models run may write
                    raw = {} if fresh else _existing_raw()
                    entries = {} if fresh else _existing_entries()
                    entries[model] = entry
                    raw[model] = {"state": state, "records": [r.to_dict() for r in records]}
                    _write(entries, raw)  # a stopped run keeps what it measured
                fresh = False


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """An exclusive lock on the profile files (concurrent ``--models`` runs)."""
    with open(Path(tempfile.gettempdir()) / "jbrl-profile-scenarios.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _existing_raw() -> dict[str, Any]:
    return json.loads(RAW_FILE.read_text("utf-8")) if RAW_FILE.exists() else {}


def _existing_entries() -> dict[str, dict[str, Any]]:
    if not CPU_FILE.exists():
        return {}
    doc = yaml.safe_load(CPU_FILE.read_text("utf-8"))
    return {p["variant"]: p for p in doc.get("profiles", [])}


def _write(entries: dict[str, dict[str, Any]], raw: dict[str, Any]) -> None:
    order = [m for m in measured_models() if m in entries]
    RAW_FILE.parent.mkdir(parents=True, exist_ok=True)
    RAW_FILE.write_text(json.dumps({m: raw[m] for m in order if m in raw}, indent=1) + "\n")
    first = raw[order[0]]["records"][0] if order and order[0] in raw else {}
    head = [
        "# Profiles measured by `jbrl profile` (jbrl.profiling), written by",
        "# experiments/profile_scenarios.py measure (batch sizes 1, 2, 4, 8; one thread).",
        f"# Hardware: {first.get('hardware', '?')}; torch {first.get('torch_version', '?')}; "
        f"transformers {first.get('transformers_version', '?')}.",
        "# Latency: ms of one forward call for the whole batch, as the compute thread's CPU time",
        "# (jbrl profile --clock cpu: the machine is shared, and wall-clock time would count the",
        "# time other processes run); p50/p90 over the timed runs (their number per model is in",
        "# each provenance). The machine's state:",
        "# load average (1, 5, 15 min) before -> after each model, and the CPU it was pinned to:",
    ]
    for m in order:
        st = raw.get(m, {}).get("state")
        if st:
            head.append(
                f"#   {m}: {st['loadavg_before']} -> {st['loadavg_after']}, "
                f"cpus {st['cpu_affinity']} of {st['nproc']}, {st['wall_s']:.0f} s"
            )
    head += [
        "# Raw records (mean, min, max per batch): experiments/results/profiles_cpu.json.",
        "# output_kb: output tensor bytes per request / 1024. load_s: random-init build.",
    ]
    body = yaml.safe_dump({"profiles": [entries[m] for m in order]}, sort_keys=False, width=100)
    CPU_FILE.write_text("\n".join(head) + "\n" + body, "utf-8")
    print(f"wrote {CPU_FILE} and {RAW_FILE}", flush=True)
