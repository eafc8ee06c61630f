"""Measure model variants: warm-up, timed runs, percentiles, output size, load time.

The result is a list of :class:`ProfileRecord`; :func:`records_to_profiles` turns them into the
``profiles:`` entries that :class:`jbrl.scenario.model.Profile` validates, and
:func:`profiles_yaml` writes them as YAML with a comment header saying where they come from.

Conventions:

* latency is the time of one forward call for the whole batch: wall-clock
  (``time.perf_counter``; on CUDA the device is synchronised before and after each call), or,
  with ``clock="cpu"`` (one thread on the CPU only), the CPU time of the one compute thread
  (``time.thread_time``), which leaves out the time the operating system gives other processes:
  the estimate of a dedicated core's latency on a shared machine (cache and memory-bandwidth
  interference from other processes remain in it);
* p50/p90 are ``numpy.percentile`` (linear interpolation) of the timed runs;
* ``output_kb`` is bytes of the output tensor(s) per request (whole batch / batch size) / 1024;
* ``load_s`` is the time to construct the model with random initialisation and move it to
  the device. No weight file is read, so it stands in for (and usually exceeds) the time to
  load a checkpoint from local disk.
"""

from __future__ import annotations

import gc
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jbrl.errors import InputError, Param
from jbrl.profiling.models import MODELS, ModelSpec, resolve_model

ProgressCallback = Callable[[str, int, int], None]
CLOCKS = ("wall", "cpu")
"""Latency clocks: wall-clock time, or the compute thread's CPU time (one CPU thread only)."""
"""``progress(description, completed_steps, total_steps)``."""


@dataclass(frozen=True)
class ProfileRecord:
    """One measurement: a model at one batch size, thread count and device."""

    model: str
    operator: str
    batch: int
    threads: int
    device: str
    p50_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    repeats: int
    warmup: int
    output_kb: float
    load_s: float
    params_m: float | None
    input_desc: str
    hardware: str
    torch_version: str
    transformers_version: str
    date: str
    clock: str = "wall"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- environment


def cpu_model_name() -> str:
    """The CPU model from /proc/cpuinfo (with family/model numbers when the name is generic)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if ":" not in line:
                    if info:
                        break
                    continue
                key, value = (p.strip() for p in line.split(":", 1))
                info.setdefault(key, value)
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    extra = []
    if "cpu family" in info:
        extra.append(f"family {info['cpu family']}")
    if "model" in info:
        extra.append(f"model {info['model']}")
    flags = info.get("flags", "").split()
    isa = [f for f in ("avx512f", "avx512_bf16", "amx_tile", "avx2") if f in flags]
    if isa:
        extra.append("/".join(isa))
    return f"{name} ({', '.join(extra)})" if extra else name


def hardware_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(torch.device(device))} (host {cpu_model_name()})"
    return cpu_model_name()


def check_device(device: str) -> str:
    """Normalise ``device`` or raise :class:`InputError` when it is not available here."""
    dev = device.strip().lower()
    if dev == "cpu":
        return dev
    if dev == "cuda" or dev.startswith("cuda:"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(
                "CUDA is not available on this machine (torch "
                f"{torch.__version__}, no usable GPU); use --device cpu",
                field=Param.DEVICE,
                value=device,
            )
        if ":" in dev:
            idx = dev.split(":", 1)[1]
            if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
                raise InputError(
                    f"no such CUDA device ({torch.cuda.device_count()} present)",
                    field=Param.DEVICE,
                    value=device,
                )
        return dev
    raise InputError("unknown device; use cpu or cuda[:N]", field=Param.DEVICE, value=device)


def resolve_models(names: Iterable[str]) -> list[ModelSpec]:
    """Specs for ``names``; an unknown name raises :class:`InputError` listing the known ones."""
    specs: list[ModelSpec] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        spec = resolve_model(name)
        if spec is None:
            raise InputError(
                f"unknown model; known models: {', '.join(MODELS)}",
                field=Param.MODELS,
                value=name,
            )
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise InputError("no model given", field=Param.MODELS, value="")
    return specs


# --------------------------------------------------------------------------- measuring


def _output_bytes(outputs: Sequence[Any]) -> int:
    total = 0
    for out in outputs:
        if hasattr(out, "element_size") and hasattr(out, "numel"):
            total += int(out.element_size()) * int(out.numel())
        else:
            total += int(np.asarray(out).nbytes)
    return total


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(torch.device(device))


def _versions() -> tuple[str, str]:
    import torch

    try:
        import transformers

        tv = str(transformers.__version__)
    except ImportError:  # pragma: no cover - transformers is a profile dependency
        tv = "absent"
    return str(torch.__version__), tv


def profile_models(
    names: Iterable[str],
    batch_sizes: Sequence[int] = (1,),
    threads: int = 1,
    device: str = "cpu",
    repeats: int = 20,
    warmup: int = 3,
    progress: ProgressCallback | None = None,
    seed: int = 0,
    clock: str = "wall",
) -> list[ProfileRecord]:
    """Measure every model at every batch size; return one record per (model, batch).

    ``threads`` is applied with ``torch.set_num_threads`` for the duration of the call (and
    restored afterwards). Models are built one at a time and released after measuring.
    ``clock`` is ``wall`` or ``cpu`` (thread CPU time: one thread on the CPU only).
    """
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    specs = resolve_models(names)
    dev = check_device(device)
    batches = sorted({int(b) for b in batch_sizes})
    _check_settings(batches, threads, repeats, warmup)
    _check_clock(clock, threads, dev)
    hardware = hardware_name(dev)
    torch_v, tf_v = _versions()
    run = _Run(
        device=dev,
        threads=threads,
        repeats=repeats,
        warmup=warmup,
        seed=seed,
        hardware=hardware,
        torch_version=torch_v,
        transformers_version=tf_v,
        date=time.strftime("%Y-%m-%d", time.gmtime()),
        clock=clock,
        progress=_Progress(progress, ((warmup + repeats) * len(batches) + 1) * len(specs)),
    )
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    records: list[ProfileRecord] = []
    try:
        for spec in specs:
            records += _profile_model(spec, batches, run)
    finally:
        torch.set_num_threads(old_threads)
    return records


def _check_settings(batches: Sequence[int], threads: int, repeats: int, warmup: int) -> None:
    if not batches or batches[0] < 1:
        raise InputError("batch sizes must be positive integers", field=Param.BATCH_SIZES)
    if threads < 1:
        raise InputError("must be at least 1", field=Param.THREADS, value=threads)
    if repeats < 1:
        raise InputError("must be at least 1", field=Param.REPEATS, value=repeats)
    if warmup < 0:
        raise InputError("must be 0 or more", field=Param.WARMUP, value=warmup)


def _check_clock(clock: str, threads: int, device: str) -> None:
    if clock not in CLOCKS:
        raise InputError(f"must be one of {', '.join(CLOCKS)}", field=Param.CLOCK, value=clock)
    if clock == "cpu" and (threads != 1 or device != "cpu"):
        raise InputError(
            "the cpu clock (the compute thread's CPU time) needs --threads 1 on --device cpu",
            field=Param.CLOCK,
            value=clock,
        )


class _Progress:
    """Counts the steps of a run (a build, every warm-up and timed call) for the callback."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0

    def show(self, desc: str) -> None:
        if self.callback is not None:
            self.callback(desc, self.done, self.total)

    def tick(self, desc: str) -> None:
        self.done += 1
        self.show(desc)


