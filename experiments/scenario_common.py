"""Shared by the scenario builders (``profile_scenarios.py build``): cited figures, the
derived GPU profiles, YAML output with comments, and the MILP's largest sustainable rate.

Rules: every number is measured here (``configs/profiles/cpu-1thread.yaml``) or a cited public
figure; a derived number states its formula. Nothing is copied from JellyBean's data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "configs" / "profiles"
SCENARIOS = ROOT / "configs" / "scenarios"
CPU_FILE = "cpu-1thread.yaml"

# ----------------------------------------------------------------------------- prices

PRICE_SRC = "AWS EC2 On-Demand pricing, Linux, us-east-1 (aws.amazon.com/ec2/pricing/on-demand/)"
PRICE_CPU = 0.08925  # c7i.large: 2 vCPU = 1 physical core, 4th-gen Xeon; half of c7i.xlarge 0.1785
PRICE_T4 = 0.526  # g4dn.xlarge: 1x NVIDIA T4 16 GB, 4 vCPU
PRICE_V100 = 3.06  # p3.2xlarge: 1x NVIDIA V100 16 GB, 8 vCPU
TRANSFER_SRC = (
    "AWS data transfer between us-east-2 and us-east-1, $0.01/GB (AWS EC2 pricing, data "
    "transfer; also the aws:us-east-2 -> aws:us-east-1 row of Skyplane's cost profile, "
    "huggingface.co/datasets/f20180301/adrs-data cloudcast/profiles/cost.csv)"
)
TRANSFER_PER_GB = 0.01
INGRESS_SRC = (
    "AWS EC2 On-Demand pricing, data transfer: 'Data Transfer IN To Amazon EC2 From Internet', "
    "$0.00 per GB (aws.amazon.com/ec2/pricing/on-demand/)"
)
CPU_PROV = (
    f"price: c7i.large (2 vCPU = 1 physical core, Intel Xeon 4th gen) ${PRICE_CPU}/h, "
    f"{PRICE_SRC}; c7i.xlarge is listed at $0.1785/h and sizes scale linearly. Profiles for "
    "CPU types are 1-thread measurements on a 5th-gen Xeon core (configs/profiles)."
)
T4_PROV = (
    f"price: g4dn.xlarge (1x NVIDIA T4, 4 vCPU) ${PRICE_T4}/h, {PRICE_SRC}. Profiles: "
    "configs/profiles/gpu-t4-derived.yaml."
)
V100_PROV = (
    f"price: p3.2xlarge (1x NVIDIA V100 16 GB, 8 vCPU) ${PRICE_V100}/h, {PRICE_SRC}. "
    "Profiles: configs/profiles/gpu-v100-derived.yaml."
)

# ----------------------------------------------------------------------------- GPU figures

NVIDIA_RN50 = (
    "NVIDIA DeepLearningExamples PyTorch/Classification/ConvNets/resnet50v1.5/README.md, "
    "'Inference performance: {gpu}', FP32 Inference Latency table (ResNet-50 v1.5, 224x224)"
)
GPU_TABLES: dict[str, dict[str, Any]] = {
    # batch: (latency avg ms, latency 95% ms), and the table's largest throughput (img/s)
    "t4": {
        "name": "NVIDIA T4",
        "rows": {1: (10.7, 12.82), 2: (11.26, 13.79), 4: (12.73, 13.89), 8: (22.41, 22.57)},
        "max_img_s": 428.0,
        "max_at": 64,
    },
    "v100": {
        "name": "NVIDIA DGX-1 (1x V100 16GB)",
        "rows": {1: (10.37, 10.81), 2: (10.24, 11.18), 4: (10.46, 11.01), 8: (11.5, 12.36)},
        "max_img_s": 1261.0,
        "max_at": 256,
    },
}
GPU_REFERENCE_MODEL = "resnet50"


def load_profiles(name: str = CPU_FILE) -> dict[str, dict[str, Any]]:
    """The profiles of ``configs/profiles/<name>`` (or of the file ``name``) by variant (=
    model) name."""
    path = PROFILES / name if not Path(name).is_absolute() else Path(name)
    doc = yaml.safe_load(path.read_text("utf-8"))
    return {p["variant"]: p for p in doc["profiles"]}


def _batch_p50(p: Mapping[str, Any]) -> dict[int, float]:
    rows = p.get("batches") or [{"batch": 1, "p50_ms": p["p50_ms"]}]
    return {int(r["batch"]): float(r["p50_ms"]) for r in rows}


def gpu_formula(gpu: str) -> str:
    """The derivation of a GPU profile from the CPU measurements, in words."""
    t = GPU_TABLES[gpu]
    c = 1000.0 / t["max_img_s"]
    return (
        f"L_avg(b), L_95(b) are the published {t['name']} ResNet-50 batch-b latencies (avg, "
        "95th percentile), made non-decreasing in b (a batch can be padded to a larger one, so "
        "L(b) = min over b' >= b of the published L(b')); k(m, b) = cpu_p50(m, b) / "
        "cpu_p50(resnet50, b) is the measured CPU ratio of model m to ResNet-50 at batch b "
        "(configs/profiles/cpu-1thread.yaml); c = 1000 / "
        f"{t['max_img_s']:g} = {c:.3f} ms is the per-image compute at the table's peak "
        f"throughput (batch {t['max_at']}). p50(m, b) = L_avg(b) + c x b x (k - 1) for k >= 1 "
        "(a heavier model adds its extra compute at the GPU's per-image rate) and L_avg(b) x k "
        "for k < 1 (a lighter model scales the whole latency); p90(m, b) = p50(m, b) x L_95(b) "
        "/ L_avg(b); both then made non-decreasing in b the same way. For ResNet-50 itself it "
        "returns the published figure. A coarse scaling: transformers and detectors are scaled "
        "by the same CNN figure."
    )


def _envelope(values: Mapping[int, float]) -> dict[int, float]:
    """Non-decreasing in the batch size: a batch of b can be padded to any larger batch, so
    its latency is at most the smallest latency of any batch size >= b."""
    out, low = {}, math.inf
    for b in sorted(values, reverse=True):
        low = min(low, values[b])
        out[b] = low
    return dict(sorted(out.items()))


def gpu_profile(gpu: str, name: str, p: Mapping[str, Any], ref: Mapping[str, Any]) -> dict:
    """One derived GPU profile (every measured batch size) of model ``name``."""
    t = GPU_TABLES[gpu]
    c = 1000.0 / t["max_img_s"]
    cpu, cpu_ref = _batch_p50(p), _batch_p50(ref)
    batches = [b for b in t["rows"] if b in cpu and b in cpu_ref]
    avg = _envelope({b: t["rows"][b][0] for b in batches})
    p95 = _envelope({b: t["rows"][b][1] for b in batches})
    k = {b: cpu[b] / cpu_ref[b] for b in batches}
    p50 = _envelope(
        {b: avg[b] + c * b * (k[b] - 1.0) if k[b] >= 1.0 else avg[b] * k[b] for b in batches}
    )
    p90 = _envelope({b: max(p50[b] * p95[b] / avg[b], p50[b]) for b in batches})
    rows = [{"batch": b, "p50_ms": round(p50[b], 2), "p90_ms": round(p90[b], 2)} for b in batches]
    rule = (
        f"{avg[1]:g} + {c:.3f} x 1 x ({k[1]:.3f} - 1)"
        if k[1] >= 1.0
        else f"{avg[1]:g} x {k[1]:.3f}"
    )
    return {
        "operator": p["operator"],
        "variant": name,
        "worker_type": gpu,
        "p50_ms": rows[0]["p50_ms"],
        "p90_ms": rows[0]["p90_ms"],
        "output_kb": p["output_kb"],
        "load_s": p["load_s"],
        "batches": rows,
        "provenance": (
            f"derived, no GPU here: batch 1 p50 = {rule} ms with k = cpu_p50({name}) / "
            f"cpu_p50(resnet50) = {cpu[1]:.2f} / {cpu_ref[1]:.2f} (before the non-decreasing "
            "envelope); every batch size by the formula in the file header, scaling "
            f"{NVIDIA_RN50.format(gpu=t['name'])}. output_kb, load_s: the CPU measurement "
            "(same tensors; GPU copy time not measured)."
        ),
    }


def gpu_profiles(gpu: str, cpu: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """Derived profiles of every neural model measured on the CPU, for ``gpu``."""
    ref = cpu[GPU_REFERENCE_MODEL]
    return {name: gpu_profile(gpu, name, p, ref) for name, p in cpu.items() if name != "hungarian"}


def write_gpu_file(gpu: str, profiles: Mapping[str, dict]) -> Path:
    t = GPU_TABLES[gpu]
    head = [
        f"# {t['name']} profiles DERIVED from the CPU measurements (no GPU was used).",
        f"# Published figures scaled: {NVIDIA_RN50.format(gpu=t['name'])}:",
        *(f"#   batch {b}: latency avg {a} ms, 95% {q} ms" for b, (a, q) in t["rows"].items()),
        f"#   peak throughput {t['max_img_s']:g} img/s at batch {t['max_at']}.",
        *_wrap("# Formula: " + gpu_formula(gpu)),
        "# Written by experiments/profile_scenarios.py build.",
    ]
    path = PROFILES / f"gpu-{gpu}-derived.yaml"
    path.write_text("\n".join(head) + "\n" + dump({"profiles": list(profiles.values())}))
    return path


def _wrap(text: str, width: int = 98) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = "#  " + w
        else:
            cur = f"{cur} {w}" if cur else w
    return [*lines, cur]


# ----------------------------------------------------------------------------- YAML


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared objects out in full (no ``&id001`` anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, width=100, allow_unicode=True)


def dump_commented(doc: Mapping[str, Any], comments: Mapping[str, str]) -> str:
    """YAML of ``doc`` with a comment line above the commented top-level keys."""
    parts = []
    for key, value in doc.items():
        if key in comments:
            parts.append(f"# {comments[key]}")
        parts.append(dump({key: value}).rstrip("\n"))
    return "\n".join(parts) + "\n"


def profile_entries(
    prof: Mapping[str, Mapping[str, dict]], variants: Mapping[str, str], types: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Profiles of {variant: operator} for every {worker type: profile source} (``cpu``,
    ``t4``, ``v100``), renamed to the scenario's operator and worker type."""
    out = []
    for wtype, source in types.items():
        for var, op in variants.items():
            if var not in prof[source]:
                continue
            p = dict(prof[source][var])
            p["operator"] = op
            p["worker_type"] = wtype
            out.append(p)
    return out


