"""Registry of the model variants ``jbrl profile`` can measure.

Every neural model is built through ``transformers`` from a configuration with **random
weights**: nothing is downloaded (no model hub access is needed or attempted), and the
architecture matches the published checkpoint named in :attr:`ModelSpec.reference`, so the
measured latency is the latency of the real model (weights do not change the arithmetic).
``tests/profiling/test_profiling.py`` checks the parameter counts against the published ones.

Names are the variant names of the embedded scenarios (``jbrl scenario show``), so a profile
and a scenario variant match by name; older names stay as aliases. Input sizes are design
choices of the embedded scenarios and are stated per model:

* ``resnet18`` .. ``resnet152`` (ExtractImageFeature): ResNet v1.5 backbone without the
  classifier on a 224x224 RGB image; the output is the final 7x7 grid of features
  (C x 7 x 7, C = 512 for ResNet-18/34, 2048 for ResNet-50/101/152), the visual tokens of the
  VQA stage.
* ``wav2vec2-base`` / ``wav2vec2-large`` (SpeechRecognition): ``Wav2Vec2ForCTC`` shaped like
  facebook/wav2vec2-base-960h and facebook/wav2vec2-large-960h-lv60-self (24 layers, hidden
  1024) on 5 s of 16 kHz audio; the output is the CTC logits (frames x 32).
* ``visualbert`` (VQA; alias ``visualbert-vqa``): VisualBERT (Li et al. 2019,
  arXiv:1908.03557), a BERT-base encoder (12 layers, hidden 768) over 20 question tokens plus
  49 visual tokens (the ResNet 7x7 grid, 2048-d), with the 3,129-answer VQA v2 classifier
  head; output: answer logits.
* Detectors (:mod:`jbrl.profiling.detectors`): ``yolos-tiny`` at its evaluation size 512
  (512x910 for a 1280x720 frame); ``yolos-small``, ``yolos-base``, ``detr-resnet50``,
  ``detr-resnet101``, ``conditional-detr-resnet50`` and ``deformable-detr`` at 750x1333 (the
  720p frame under the DETR resize rule, shortest side 800 capped at 1333); output: the
  detection slots' class logits and boxes.
* ``reid-resnet18`` .. ``reid-resnet101`` (ReId): ResNet backbone on a 256x128 vehicle crop
  (the input size of the re-identification baselines), output the pooled embedding (512-d for
  ResNet-18/34, 2048-d for ResNet-50/101).
* ``hungarian`` (Tracker; alias ``tracker-hungarian``): not a neural network, one frame of
  DeepSORT-style association (:mod:`jbrl.profiling.tracker`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jbrl.profiling import detectors
from jbrl.profiling.detectors import resnet_config
from jbrl.profiling.tracker import EMBEDDING_DIM, TRACKER_DETECTIONS, tracker_build, tracker_call


@dataclass(frozen=True)
class ModelSpec:
    """How to build one model variant and feed it a batch.

    ``build(device)`` returns the ready model (its duration is the measured load time);
    ``make_call(model, batch, device, seed)`` returns a zero-argument function that runs one
    batch and returns the output tensors/arrays. ``params_published_m`` is the published
    parameter count (millions) and ``params_rel_tol`` how far a build may be from it (wider
    where the publication rounds to whole millions).
    """

    name: str
    operator: str
    description: str
    input_desc: str
    build: Callable[[str], Any]
    make_call: Callable[[Any, int, str, int], Callable[[], list[Any]]]
    reference: str = ""
    params_published_m: float | None = None
    params_rel_tol: float = 0.02
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

    return ResNetModel(resnet_config(depth))


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

    cfg = VisualBertConfig(visual_embedding_dim=EMBEDDING_DIM, **detectors.labels(VQA_ANSWERS))
    return VisualBertForQuestionAnswering(cfg)


def _last_hidden(out: Any) -> list[Any]:
    return [out.last_hidden_state]


def _pooled(out: Any) -> list[Any]:
    return [out.pooler_output]


def _logits(out: Any) -> list[Any]:
    return [out.logits]


# --------------------------------------------------------------------------- registry

# Published parameter counts of the torchvision ResNets (model docs, num_params with the
# 1000-class head) minus the head (0.513M for 512 features, 2.049M for 2048): backbone only.
RESNET_PARAMS_M = {
    18: 11.689512 - 0.513000,
    34: 21.797672 - 0.513000,
    50: 25.557032 - 2.049000,
    101: 44.549160 - 2.049000,
    152: 60.192808 - 2.049000,
}
RESNET_IMPORTS = ("ResNetConfig", "ResNetModel")
DETR_IMPORTS = ("ResNetConfig", "DetrConfig", "DetrForObjectDetection")
YOLOS_IMPORTS = ("YolosConfig", "YolosForObjectDetection")
FRAME_720P_DETR = "1x3x750x1333 float32 (720p frame, DETR resize: shortest side 800, max 1333)"
DETECTION_OUT = "class logits + 4 box coordinates per detection slot"


def _resnet_spec(depth: int) -> ModelSpec:
    channels = 512 if depth < 50 else 2048
    return ModelSpec(
        name=f"resnet{depth}",
        operator="ExtractImageFeature",
        description=f"ResNet-{depth} v1.5 backbone (transformers ResNetModel), 7x7 grid features",
        input_desc=f"1x3x224x224 float32 image; output {channels}x7x7 float32",
        build=_torch_build(lambda: _resnet(depth)),
        make_call=_torch_call(_image(224, 224), _last_hidden),
        reference=f"torchvision resnet{depth} / microsoft/resnet-{depth}",
        params_published_m=RESNET_PARAMS_M[depth],
        imports=RESNET_IMPORTS,
    )


def _reid_spec(depth: int, aliases: tuple[str, ...] = ()) -> ModelSpec:
    channels = 512 if depth < 50 else 2048
    return ModelSpec(
        name=f"reid-resnet{depth}",
        operator="ReId",
        description=f"ResNet-{depth} v1.5 backbone as vehicle re-id embedder (pooled)",
        input_desc=f"1x3x256x128 float32 vehicle crop; output {channels} float32",
        build=_torch_build(lambda: _resnet(depth)),
        make_call=_torch_call(_image(256, 128), _pooled),
        reference=(
            f"torchvision resnet{depth} backbone, the re-id baseline of Luo et al. 2019 "
            "(github.com/michuanhaohao/reid-strong-baseline, 256x128 input)"
        ),
        params_published_m=RESNET_PARAMS_M[depth],
        aliases=aliases,
        imports=RESNET_IMPORTS,
    )


def _speech_specs() -> list[ModelSpec]:
    return [
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
    ]


def _vqa_spec() -> ModelSpec:
    return ModelSpec(
        name="visualbert",
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
        aliases=("visualbert-vqa", "vqa"),
        imports=("VisualBertConfig", "VisualBertForQuestionAnswering"),
    )


def _detector(
    name: str,
    factory: Callable[[], Any],
    hw: tuple[int, int],
    reference: str,
    params: float,
    imports: tuple[str, ...],
    description: str,
    tol: float = 0.02,
) -> ModelSpec:
    size = FRAME_720P_DETR if hw == (750, 1333) else f"1x3x{hw[0]}x{hw[1]} float32"
    return ModelSpec(
        name=name,
        operator="Detector",
        description=description,
        input_desc=f"{size}; output {DETECTION_OUT}",
        build=_torch_build(factory),
        make_call=_torch_call(_image(*hw), detectors.detections),
        reference=reference,
        params_published_m=params,
        params_rel_tol=tol,
        imports=imports,
    )


def _detector_specs() -> list[ModelSpec]:
    big = (750, 1333)
    yolos_ref = "github.com/hustvl/YOLOS README results table"
    return [
        _detector(
            "yolos-tiny",
            lambda: detectors.yolos("tiny"),
            (512, 910),
            f"hustvl/yolos-tiny ({yolos_ref}: 6.5M parameters, eval size 512 -> 512x910 "
            "for a 720p frame)",
            6.5,
            YOLOS_IMPORTS,
            "YOLOS-Ti (DeiT-tiny, 12 layers x 192), 100 detection tokens",
        ),
        _detector(
            "yolos-small",
            lambda: detectors.yolos("small"),
            big,
            f"hustvl/yolos-small ({yolos_ref}: 30.7M parameters, eval size 800)",
            30.7,
            YOLOS_IMPORTS,
            "YOLOS-S (DeiT-small, 12 layers x 384, mid position embeddings)",
        ),
        _detector(
            "yolos-base",
            lambda: detectors.yolos("base"),
            big,
            f"hustvl/yolos-base ({yolos_ref}: 127M parameters, eval size 800)",
            127.0,
            YOLOS_IMPORTS,
            "YOLOS-B (DeiT-base, 12 layers x 768, mid position embeddings)",
        ),
        _detector(
            "detr-resnet50",
            lambda: detectors.detr(50),
            big,
            "facebook/detr-resnet-50 (41M parameters, DETR paper / ConditionalDETR README)",
            41.0,
            DETR_IMPORTS,
            "DETR, ResNet-50 backbone, 6+6 transformer layers, 100 queries",
        ),
        _detector(
            "detr-resnet101",
            lambda: detectors.detr(101),
            big,
            "facebook/detr-resnet-101 (60M parameters, DETR paper / ConditionalDETR README)",
            60.0,
            DETR_IMPORTS,
            "DETR, ResNet-101 backbone, 6+6 transformer layers, 100 queries",
        ),
        _detector(
            "conditional-detr-resnet50",
            detectors.conditional_detr,
            big,
            "microsoft/conditional-detr-resnet-50 (44M parameters, "
            "github.com/Atten4Vis/ConditionalDETR README model zoo)",
            44.0,
            ("ResNetConfig", "ConditionalDetrConfig", "ConditionalDetrForObjectDetection"),
            "Conditional DETR, ResNet-50 backbone, 300 queries",
        ),
        _detector(
            "deformable-detr",
            detectors.deformable_detr,
            big,
            "SenseTime/deformable-detr (40M parameters, published to whole millions, "
            "github.com/fundamentalvision/Deformable-DETR README main results)",
            40.0,
            ("ResNetConfig", "DeformableDetrConfig", "DeformableDetrForObjectDetection"),
            "Deformable DETR, ResNet-50, multi-scale (4 levels), 300 queries",
            tol=0.03,
        ),
    ]


def _tracker_spec() -> ModelSpec:
    return ModelSpec(
        name="hungarian",
        operator="Tracker",
        description=(
            "DeepSORT-style association in numpy/scipy: cosine + IoU cost, "
            "scipy.optimize.linear_sum_assignment"
        ),
        input_desc=(
            f"one frame: {TRACKER_DETECTIONS} detections x {EMBEDDING_DIM}-d embeddings "
            f"and boxes vs {TRACKER_DETECTIONS} live tracks; output int64 track ids"
        ),
        build=tracker_build,
        make_call=tracker_call,
        reference="Hungarian assignment (scipy), DeepSORT-style cost",
        neural=False,
        aliases=("tracker-hungarian",),
    )


MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        *(_resnet_spec(d) for d in (18, 34, 50, 101, 152)),
        *_speech_specs(),
        _vqa_spec(),
        *_detector_specs(),
        *(_reid_spec(d) for d in (18, 34, 50, 101)),
        _tracker_spec(),
    ]
}

ALIASES: dict[str, str] = {a: s.name for s in MODELS.values() for a in s.aliases}


def resolve_model(name: str) -> ModelSpec | None:
    """The spec for ``name`` (or an alias), None when unknown."""
    key = name.strip()
    return MODELS.get(key) or MODELS.get(ALIASES.get(key, ""))


def model_names() -> list[str]:
    return list(MODELS)
