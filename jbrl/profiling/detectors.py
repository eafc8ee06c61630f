"""Builders of the object detectors of the vehicle scenario, from ``transformers`` configs.

Every builder returns a random-weight model with the architecture of a published COCO
checkpoint (named in the registry, :mod:`jbrl.profiling.models`):

* DETR with a ResNet-50 or ResNet-101 backbone (Carion et al. 2020; facebook/detr-resnet-50,
  facebook/detr-resnet-101), 6 + 6 transformer layers, 100 queries;
* Conditional DETR R50 (Meng et al., ICCV 2021; microsoft/conditional-detr-resnet-50),
  300 queries;
* Deformable DETR R50, multi-scale (Zhu et al., ICLR 2021; SenseTime/deformable-detr),
  4 feature levels, 300 queries; ``transformers`` runs its multi-scale deformable attention
  in plain PyTorch on the CPU;
* YOLOS-Ti / -S / -B (Fang et al., NeurIPS 2021; hustvl/yolos-tiny, -small, -base), with the
  position-embedding sizes of the YOLOS README's training commands (``init_pe_size`` and
  ``mid_pe_size``), which set their parameter counts.

The ResNet backbones are built from :class:`transformers.ResNetConfig` (no timm, nothing
downloaded): ``transformers`` 4.x would otherwise build a timm backbone with pretrained
weights, so the builders pass ``use_timm_backbone=False`` and ``use_pretrained_backbone=False``
(5.x ignores them).
"""

from __future__ import annotations

from typing import Any

COCO_LABELS = 91
"""COCO's label ids (the published checkpoints' ``num_labels``)."""

# transformers 4.x builds a timm backbone with pretrained weights unless told not to; 5.x has
# no such options (and ignores them), so they go through the generic config keywords.
NO_DOWNLOAD: dict[str, Any] = {"use_timm_backbone": False, "use_pretrained_backbone": False}


def labels(n: int) -> dict[str, Any]:
    """``num_labels=n`` for a transformers config: a generic ``PretrainedConfig`` keyword that
    the typed signatures of transformers 5 do not list."""
    return {"num_labels": n}


def resnet_config(depth: int, **extra: Any) -> Any:
    """:class:`transformers.ResNetConfig` of ResNet-``depth`` v1.5 (18, 34, 50, 101, 152)."""
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
        depths=depths, layer_type=layer_type, hidden_sizes=hidden, embedding_size=64, **extra
    )


def detr(depth: int) -> Any:
    """DETR with a ResNet-``depth`` backbone (its last stage feeds the transformer)."""
    from transformers import DetrConfig, DetrForObjectDetection

    backbone = resnet_config(depth, out_features=["stage4"])
    cfg = DetrConfig(backbone_config=backbone, **NO_DOWNLOAD, **labels(COCO_LABELS))
    return DetrForObjectDetection(cfg)


def conditional_detr() -> Any:
    """Conditional DETR R50 (the config's defaults are the published model's)."""
    from transformers import ConditionalDetrConfig, ConditionalDetrForObjectDetection

    cfg = ConditionalDetrConfig(**NO_DOWNLOAD, **labels(COCO_LABELS))
    return ConditionalDetrForObjectDetection(cfg)


def deformable_detr() -> Any:
    """Deformable DETR R50, multi-scale, single stage, no box refinement (the defaults)."""
    from transformers import DeformableDetrConfig, DeformableDetrForObjectDetection

    cfg = DeformableDetrConfig(**NO_DOWNLOAD, **labels(COCO_LABELS))
    return DeformableDetrForObjectDetection(cfg)


YOLOS_SIZES: dict[str, dict[str, Any]] = {
    # hidden, layers, heads, MLP; position embeddings as in the YOLOS README's commands
    "tiny": {
        "hidden_size": 192,
        "num_attention_heads": 3,
        "intermediate_size": 768,
        "image_size": [800, 1333],
        "use_mid_position_embeddings": False,
    },
    "small": {
        "hidden_size": 384,
        "num_attention_heads": 6,
        "intermediate_size": 1536,
        "image_size": [512, 864],
        "use_mid_position_embeddings": True,
    },
    "base": {
        "hidden_size": 768,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "image_size": [800, 1344],
        "use_mid_position_embeddings": True,
    },
}


def yolos(size: str) -> Any:
    """YOLOS-Ti / -S / -B (12 layers, 100 detection tokens)."""
    from transformers import YolosConfig, YolosForObjectDetection

    cfg = YolosConfig(
        num_hidden_layers=12,
        num_detection_tokens=100,
        **YOLOS_SIZES[size],
        **labels(COCO_LABELS),
    )
    return YolosForObjectDetection(cfg)


def detections(out: Any) -> list[Any]:
    """A detector's outputs: class logits and boxes of every detection slot."""
    return [out.logits, out.pred_boxes]