# ----------------------------------------------------------------------------- rates


def milp_max_scale(doc: Mapping[str, Any]) -> float | None:
    """Largest uniform scale of the nominal rates the MILP sustains on capacity (forbidden
    backward traffic and bandwidth included, no latency model: the nominal rates are a share of
    what the infrastructure can carry), None if unavailable."""
    try:
        from jbrl.planning.milp import max_rate
    except ImportError:
        return None
    from jbrl.scenario import scenario_from_dict

    sc = scenario_from_dict(dict(doc), "<build>")
    result = max_rate(sc, latency_model="none")
    if result.status not in ("optimal", "feasible"):
        return None
    return float(result.scale)


def half_rate(max_rate: float) -> float:
    """Nominal rate: half the largest sustainable rate, rounded down to 0.1."""
    return math.floor(max_rate / 2.0 * 10) / 10


def worst_path_ms(branches: list[list[float]], sink_ms: float, hop_ms: float = 10.0) -> float:
    """Slowest source-to-sink p90 sum with one cross-tier hop per edge."""
    return max(sum(b) + hop_ms * len(b) for b in branches) + sink_ms + hop_ms


def edge_cloud_link() -> dict[str, object]:
    """The one edge -> cloud link of the two-tier scenarios (vqa, vehicle): cited transfer
    price, jbrl's network defaults for bandwidth and latency."""
    return {
        "from": "edge",
        "to": "cloud",
        "cost_per_gb": TRANSFER_PER_GB,
        "provenance": "edge site modelled as AWS us-east-2, cloud as us-east-1; "
        + TRANSFER_SRC
        + ". Bandwidth/latency: jbrl NetworkDefaults (not cited figures).",
    }