@dataclass(frozen=True)
class _Run:
    """The settings and environment shared by every measurement of one call."""

    device: str
    threads: int
    repeats: int
    warmup: int
    seed: int
    hardware: str
    torch_version: str
    transformers_version: str
    date: str
    clock: str
    progress: _Progress

    def now(self) -> float:
        """Seconds on the run's clock."""
        return time.thread_time() if self.clock == "cpu" else time.perf_counter()


def _profile_model(spec: ModelSpec, batches: list[int], run: _Run) -> list[ProfileRecord]:
    """Build ``spec`` (timed: its load time) and measure it at every batch size."""
    import torch

    dev = run.device
    run.progress.show(f"{spec.name}: building")
    spec.preload()
    torch.manual_seed(run.seed)
    gc.collect()
    t0 = run.now()
    model = spec.build(dev)
    _sync(dev)
    load_s = run.now() - t0
    run.progress.tick(f"{spec.name}: built")
    params = (
        sum(p.numel() for p in model.parameters()) / 1e6 if hasattr(model, "parameters") else None
    )
    records = []
    for batch in batches:
        times, out_bytes = _time_calls(
            spec.make_call(model, batch, dev, run.seed), spec, batch, run
        )
        p50, p90 = (float(x) for x in np.percentile(times, [50, 90]))
        records.append(
            ProfileRecord(
                model=spec.name,
                operator=spec.operator,
                batch=batch,
                threads=run.threads,
                device=dev,
                p50_ms=round(p50, 3),
                p90_ms=round(max(p90, p50), 3),
                mean_ms=round(float(times.mean()), 3),
                min_ms=round(float(times.min()), 3),
                max_ms=round(float(times.max()), 3),
                repeats=run.repeats,
                warmup=run.warmup,
                output_kb=round(out_bytes / batch / 1024.0, 4),
                load_s=round(load_s, 3),
                params_m=None if params is None else round(params, 3),
                input_desc=spec.input_desc,
                hardware=run.hardware,
                torch_version=run.torch_version,
                transformers_version=run.transformers_version,
                date=run.date,
                clock=run.clock,
            )
        )
    del model
    gc.collect()
    return records


def _time_calls(
    call: Callable[[], Sequence[Any]], spec: ModelSpec, batch: int, run: _Run
) -> tuple[np.ndarray, int]:
    """Warm-up calls, then ``run.repeats`` timed calls (ms each, device synchronised around
    each); also the output bytes of one call."""
    dev = run.device
    desc = f"{spec.name} b={batch} t={run.threads}"
    out_bytes = 0
    for _ in range(run.warmup):
        _sync(dev)
        out_bytes = _output_bytes(call())
        _sync(dev)
        run.progress.tick(desc + " warm-up")
    times = np.empty(run.repeats)
    for i in range(run.repeats):
        _sync(dev)
        s = run.now()
        outputs = call()
        _sync(dev)
        times[i] = (run.now() - s) * 1000.0
        if i == 0:
            out_bytes = _output_bytes(outputs)
        run.progress.tick(desc)
    return times, out_bytes


