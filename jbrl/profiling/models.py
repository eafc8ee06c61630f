"""Registry of the model variants ``jbrl profile`` can measure.

Every neural model is built through ``transformers`` from a configuration with **random
weights**: nothing is downloaded (no model hub access is needed or attempted), and the
architecture matches the published checkpoint named in :attr:`ModelSpec.reference`, so the
measured latency is the latency of the real model (weights do not change the arithmetic).
``tests/test_profiling.py`` checks the parameter counts against the published ones.

Input sizes are design choices of the embedded scenarios and are stated per model:

* ``resnet18`` .. ``resnet152`` (ExtractImageFeature): ResNet v1.5 backbone without the
  classifier on a 224x224 RGB image; the output is the final 7x7 grid of features
  (C x 7 x 7, C = 512 for ResNet-18/34, 2048 for ResNet-50/101/152), the visual tokens of the
  VQA stage.
* ``wav2vec2-base`` / ``wav2vec2-large`` (SpeechRecognition): ``Wav2Vec2ForCTC`` shaped like
  facebook/wav2vec2-base-960h and facebook/wav2vec2-large-960h-lv60-self (24 layers, hidden
  1024) on 5 s of 16 kHz audio; the output is the CTC logits (frames x 32).
* ``visualbert-vqa`` (VQA): VisualBERT (Li et al. 2019, arXiv:1908.03557), a BERT-base
  encoder (12 layers, hidden 768) over 20 question tokens plus 49 visual tokens (the ResNet
  7x7 grid, 2048-d), with the 3,129-answer VQA v2 classifier head; output: answer logits.
* ``detr-resnet50`` / ``yolos-tiny`` (Detector): DETR with a ResNet-50 backbone (Carion et al.
  2020) at 750x1333 (a 1280x720 camera frame under DETR's resize rule, shortest side 800 capped
  at 1333) and YOLOS-Ti (Fang et al. 2021) at its evaluation size 512 (512x910 for 720p);
  output: 100 detection slots of 92 class logits + 4 box coordinates.
* ``reid-resnet50`` (ReId): ResNet-50 backbone on a 256x128 vehicle crop, output the pooled
  2048-d embedding (the common re-identification baseline input size).
* ``tracker-hungarian`` (Tracker): not a neural network: one frame of DeepSORT-style
  association in numpy/scipy: cosine distance of 2048-d embeddings plus (1 - IoU) of boxes
  between N detections and N live tracks, Hungarian assignment with
  ``scipy.optimize.linear_sum_assignment``, track update. Output: one int64 track id per
  detection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Detections per frame used by the tracker workload: CityFlow's 8.2 objects per frame
# (FastTracker benchmark table, huggingface.co/datasets/Hamidreza-Hashemp/FastTracker-Benchmark),
# rounded down to whole detections.
TRACKER_DETECTIONS = 8
EMBEDDING_DIM = 2048


@dataclass(frozen=True)
class ModelSpec:
    """How to build one model variant and feed it a batch.

    ``build(device)`` returns the ready model (its duration is the measured load time);
    ``make_call(model, batch, device, seed)`` returns a zero-argument function that runs one
    batch and returns the output tensors/arrays.
    """

    name: str
    operator: str
    description: str
    input_desc: str
    build: Callable[[str], Any]
    make_call: Callable[[Any, int, str, int], Callable[[], list[Any]]]
    reference: str = ""
    params_published_m: float | None = None
    neural: bool = True
    aliases: tuple[str, ...] = field(default_factory=tuple)
    imports: tuple[str, ...] = field(default_factory=tuple)

    def preload(self) -> None:
        """Import the classes the builder needs, so import time is not counted as load time."""
        if self.imports:
            import transformers

            for name in self.imports:
                getattr(transformers, name)


# --------------------------------------------------------------------------- builders


def _resnet_config(depth: int) -> Any:
    from transformers import ResNetConfig

    layout = {
        18: ([2, 2, 2, 2], "basic"),
        34: ([3, 4, 6, 3], "basic"),
        50: ([3, 4, 6, 3], "bottleneck"),
        101: ([3, 4, 23, 3], "bottleneck"),
        152: ([3, 8, 36, 3], "bottleneck"),
    }
    depths, layer_type = layout[depth]
    hidden = [64, 128, 256, 512] if layer_type == "basic" else [256, 512, 1024, 2048]
    return ResNetConfig(
        depths=depths, layer_type=layer_type, hidden_sizes=hidden, embedding_size=64
    )


def _torch_build(factory: Callable[[], Any]) -> Callable[[str], Any]:
    def build(device: str) -> Any:
        model = factory()
        model.eval()
        return model.to(device)

    return build


def _torch_call(
    make_inputs: Callable[[int, Any], dict[str, Any]],
    select: Callable[[Any], list[Any]],
) -> Callable[[Any, int, str, int], Callable[[], list[Any]]]:
    def make_call(model: Any, batch: int, device: str, seed: int) -> Callable[[], list[Any]]:
        import torch

        gen = torch.Generator().manual_seed(seed)
        inputs = {k: v.to(device) for k, v in make_inputs(batch, gen).items()}

        def call() -> list[Any]:
            with torch.inference_mode():
                out = model(**inputs)
            return select(out)

        return call

    return make_call


def _image(h: int, w: int) -> Callable[[int, Any], dict[str, Any]]:
    def make(batch: int, gen: Any) -> dict[str, Any]:
        import torch

        return {"pixel_values": torch.randn(batch, 3, h, w, generator=gen)}

    return make


def _audio(seconds: float, rate: int = 16000) -> Callable[[int, Any], dict[str, Any]]:
    def make(batch: int, gen: Any) -> dict[str, Any]:
        import torch

        return {"input_values": torch.randn(batch, int(seconds * rate), generator=gen)}

    return make


VQA_QUESTION_TOKENS = 20
VQA_VISUAL_TOKENS = 49
VQA_ANSWERS = 3129


def _vqa_inputs(batch: int, gen: Any) -> dict[str, Any]:
    import torch

    t, v = VQA_QUESTION_TOKENS, VQA_VISUAL_TOKENS
    return {
        "input_ids": torch.randint(1000, 30000, (batch, t), generator=gen),
        "attention_mask": torch.ones(batch, t, dtype=torch.long),
        "token_type_ids": torch.zeros(batch, t, dtype=torch.long),
        "visual_embeds": torch.randn(batch, v, EMBEDDING_DIM, generator=gen),
        "visual_attention_mask": torch.ones(batch, v, dtype=torch.long),
        "visual_token_type_ids": torch.ones(batch, v, dtype=torch.long),
    }


def _resnet(depth: int) -> Any:
    from transformers import ResNetModel

    return ResNetModel(_resnet_config(depth))


def _wav2vec2(large: bool) -> Any:
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    if large:  # facebook/wav2vec2-large-960h-lv60-self
        cfg = Wav2Vec2Config(
            vocab_size=32,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=True,
        )
    else:  # facebook/wav2vec2-base-960h
        cfg = Wav2Vec2Config(vocab_size=32)
    return Wav2Vec2ForCTC(cfg)


def _visualbert() -> Any:
    from transformers import VisualBertConfig, VisualBertForQuestionAnswering

    cfg = VisualBertConfig(visual_embedding_dim=EMBEDDING_DIM, **_labels(VQA_ANSWERS))
    return VisualBertForQuestionAnswering(cfg)


def _detr() -> Any:
    from transformers import DetrConfig, DetrForObjectDetection

    # transformers 4.x builds a timm backbone with pretrained weights unless told not to; 5.x
    # has no such options (and ignores them), so they go through the generic keywords.
    no_download: dict[str, Any] = {"use_timm_backbone": False, "use_pretrained_backbone": False}
    cfg = DetrConfig(**no_download, **_labels(91))
    return DetrForObjectDetection(cfg)


def _yolos_tiny() -> Any:
    from transformers import YolosConfig, YolosForObjectDetection

    cfg = YolosConfig(  # hustvl/yolos-tiny
        hidden_size=192,
        num_hidden_layers=12,
        num_attention_heads=3,
        intermediate_size=768,
        image_size=[800, 1333],
        use_mid_position_embeddings=False,
        num_detection_tokens=100,
        **_labels(91),
    )
    return YolosForObjectDetection(cfg)


def _labels(n: int) -> dict[str, Any]:
    """``num_labels=n`` for a transformers config: a generic ``PretrainedConfig`` keyword that
    the typed signatures of transformers 5 do not list."""
    return {"num_labels": n}


def _last_hidden(out: Any) -> list[Any]:
    return [out.last_hidden_state]


def _pooled(out: Any) -> list[Any]:
    return [out.pooler_output]


def _logits(out: Any) -> list[Any]:
    return [out.logits]


def _detections(out: Any) -> list[Any]:
    return [out.logits, out.pred_boxes]


# --------------------------------------------------------------------------- tracker


class HungarianTracker:
    """One frame of DeepSORT-style association (appearance + IoU, Hungarian assignment)."""

    def __init__(self, n_tracks: int, dim: int, rng: np.random.Generator) -> None:
        self.embeddings = _unit_rows(rng.standard_normal((n_tracks, dim)))
        self.boxes = _random_boxes(rng, n_tracks)
        self.ids = np.arange(n_tracks, dtype=np.int64)
        self.next_id = n_tracks

    def step(self, embeddings: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        from scipy.optimize import linear_sum_assignment

        emb = _unit_rows(embeddings)
        cos_dist = 1.0 - emb @ self.embeddings.T
        cost = 0.5 * cos_dist + 0.5 * (1.0 - _iou(boxes, self.boxes))
        rows, cols = linear_sum_assignment(cost)
        out = np.full(len(boxes), -1, dtype=np.int64)
        for r, c in zip(rows, cols, strict=True):
            if cost[r, c] < 0.7:
                out[r] = self.ids[c]
                self.embeddings[c] = _unit_rows(0.9 * self.embeddings[c] + 0.1 * emb[r])
                self.boxes[c] = boxes[r]
        for r in np.flatnonzero(out < 0):
            out[r] = self.next_id
            self.next_id += 1
        return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 1000, size=(n, 2))
    wh = rng.uniform(40, 200, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _tracker_build(device: str) -> Any:
    return {"n": TRACKER_DETECTIONS, "dim": EMBEDDING_DIM}


def _tracker_call(model: Any, batch: int, device: str, seed: int) -> Callable[[], list[Any]]:
    rng = np.random.default_rng(seed)
    tracker = HungarianTracker(model["n"], model["dim"], rng)
    frames = [
        (rng.standard_normal((model["n"], model["dim"])), _random_boxes(rng, model["n"]))
        for _ in range(batch)
    ]

    def call() -> list[Any]:
        return [tracker.step(e, b) for e, b in frames]

    return call


# --------------------------------------------------------------------------- registry


def _resnet_spec(depth: int, params: float) -> ModelSpec:
    channels = 512 if depth < 50 else 2048
    return ModelSpec(
        name=f"resnet{depth}",
        operator="ExtractImageFeature",
        description=f"ResNet-{depth} v1.5 backbone (transformers ResNetModel), 7x7 grid features",
        input_desc=f"1x3x224x224 float32 image; output {channels}x7x7 float32",
        build=_torch_build(lambda: _resnet(depth)),
        make_call=_torch_call(_image(224, 224), _last_hidden),
        reference=f"torchvision resnet{depth} / microsoft/resnet-{depth}",
        params_published_m=params,
        imports=("ResNetConfig", "ResNetModel"),
    )


MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        # Published parameter counts: torchvision model docs (num_params, with the 1000-class
        # head of 0.513M/2.049M parameters) minus the head -> backbone only.
        _resnet_spec(18, 11.689512 - 0.513000),
        _resnet_spec(34, 21.797672 - 0.513000),
        _resnet_spec(50, 25.557032 - 2.049000),
        _resnet_spec(101, 44.549160 - 2.049000),
        _resnet_spec(152, 60.192808 - 2.049000),
        ModelSpec(
            name="wav2vec2-base",
            operator="SpeechRecognition",
            description="wav2vec 2.0 Base + CTC head (transformers Wav2Vec2ForCTC), 12 layers",
            input_desc="5 s of 16 kHz audio (1x80000 float32); output CTC logits 249x32",
            build=_torch_build(lambda: _wav2vec2(large=False)),
            make_call=_torch_call(_audio(5.0), _logits),
            reference="facebook/wav2vec2-base-960h (95M parameters, wav2vec 2.0 paper)",
            params_published_m=95.0,
            imports=("Wav2Vec2Config", "Wav2Vec2ForCTC"),
        ),
        ModelSpec(
            name="wav2vec2-large",
            operator="SpeechRecognition",
            description="wav2vec 2.0 Large (LV-60 + self-training) + CTC head, 24 layers x 1024",
            input_desc="5 s of 16 kHz audio (1x80000 float32); output CTC logits 249x32",
            build=_torch_build(lambda: _wav2vec2(large=True)),
            make_call=_torch_call(_audio(5.0), _logits),
            reference="facebook/wav2vec2-large-960h-lv60-self (317M parameters)",
            params_published_m=317.0,
            aliases=("wav2vec2-large-960h-lv60-self",),
            imports=("Wav2Vec2Config", "Wav2Vec2ForCTC"),
        ),
        ModelSpec(
            name="visualbert-vqa",
            operator="VQA",
            description="VisualBERT (BERT-base, 12 layers x 768) with the VQA v2 answer head",
            input_desc=(
                f"{VQA_QUESTION_TOKENS} question tokens + {VQA_VISUAL_TOKENS} visual tokens "
                f"(2048-d); output {VQA_ANSWERS} answer logits"
            ),
            build=_torch_build(_visualbert),
            make_call=_torch_call(_vqa_inputs, _logits),
            reference="VisualBERT (Li et al. 2019), uclanlp/visualbert-vqa architecture",
            params_published_m=None,
            aliases=("vqa",),
            imports=("VisualBertConfig", "VisualBertForQuestionAnswering"),
        ),
        ModelSpec(
            name="detr-resnet50",
            operator="Detector",
            description="DETR, ResNet-50 backbone, 6+6 transformer layers, 100 queries",
            input_desc="1x3x750x1333 float32 (720p frame, DETR resize); output 100x92 + 100x4",
            build=_torch_build(_detr),
            make_call=_torch_call(_image(750, 1333), _detections),
            reference="facebook/detr-resnet-50 (41M parameters, DETR paper)",
            params_published_m=41.0,
            imports=("DetrConfig", "DetrForObjectDetection"),
        ),
        ModelSpec(
            name="yolos-tiny",
            operator="Detector",
            description="YOLOS-Ti (DeiT-tiny, 12 layers x 192), 100 detection tokens",
            input_desc="1x3x512x910 float32 (720p frame at eval size 512); output 100x92 + 100x4",
            build=_torch_build(_yolos_tiny),
            make_call=_torch_call(_image(512, 910), _detections),
            reference="hustvl/yolos-tiny (6.5M parameters, YOLOS README)",
            params_published_m=6.5,
            imports=("YolosConfig", "YolosForObjectDetection"),
        ),
        ModelSpec(
            name="reid-resnet50",
            operator="ReId",
            description="ResNet-50 v1.5 backbone as vehicle re-id embedder (pooled 2048-d)",
            input_desc="1x3x256x128 float32 vehicle crop; output 2048 float32",
            build=_torch_build(lambda: _resnet(50)),
            make_call=_torch_call(_image(256, 128), _pooled),
            reference="torchvision resnet50 backbone (23.5M parameters without the head)",
            params_published_m=25.557032 - 2.049000,
            imports=("ResNetConfig", "ResNetModel"),
        ),
        ModelSpec(
            name="tracker-hungarian",
            operator="Tracker",
            description=(
                "DeepSORT-style association in numpy/scipy: cosine + IoU cost, "
                "scipy.optimize.linear_sum_assignment"
            ),
            input_desc=(
                f"one frame: {TRACKER_DETECTIONS} detections x {EMBEDDING_DIM}-d embeddings "
                f"and boxes vs {TRACKER_DETECTIONS} live tracks; output int64 track ids"
            ),
            build=_tracker_build,
            make_call=_tracker_call,
            reference="Hungarian assignment (scipy), DeepSORT-style cost",
            neural=False,
            imports=(),
        ),
    ]
}

ALIASES: dict[str, str] = {a: s.name for s in MODELS.values() for a in s.aliases}


def resolve_model(name: str) -> ModelSpec | None:
    """The spec for ``name`` (or an alias), None when unknown."""
    key = name.strip()
    return MODELS.get(key) or MODELS.get(ALIASES.get(key, ""))


def model_names() -> list[str]:
    return list(MODELS)
