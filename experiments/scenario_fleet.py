"""The embedded scenario ``fleet`` (``profile_scenarios.py build``): the VQA workflow at three
sites, on three tiers (on-site devices, two metro edge sites, a cloud region with pools).

Each site is a source with its own nominal rate and its own copy of the workflow (operators
``ExtractImageFeature-a``, ``SpeechRecognition-a``, ``VQA-a`` for site a, ...): a request of a
site carries its image and its spoken question. Where an operator may run is set by the
profiles: a site's devices hold only that site's operators, a metro edge site those of the
sites it serves (east: a and b; west: c), the cloud pools every site's. End-to-end accuracy of
a combination = the lowest over the sites of vqa's proxy (every site's requests must meet the
target).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from scenario_common import (
    CPU_PROV,
    INGRESS_SRC,
    NVIDIA_RN50,
    PRICE_CPU,
    PRICE_SRC,
    PRICE_T4,
    PRICE_V100,
    T4_PROV,
    TRANSFER_PER_GB,
    TRANSFER_SRC,
    V100_PROV,
)
from scenario_vqa import AUDIO_KB, IMAGE_KB, WER_OTHER, vqa_accuracy

SITES = {"a": 1.0, "b": 0.6, "c": 0.35}
"""Site -> relative size (its nominal rate / site a's), a design choice."""
METROS = {"east": ("a", "b"), "west": ("c",)}
IMAGE_MODELS = ["resnet34", "resnet50", "resnet101"]
SPEECH_MODELS = list(WER_OTHER)
MIN_ACCURACY = 70.0
DEVICES = {"a": 4, "b": 3, "c": 2}
METRO_WORKERS = {"east": {"cpu": 6, "t4": 1}, "west": {"cpu": 4, "t4": 1}}
CLOUD_POOLS = {"cpu": 34, "t4": 8, "v100": 4}
NOMINAL_SHARE = 1.0 / 3.0
"""Nominal load = this share of the largest the fleet sustains: the cloud pools are capacity one
may rent, so the nominal load needs about a third of the fleet (vqa and vehicle: a half); the
MILP also stays quick (< 1 s) up to about 2x nominal, which the demo's traces reach."""
PRICES = {"cpu": PRICE_CPU, "t4": PRICE_T4, "v100": PRICE_V100}
WORKER_PROV = {"cpu": CPU_PROV, "t4": T4_PROV, "v100": V100_PROV}
PHYSICS = (
    "one-way latency = distance x 4.9 us/km (light in optical fibre, refractive index about "
    "1.47) + 1 ms for access and switching; distances are design choices of the scenario"
)
LINKS = [
    # from, to, $/GB, MB/s, ms, provenance
    (
        "site",
        "metro",
        0.0,
        125.0,
        1.5,
        f"metro edge sites modelled in AWS, so the site's upload is data transfer in: "
        f"{INGRESS_SRC}. Bandwidth: the site's 1 Gbit/s uplink (125 MB/s, a design choice). "
        f"Latency: a metro site within 100 km: {PHYSICS}.",
    ),
    (
        "site",
        "cloud",
        0.0,
        125.0,
        5.0,
        f"upload to the cloud region is data transfer in: {INGRESS_SRC}. Bandwidth: the "
        f"site's 1 Gbit/s uplink. Latency: a region within 800 km: {PHYSICS}.",
    ),
    (
        "metro",
        "cloud",
        TRANSFER_PER_GB,
        1250.0,
        4.0,
        f"metro edge modelled as AWS us-east-2, the cloud region as us-east-1: {TRANSFER_SRC}. "
        f"Bandwidth: a 10 Gbit/s link (1250 MB/s, a design choice). Latency: 600 km: {PHYSICS}.",
    ),
]
COMMENTS = {
    "provenance": "Where the numbers come from, by topic.",
    "sources": "Nominal rates: a third of the MILP's largest sustainable scale x site sizes.",
    "edges": "Message sizes: raw input sizes (stated) or measured output tensor sizes.",
    "accuracy": "Lowest over the sites of vqa's cited proxy accuracy.",
    "workers": "Prices: AWS on-demand list prices (us-east-1, Linux); pools by count.",
    "links": "Transfer prices cited per link; bandwidth and latency stated per link.",
    "default_load_s": "The slowest measured model construction (jbrl profile).",
    "profiles": (
        "CPU types: measured by `jbrl profile` (1 thread, batch 1, 2, 4, 8); t4 / v100 types: "
        "derived from the CPU measurements and NVIDIA's published per-batch figures."
    ),
    "slo": "Latency bound and accuracy target: see provenance.slo.",
    "demo": "How `jbrl demo` runs the policies here unless told (--sim, --interval).",
}
DEMO_REASON = (
    "fluid simulator, a decision every 300 s, the trace's first half hour: an SLO-aware MILP "
    "re-plan of the fleet takes 3-8 CPU s (milp-hysteresis makes several per decision, and an "
    "SLO-aware max rate of 13-22 CPU s) and the request-level DES of the 2-hour trace about 50 "
    "CPU s per policy; the whole trace at 60 s in the DES takes over 10 CPU minutes (--sim des "
    "--interval 60 --duration 7200)"
)


def ops(site: str) -> list[str]:
    return [f"ExtractImageFeature-{site}", f"SpeechRecognition-{site}", f"VQA-{site}"]


def _table() -> list[dict[str, Any]]:
    per_site = list(itertools.product(IMAGE_MODELS, SPEECH_MODELS))
    rows = []
    for combo in itertools.product(per_site, repeat=len(SITES)):
        accs = {s: vqa_accuracy(i, sp) for s, (i, sp) in zip(SITES, combo, strict=True)}
        low = min(accs, key=lambda s: accs[s])
        variants: dict[str, str] = {}
        for s, (i, sp) in zip(SITES, combo, strict=True):
            variants[ops(s)[0]] = i
            variants[ops(s)[1]] = sp
        rows.append(
            {
                "variants": variants,
                "accuracy": accs[low],
                "provenance": (
                    f"derived: lowest site accuracy, site {low}: "
                    + ", ".join(f"{s} {a}" for s, a in accs.items())
                    + " (each top1 x (1 - WER/100), as vqa; see provenance.accuracy)"
                ),
            }
        )
    return rows


def _pool(name: str, count: int, wtype: str, tier: str, hw: str, note: str) -> dict[str, Any]:
    return {
        "name": name,
        "count": count,
        "type": wtype,
        "tier": tier,
        "price": PRICES[hw],
        "provenance": WORKER_PROV[hw] + note,
    }


def _workers() -> list[dict[str, Any]]:
    dev = " On-site device: one core priced as the equivalent on-demand instance (as vqa's edge)."
    metro = " Metro edge site: priced at the same on-demand rate as the cloud region."
    out = [
        _pool(f"site-{s}-cpu", n, f"site-{s}-cpu", "site", "cpu", dev) for s, n in DEVICES.items()
    ]
    for m, hw in METRO_WORKERS.items():
        out += [
            _pool(f"metro-{m}-{h}", n, f"metro-{m}-{h}", "metro", h, metro) for h, n in hw.items()
        ]
    out += [
        _pool(f"cloud-{h}", n, f"cloud-{h}", "cloud", h, " Cloud pool.")
        for h, n in CLOUD_POOLS.items()
    ]
    return out


def _placements() -> dict[str, tuple[str, list[str]]]:
    """Worker type -> (profile source cpu/t4/v100, the sites whose operators it may run)."""
    out: dict[str, tuple[str, list[str]]] = {f"site-{s}-cpu": ("cpu", [s]) for s in DEVICES}
    for m, hw in METRO_WORKERS.items():
        out.update({f"metro-{m}-{h}": (h, list(METROS[m])) for h in hw})
    out.update({f"cloud-{h}": (h, list(SITES)) for h in CLOUD_POOLS})
    return out


def _profiles(prof: Mapping[str, Mapping[str, dict]]) -> list[dict[str, Any]]:
    models = [*IMAGE_MODELS, *SPEECH_MODELS, "visualbert"]
    out = []
    for wtype, (source, sites) in _placements().items():
        for s in sites:
            for model, op in zip(
                models, [ops(s)[0]] * 3 + [ops(s)[1]] * 2 + [ops(s)[2]], strict=True
            ):
                p = dict(prof[source][model])
                out.append(
                    {
                        **{k: v for k, v in p.items() if k != "provenance"},
                        "operator": op,
                        "worker_type": wtype,
                        "provenance": _short_provenance(source, model, p["provenance"]),
                    }
                )
    return out


def _short_provenance(source: str, model: str, full: str) -> str:
    if source == "cpu":
        runs = full.split("; p50/p90 of ")[1].split(";")[0] if "; p50/p90 of " in full else ""
        return f"measured by `jbrl profile`: configs/profiles/cpu-1thread.yaml, {model} ({runs})"
    return f"derived: configs/profiles/gpu-{source}-derived.yaml, {model} (formula in its header)"


def _edges(prof: Mapping[str, Mapping[str, dict]]) -> list[dict[str, Any]]:
    cpu = prof["cpu"]
    out = []
    for s in SITES:
        eif, sr, vqa = ops(s)
        out += [
            {
                "from": f"site-{s}",
                "to": eif,
                "ratio": 1.0,
                "message_kb": IMAGE_KB,
                "provenance": "224x224x3 uint8 image (as vqa)",
            },
            {
                "from": f"site-{s}",
                "to": sr,
                "ratio": 1.0,
                "message_kb": AUDIO_KB,
                "provenance": "5 s x 16 kHz x 2 bytes of the spoken question (as vqa)",
            },
            {
                "from": eif,
                "to": vqa,
                "ratio": 1.0,
                "message_kb": {v: cpu[v]["output_kb"] for v in IMAGE_MODELS},
                "provenance": "measured output tensor size (Cx7x7 float32) by `jbrl profile`",
            },
            {
                "from": sr,
                "to": vqa,
                "ratio": 1.0,
                "message_kb": {v: cpu[v]["output_kb"] for v in SPEECH_MODELS},
                "provenance": "measured output tensor size (CTC logits float32) by `jbrl profile`",
            },
        ]
    return out


def _provenance(cpu_prov: str, scale: float | None, rates: Mapping[str, float]) -> dict[str, str]:
    return {
        "latency_cpu": cpu_prov + " (configs/profiles/cpu-1thread.yaml)",
        "latency_gpu": "derived, configs/profiles/gpu-t4-derived.yaml and gpu-v100-derived.yaml: "
        + NVIDIA_RN50.format(gpu="NVIDIA T4 / NVIDIA DGX-1 (1x V100 16GB)"),
        "accuracy": (
            "lowest over the sites of vqa's proxy accuracy (ImageNet top-1 of the image model x "
            "(1 - LibriSpeech test-other WER of the speech model), torchvision docs and Hugging "
            "Face model cards): every site's requests must meet the target. Image models "
            f"{', '.join(IMAGE_MODELS)} only (resnet18 reaches at most 67.0 < {MIN_ACCURACY}; "
            "resnet152 left out to keep the table, a product over three sites, at 216 rows)."
        ),
        "prices": PRICE_SRC + f": c7i.large ${PRICE_CPU}/h, g4dn.xlarge (T4) ${PRICE_T4}/h, "
        f"p3.2xlarge (V100) ${PRICE_V100}/h",
        "network": "per link (links[].provenance): transfer prices cited from the AWS rate card, "
        "bandwidth and latency stated with their derivation",
        "messages": "as vqa: 147 KB image + 156.25 KB audio per request; measured outputs",
        "rates": (
            f"site sizes {', '.join(f'{s} {w:g}' for s, w in SITES.items())} (design choice); the "
            f"MILP sustains at most {scale or 0:.2f} x these sizes at min_accuracy {MIN_ACCURACY} "
            "(jbrl.planning.milp.max_rate); nominal = a third of it (the cloud pools are capacity "
            "one may rent, sized so that the nominal load needs about a third of the fleet), "
            "rounded down to 0.1: "
            + ", ".join(f"site-{s} {r}" for s, r in rates.items())
            + " req/s"
        ),
        "slo": (f"latency bound 3000 ms and min_accuracy {MIN_ACCURACY}, as vqa (same workflow)"),
        "tiers": "site: on-site devices (one core each); metro: two metro edge sites (east serves "
        "sites a and b, west serves c); cloud: one region with pools of CPU, T4 and V100 workers",
        "load_s": "construction of the random-weight model on this CPU (configs/profiles)",
    }


def write_fleet(
    prof: Mapping[str, Mapping[str, dict]], cpu_prov: str, max_scale: float | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The scenario document and its header; ``max_scale`` (the MILP's largest multiple of the
    site sizes) sets the nominal rates (the sizes themselves before it is known)."""
    if max_scale is None:
        rates = dict(SITES)  # pass 1: the sizes, so that the MILP's scale multiplies them
    else:
        rates = {s: math.floor(max_scale * w * NOMINAL_SHARE * 10) / 10 for s, w in SITES.items()}
    profiles = _profiles(prof)
    doc: dict[str, Any] = {
        "name": "fleet",
        "description": (
            "The VQA workflow at three sites (a, b, c: separate sources with their own nominal "
            "rates and their own copy of the workflow) on three tiers: each site's on-site "
            "devices, two metro edge sites (CPUs and T4 GPUs), and a cloud region with pools "
            "of CPU, T4 and V100 workers."
        ),
        "provenance": _provenance(cpu_prov, max_scale, rates),
        "tiers": ["site", "metro", "cloud"],
        "sources": [
            {
                "name": f"site-{s}",
                "rate": r,
                "tier": "site",
                "provenance": f"site size {SITES[s]:g} x half the MILP's largest scale (header)",
            }
            for s, r in rates.items()
        ],
        "operators": [
            op
            for s in SITES
            for op in (
                {
                    "name": ops(s)[0],
                    "variants": IMAGE_MODELS,
                    "description": f"site {s}: ResNet features",
                },
                {
                    "name": ops(s)[1],
                    "variants": SPEECH_MODELS,
                    "description": f"site {s}: wav2vec 2.0",
                },
                {
                    "name": ops(s)[2],
                    "variants": ["visualbert"],
                    "description": f"site {s}: VisualBERT",
                },
            )
        ],
        "edges": _edges(prof),
        "accuracy": {
            "metric": "lowest site proxy accuracy % (top-1 x (1 - WER))",
            "operators": [o for s in SITES for o in ops(s)[:2]],
            "table": _table(),
        },
        "workers": _workers(),
        "links": [
            {
                "from": a,
                "to": b,
                "cost_per_gb": c,
                "bandwidth_mb_s": bw,
                "latency_ms": lat,
                "provenance": why,
            }
            for a, b, c, bw, lat, why in LINKS
        ],
        "backward_traffic": "forbidden",
        "comm_cost_scale": 1.0,
        "default_load_s": max(p["load_s"] for p in profiles),
        "profiles": profiles,
        "slo": {"min_accuracy": MIN_ACCURACY, "latency_ms": 3000.0, "attainment": 0.99},
        "demo": {"sim": "fluid", "interval_s": 300.0, "duration_s": 1800.0, "reason": DEMO_REASON},
    }
    header = [
        "# Embedded scenario 'fleet' - generated by experiments/profile_scenarios.py build.",
        "# Every number carries its provenance (the provenance fields and map below).",
        "#",
        f"# {sum(DEVICES.values())} on-site devices, "
        f"{sum(sum(h.values()) for h in METRO_WORKERS.values())} metro edge workers, cloud pools "
        + ", ".join(f"{h} x{n}" for h, n in CLOUD_POOLS.items())
        + f"; {len(profiles)} profiles.",
        "# Nominal rates: site sizes x a third of the largest scale the MILP sustains "
        f"({max_scale or 0:.2f}), rounded down to 0.1.",
    ]
    return doc, header