# --------------------------------------------------------------------------- writing


def parse_operator_map(text: str | None) -> dict[str, tuple[str, str | None]]:
    """Parse ``model=Operator[:variant],...`` into {model: (operator, variant or None)}."""
    out: dict[str, tuple[str, str | None]] = {}
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise InputError(
                "expected model=Operator or model=Operator:variant",
                field=Param.OPERATOR_MAP,
                value=item,
            )
        model, target = (p.strip() for p in item.split("=", 1))
        op, _, variant = target.partition(":")
        if not model or not op:
            raise InputError("empty model or operator", field=Param.OPERATOR_MAP, value=item)
        spec = resolve_model(model)
        out[spec.name if spec else model] = (op, variant or None)
    return out


def provenance_of(rec: ProfileRecord) -> str:
    clock = (
        ", timed as the compute thread's CPU time (time.thread_time; the machine was shared)"
        if rec.clock == "cpu"
        else ""
    )
    kind = "random-weight model built from its transformers config"
    spec = MODELS.get(rec.model)
    if spec is not None and not spec.neural:
        kind = "numpy/scipy algorithm"
    return (
        f"measured by `jbrl profile` on {rec.hardware}, device {rec.device}, "
        f"{rec.threads} thread(s), torch {rec.torch_version}, transformers "
        f"{rec.transformers_version}, {rec.date}; {kind}; input {rec.input_desc}; "
        f"p50/p90 of {rec.repeats} timed runs after {rec.warmup} warm-up{clock}; load_s = "
        "construction with random init + move to device (no weight file read)"
    )


def records_to_profiles(
    records: Sequence[ProfileRecord],
    operator_map: Mapping[str, tuple[str, str | None]] | None = None,
    worker_type: str | None = None,
) -> list[dict[str, Any]]:
    """``profiles:`` entries (dicts valid as :class:`~jbrl.scenario.model.Profile`).

    One entry per (model, threads, device): p50/p90/output/load from the smallest batch
    measured, every batch size in ``batches``. The operator and variant default to the
    model's operator and the model name; ``operator_map`` overrides them.
    """
    operator_map = operator_map or {}
    groups: dict[tuple[str, int, str], list[ProfileRecord]] = {}
    for rec in records:
        groups.setdefault((rec.model, rec.threads, rec.device), []).append(rec)
    out: list[dict[str, Any]] = []
    for (model, _threads, device), recs in groups.items():
        recs = sorted(recs, key=lambda r: r.batch)
        first = recs[0]
        op, variant = operator_map.get(model, (first.operator, None))
        wtype = worker_type or ("gpu" if device.startswith("cuda") else "cpu")
        entry: dict[str, Any] = {
            "operator": op,
            "variant": variant or model,
            "worker_type": wtype,
            "p50_ms": first.p50_ms,
            "p90_ms": first.p90_ms,
            "output_kb": first.output_kb,
            "load_s": first.load_s,
        }
        if len(recs) > 1 or first.batch != 1:
            entry["batches"] = [
                {"batch": r.batch, "p50_ms": r.p50_ms, "p90_ms": r.p90_ms} for r in recs
            ]
        entry["provenance"] = provenance_of(first)
        out.append(entry)
    return out


def profiles_yaml(
    records: Sequence[ProfileRecord],
    operator_map: Mapping[str, tuple[str, str | None]] | None = None,
    worker_type: str | None = None,
    command: str | None = None,
) -> str:
    """The records as a YAML document with a ``profiles:`` list and a comment header."""
    import yaml

    profiles = records_to_profiles(records, operator_map, worker_type)
    head = ["# Profiles measured by `jbrl profile` (jbrl.profiling)."]
    if command:
        head.append(f"# Command: {command}")
    if records:
        r = records[0]
        head.append(
            f"# Hardware: {r.hardware}; torch {r.torch_version}; transformers "
            f"{r.transformers_version}; date {r.date}."
        )
    head.append(
        "# Latency: wall-clock ms of one forward call for the whole batch; p50/p90 over the "
        "timed runs."
    )
    head.append("# output_kb: output tensor bytes per request / 1024. load_s: random-init build.")
    head.append("# Per-batch rows (batch, p50_ms, p90_ms) are whole-batch latencies.")
    body = yaml.safe_dump({"profiles": profiles}, sort_keys=False, width=100)
    return "\n".join(head) + "\n" + body


def write_profiles(
    path: str | Path,
    records: Sequence[ProfileRecord],
    operator_map: Mapping[str, tuple[str, str | None]] | None = None,
    worker_type: str | None = None,
    command: str | None = None,
) -> Path:
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(profiles_yaml(records, operator_map, worker_type, command), encoding="utf-8")
    return p
