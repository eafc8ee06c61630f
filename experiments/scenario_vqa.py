"""The embedded scenario ``vqa`` (``profile_scenarios.py build``): JellyBean's VQA workflow on
5 edge CPUs, 3 cloud CPUs and 2 cloud T4 GPUs, every number measured or cited."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from scenario_common import (
    CPU_PROV,
    NVIDIA_RN50,
    PRICE_CPU,
    PRICE_SRC,
    PRICE_T4,
    T4_PROV,
    TRANSFER_SRC,
    edge_cloud_link,
    half_rate,
    profile_entries,
    worst_path_ms,
)

SRC_TV = (
    "torchvision model docs (pytorch.org/vision/stable/models/generated/torchvision.models."
    "{m}.html), IMAGENET1K_V1 acc@1"
)
TOP1 = {  # ImageNet-1K top-1 (%) of the torchvision IMAGENET1K_V1 weights
    "resnet18": 69.758,
    "resnet34": 73.314,
    "resnet50": 76.130,
    "resnet101": 77.374,
    "resnet152": 78.312,
}
WER_OTHER = {  # LibriSpeech test-other WER (%) from the Hugging Face model cards
    "wav2vec2-base": (
        8.6,
        "huggingface.co/facebook/wav2vec2-base-960h model card (test-other WER 8.6)",
    ),
    "wav2vec2-large": (
        3.9,
        "huggingface.co/facebook/wav2vec2-large-960h-lv60-self model card (test-other WER 3.9)",
    ),
}
IMAGE_MODELS = list(TOP1)
SPEECH_MODELS = list(WER_OTHER)
OPS = ["ExtractImageFeature", "SpeechRecognition", "VQA"]
IMAGE_KB = round(224 * 224 * 3 / 1024, 3)
AUDIO_KB = round(5 * 16000 * 2 / 1024, 3)
NETWORK_NOTE = (
    "Bandwidth and one-way latency are not listed on the link, so jbrl's documented "
    "NetworkDefaults apply (cross-tier 125 MB/s and 10 ms, same tier 1250 MB/s and 0.2 ms); "
    "they are modelling defaults, not measured or cited figures."
)
COMMENTS = {
    "provenance": "Where the numbers come from, by topic.",
    "sources": "Nominal rates: half of the MILP's largest sustainable rate (header).",
    "edges": "Message sizes: raw input sizes (stated) or measured output tensor sizes.",
    "accuracy": "Cited published accuracies (and the stated formula where derived).",
    "workers": "Prices: AWS on-demand list prices (us-east-1, Linux).",
    "links": "Edge -> cloud transfer price: AWS inter-region rate us-east-2 -> us-east-1.",
    "default_load_s": "The slowest measured model construction (jbrl profile).",
    "profiles": (
        "type cpu: measured by `jbrl profile` (1 thread, batch 1, 2, 4, 8); type gpu: derived "
        "for an NVIDIA T4 from the CPU measurements and NVIDIA's published per-batch T4 figures."
    ),
    "slo": "Latency bound and accuracy target: see provenance.slo.",
}


def vqa_accuracy(img: str, speech: str) -> float:
    """Proxy end-to-end accuracy (%) = ImageNet top-1 x (1 - LibriSpeech test-other WER)."""
    return round(TOP1[img] * (1 - WER_OTHER[speech][0] / 100.0), 3)


def accuracy_provenance(img: str, speech: str) -> str:
    wer, wsrc = WER_OTHER[speech]
    return (
        f"derived: top1({img}) x (1 - WER({speech})/100) = {TOP1[img]} x (1 - {wer}/100); "
        f"top-1 from {SRC_TV.format(m=img)}; WER from {wsrc}"
    )


def _table() -> list[dict[str, Any]]:
    return [
        {
            "variants": {"ExtractImageFeature": i, "SpeechRecognition": s},
            "accuracy": vqa_accuracy(i, s),
            "provenance": accuracy_provenance(i, s),
        }
        for i, s in itertools.product(IMAGE_MODELS, SPEECH_MODELS)
    ]


def _workers() -> list[dict[str, Any]]:
    def cpu(name: str, count: int, tier: str, note: str = "") -> dict[str, Any]:
        return {
            "name": name,
            "count": count,
            "type": "cpu",
            "tier": tier,
            "price": PRICE_CPU,
            "provenance": CPU_PROV + note,
        }

    return [
        cpu("edge-cpu", 5, "edge", " Edge site priced as the same instance."),
        cpu("cloud-cpu", 3, "cloud"),
        {
            "name": "cloud-gpu",
            "count": 2,
            "type": "gpu",
            "tier": "cloud",
            "price": PRICE_T4,
            "provenance": T4_PROV,
        },
    ]


def _edges(prof: Mapping[str, Mapping[str, dict]]) -> list[dict[str, Any]]:
    return [
        {
            "from": "ReadImage",
            "to": "ExtractImageFeature",
            "ratio": 1.0,
            "message_kb": IMAGE_KB,
            "provenance": "224x224x3 uint8 image",
        },
        {
            "from": "ReadSpeech",
            "to": "SpeechRecognition",
            "ratio": 1.0,
            "message_kb": AUDIO_KB,
            "provenance": "5 s x 16 kHz x 2 bytes",
        },
        {
            "from": "ExtractImageFeature",
            "to": "VQA",
            "ratio": 1.0,
            "message_kb": {v: prof["cpu"][v]["output_kb"] for v in IMAGE_MODELS},
            "provenance": "measured output tensor size (Cx7x7 float32) by `jbrl profile`",
        },
        {
            "from": "SpeechRecognition",
            "to": "VQA",
            "ratio": 1.0,
            "message_kb": {v: prof["cpu"][v]["output_kb"] for v in SPEECH_MODELS},
            "provenance": "measured output tensor size (CTC logits float32) by `jbrl profile`",
        },
    ]


def write_vqa(
    prof: Mapping[str, Mapping[str, dict]], cpu_prov: str, max_rate: float | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The scenario document and its header comment; ``max_rate`` (req/s per source from the
    MILP) sets the nominal rates (1.0 before it is known)."""
    min_acc = 70.0
    rate = 1.0 if max_rate is None else half_rate(max_rate)
    variants = {**{v: OPS[0] for v in IMAGE_MODELS}, **{v: OPS[1] for v in SPEECH_MODELS}}
    variants["visualbert"] = "VQA"
    profiles = profile_entries(prof, variants, {"cpu": "cpu", "gpu": "t4"})
    slo_ms = 3000.0
    cpu = prof["cpu"]
    worst = worst_path_ms(
        [
            [max(cpu[v]["p90_ms"] for v in IMAGE_MODELS)],
            [max(cpu[v]["p90_ms"] for v in SPEECH_MODELS)],
        ],
        cpu["visualbert"]["p90_ms"],
    )
    admitted = sum(a >= min_acc for a in (r["accuracy"] for r in _table()))
    doc: dict[str, Any] = {
        "name": "vqa",
        "description": (
            "Visual question answering with a spoken question, after JellyBean's VQA workflow "
            "(Wu et al., PVLDB 16(3) 2022): ReadImage -> ExtractImageFeature (ResNet-18..152) "
            "and ReadSpeech -> SpeechRecognition (wav2vec 2.0 base/large) -> VQA (VisualBERT). "
            "Edge and cloud tiers; CPU workers in both, T4 GPUs in the cloud. CPU latencies "
            "measured with `jbrl profile`, GPU latencies derived from them with published "
            "NVIDIA T4 figures, prices from the AWS on-demand rate card."
        ),
        "provenance": {
            "latency_cpu": cpu_prov + " (configs/profiles/cpu-1thread.yaml)",
            "latency_gpu": "derived, configs/profiles/gpu-t4-derived.yaml: "
            + NVIDIA_RN50.format(gpu="NVIDIA T4"),
            "accuracy": (
                "proxy end-to-end accuracy (%) = ImageNet top-1 of the image model x (1 - "
                "LibriSpeech test-other WER of the speech model); no published joint figure "
                "exists. Sources: torchvision docs (top-1), Hugging Face model cards (WER)."
            ),
            "prices": PRICE_SRC + f": c7i.large ${PRICE_CPU}/h, g4dn.xlarge ${PRICE_T4}/h",
            "network": TRANSFER_SRC + ". " + NETWORK_NOTE,
            "messages": (
                "ReadImage: 224x224x3 uint8 = 147 KB; ReadSpeech: 5 s of 16 kHz 16-bit PCM = "
                "156.25 KB (workload design choices); operator outputs: measured output tensor "
                "sizes (configs/profiles)"
            ),
            "rates": (
                f"nominal {rate} req/s per source = half of the largest sustainable rate "
                f"{max_rate or 0:.2f} req/s at min_accuracy {min_acc} (see the comment at the top)"
            ),
            "slo": (
                f"latency bound {slo_ms:.0f} ms: slowest all-CPU path p90 sum {worst:.0f} ms "
                "(the slowest image and speech models + VisualBERT + cross-tier transfers) "
                f"leaves margin; min_accuracy {min_acc} admits {admitted} of the "
                f"{len(IMAGE_MODELS) * len(SPEECH_MODELS)} combinations"
            ),
            "load_s": "construction of the random-weight model on this CPU (configs/profiles)",
        },
        "tiers": ["edge", "cloud"],
        "sources": [
            {
                "name": name,
                "rate": rate,
                "tier": "edge",
                "provenance": "half the max sustainable rate (computed, see header)",
            }
            for name in ("ReadImage", "ReadSpeech")
        ],
        "operators": [
            {
                "name": OPS[0],
                "variants": IMAGE_MODELS,
                "description": "ResNet v1.5 backbone, 7x7 grid features",
            },
            {
                "name": OPS[1],
                "variants": SPEECH_MODELS,
                "description": "wav2vec 2.0 + CTC on 5 s of audio",
            },
            {
                "name": "VQA",
                "variants": ["visualbert"],
                "description": "VisualBERT (BERT-base) over question tokens and image grid",
            },
        ],
        "edges": _edges(prof),
        "accuracy": {
            "metric": "proxy accuracy % = ImageNet top-1 x (1 - LibriSpeech test-other WER)",
            "operators": OPS[:2],
            "table": _table(),
        },
        "workers": _workers(),
        "links": [edge_cloud_link()],
        "backward_traffic": "forbidden",
        "comm_cost_scale": 1.0,
        "default_load_s": max(p["load_s"] for p in profiles),
        "profiles": profiles,
        "slo": {"min_accuracy": min_acc, "latency_ms": slo_ms, "attainment": 0.99},
    }
    header = [
        "# Embedded scenario 'vqa' - generated by experiments/profile_scenarios.py build.",
        "# Every number carries its provenance (the provenance fields and map below).",
        "#",
        "# Nominal rate: both sources run at the same rate r (every operator's demand is r).",
        "# The MILP (jbrl.planning.milp.max_rate: one operator per worker, capacity 1000/p90,",
        f"# forbidden backward traffic, bandwidth) sustains at most r = {max_rate or 0:.2f} req/s",
        f"# at accuracy >= {min_acc}; nominal = {rate} req/s per source, half of it rounded down",
        "# to 0.1, so the infrastructure sustains about twice the nominal load.",
        "# default_load_s: the slowest measured model construction (used where no profile says).",
    ]
    return doc, header
