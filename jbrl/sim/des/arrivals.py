"""Request arrivals of one interval, drawn with numpy and cut into the chunks that the
simulator's arrival pump routes (one simpy event per chunk of simulated time)."""

from __future__ import annotations

import bisect

import numpy as np

Chunk = tuple[float, list[float], list[tuple[bool, ...]]]
"""(chunk start, arrival times in the chunk, per arrival the sources that emit for it)."""


def arrival_chunks(
    rng: np.random.Generator,
    t0: float,
    pieces: list[tuple[float, np.ndarray]],
    chunk_s: float,
    full_mask: tuple[bool, ...],
) -> list[Chunk]:
    """Arrivals from ``t0`` over ``pieces`` of (seconds, source rates), in chunks of ``chunk_s``.

    Requests arrive at rate ``max_s rate(s)`` (Poisson); source ``s`` emits for one when a
    uniform is below ``rate(s) / max_s rate(s)``. ``full_mask`` (every source emits) is shared
    by the requests it describes, so equal request shapes share a task-graph cache key.
    """
    times_all: list[np.ndarray] = []
    masks_all: list[np.ndarray] = []
    t = t0
    for dur, rates in pieces:
        lam = float(rates.max()) if len(rates) else 0.0
        if lam > 0:
            n = int(rng.poisson(lam * dur))
            ts = np.sort(rng.uniform(t, t + dur, n))
            u = rng.random(n)
            p = rates / lam
            masks = u[:, None] < p[None, :]
            times_all.append(ts)
            masks_all.append(masks)
        t += dur
    if not times_all:
        return []
    times = np.concatenate(times_all)
    masks = np.concatenate(masks_all)
    if len(times) == 0:
        return []
    every = np.asarray(masks.all(axis=1))  # every source emits
    full: list[bool] = every.tolist()
    times_l: list[float] = times.tolist()
    mask_keys: list[tuple[bool, ...]] = [
        full_mask if f else tuple(row) for f, row in zip(full, masks.tolist(), strict=True)
    ]
    chunks: list[Chunk] = []
    start = 0
    n = len(times_l)
    c0 = t0
    while start < n:
        c1 = c0 + chunk_s
        stop = bisect.bisect_left(times_l, c1, lo=start)
        if stop > start:
            chunks.append((c0, times_l[start:stop], mask_keys[start:stop]))
        start = stop
        c0 = c1
    return chunks
