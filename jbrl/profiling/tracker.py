"""The Tracker workload of the vehicle scenarios: one frame of DeepSORT-style association.

Not a neural network: cosine distance of the detections' re-identification embeddings plus
(1 - IoU) of their boxes against the live tracks, Hungarian assignment with
``scipy.optimize.linear_sum_assignment``, then a track update. :func:`tracker_build` and
:func:`tracker_call` have the ``build`` / ``make_call`` shape of
:class:`jbrl.profiling.models.ModelSpec`, so ``jbrl profile`` measures it like a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# Detections per frame used by the tracker workload: CityFlow's 8.2 objects per frame
# (FastTracker benchmark table, huggingface.co/datasets/Hamidreza-Hashemp/FastTracker-Benchmark),
# rounded down to whole detections.
TRACKER_DETECTIONS = 8
# Embedding width the tracker compares: the widest re-id embedding (ResNet-50/101 pooled,
# 2048-d); the 512-d embeddings of ResNet-18/34 cost less, so this is the upper bound.
EMBEDDING_DIM = 2048


class HungarianTracker:
    """One frame of DeepSORT-style association (appearance + IoU, Hungarian assignment)."""

    def __init__(self, n_tracks: int, dim: int, rng: np.random.Generator) -> None:
        self.embeddings = unit_rows(rng.standard_normal((n_tracks, dim)))
        self.boxes = random_boxes(rng, n_tracks)
        self.ids = np.arange(n_tracks, dtype=np.int64)
        self.next_id = n_tracks

    def step(self, embeddings: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Track ids of this frame's detections (new ids for unmatched ones)."""
        from scipy.optimize import linear_sum_assignment

        emb = unit_rows(embeddings)
        cos_dist = 1.0 - emb @ self.embeddings.T
        cost = 0.5 * cos_dist + 0.5 * (1.0 - iou(boxes, self.boxes))
        rows, cols = linear_sum_assignment(cost)
        out = np.full(len(boxes), -1, dtype=np.int64)
        for r, c in zip(rows, cols, strict=True):
            if cost[r, c] < 0.7:
                out[r] = self.ids[c]
                self.embeddings[c] = unit_rows(0.9 * self.embeddings[c] + 0.1 * emb[r])
                self.boxes[c] = boxes[r]
        for r in np.flatnonzero(out < 0):
            out[r] = self.next_id
            self.next_id += 1
        return out


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` boxes (x0, y0, x1, y1) of 40..200 px sides in a 1000 px frame."""
    xy = rng.uniform(0, 1000, size=(n, 2))
    wh = rng.uniform(40, 200, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of two box arrays."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def tracker_build(device: str) -> Any:
    """The tracker's settings (nothing to load)."""
    return {"n": TRACKER_DETECTIONS, "dim": EMBEDDING_DIM}


def tracker_call(model: Any, batch: int, device: str, seed: int) -> Callable[[], list[Any]]:
    """Associate ``batch`` frames, one after another, against a seeded set of live tracks."""
    rng = np.random.default_rng(seed)
    tracker = HungarianTracker(model["n"], model["dim"], rng)
    frames = [
        (rng.standard_normal((model["n"], model["dim"])), random_boxes(rng, model["n"]))
        for _ in range(batch)
    ]

    def call() -> list[Any]:
        return [tracker.step(e, b) for e, b in frames]

    return call
