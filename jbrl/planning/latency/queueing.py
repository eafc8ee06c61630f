"""The queueing formulas of one worker (batch 1) that the fluid model steps through time, and
the exact bulk-service chain M/M^(1,b)/1 (:func:`bulk_ctmc_sojourn`) that checks batching.

* **Queue length** of a G/G/1 queue at utilisation ``r`` (Pollaczek-Khinchine / Kingman):
  ``L(r) = r + k r^2 / (1 - r)`` with ``k = (ca2 + cs2) / 2`` (arrival and service SCVs),
  :func:`queue_length`.
* **A worker's queue over a step** (:func:`fluid_queue_step`): the pointwise stationary fluid
  flow approximation (PSFFA; Wang, Tipper et al. 1996), ``dx/dt = a - mu G(x)`` with
  ``G = L^-1``, one backward-Euler step (closed form: a quadratic in ``r``), a queue that holds
  at most ``max(a, mu) * timeout`` tasks. Waiting time at the step's mean state: no wait with
  probability ``1 - r``, else ``D + (1 - c) E + Exp(c E)``: the M/G/1 mean wait of a task that
  waits, ``E = k m / (1 - r)``, spread as Takacs' second moment gives (:func:`wait_shape`,
  ``c <= 1``; ``c = 1`` is the exponential approximation), with the part of the mean wait
  beyond the utilisation cap :data:`WAIT_UTILIZATION_CAP` treated as a deterministic backlog
  ``D``; without backlog a share ``P(W > timeout)`` is dropped. Departures' variability (Whitt's QNA):
  ``r^2 cs2 + (1 - r^2) ca2``.

In steady state (``x0 = L(a / mu)``) the step's wait is the one :func:`~jbrl.planning.latency.
worker_sojourn` gives a batch-1 worker below the cap.
"""

from __future__ import annotations

from math import exp, inf, log, sqrt

WAIT_UTILIZATION_CAP = 0.98
"""Utilisation above which extra mean wait counts as deterministic backlog (:func:`fluid_queue_step`)."""


def queue_length(r: float, k: float) -> float:
    """Mean number in a G/G/1 system at utilisation ``r < 1``: ``L(r) = r + k r^2 / (1 - r)``
    (Pollaczek-Khinchine; Kingman's ``k = (ca2 + cs2) / 2``)."""
    return r + k * r * r / (1.0 - r)


def fluid_queue_step(
    x0: float,
    a: float,
    mu: float,
    ca2: float,
    cs2: float,
    m: float,
    dt: float,
    timeout: float,
    a3: float = 2.0,
) -> tuple[float, float, float, float, float, float, float]:
    """One step of length ``dt`` of a worker's queue in the fluid model (see the module docstring).

    ``x0``: mean number in system at the start; ``a``: arrival rate; ``mu``: service rate (0
    while the worker is unavailable: tasks wait for it, at most the timeout); ``ca2``, ``cs2``:
    arrival and service SCV; ``m``: mean service time; ``a3``: the service's normalised third
    moment (:func:`wait_shape`; 2, the default, keeps the wait exponential). Returns ``(x1, served, dropped, y, wait,
    E, cd2)``: number in system at the end; tasks served; tasks dropped (beyond the queue's
    capacity ``max(a, mu) * timeout``, and in a queue without backlog the served ones that waited
    longer than the timeout); utilisation ``y`` at the step's mean state; mean wait of a task
    that waits, ``D + E``, and its exponential part ``E``; SCV of the departures.

    * Queue: backward Euler of the PSFFA, ``x1 = x0 + a dt - mu dt r`` with ``x1 = L(r)``
      (:func:`queue_length`), a quadratic in ``r``; exact at equilibrium (``x0 = L(a / mu)``
      stays), and the backlog grows by ``(a - mu) dt`` in overload.
    * Waiting time at the mean state ``xm``, ``y = L^-1(xm)``: a task waits with probability
      ``y``, then ``D + Exp(E)``; ``E = k m / (1 - min(y, cap))`` (the M/G/1 exponential
      approximation, cap :data:`WAIT_UTILIZATION_CAP`) and ``D + E = (xm - y) m / y^2``
      (Little's law on the queue), so that ``D > 0`` only beyond the cap; at most the timeout.
    * The wait's shape (:func:`wait_shape`): ``E`` splits into a fixed part ``(1 - c) E`` and
      ``Exp(c E)``; the returned exponential part is ``c E`` (``D`` grows by the rest).
    * Without backlog, ``P(W > T) = y exp(-(T - (1 - c) E) / (c E))`` of the arrivals wait beyond
      the timeout ``T``.
    * Departures (QNA): ``cd2 = r^2 cs2 + (1 - r^2) ca2``.

    One function, not one per formula: the fluid step calls it for every worker and step, and a
    Python call costs as much as the arithmetic here.
    """
    k = 0.5 * (ca2 + cs2)
    # ---- the queue: b = x0 + a dt, x1 = b - mu dt r = L(r)
    b = x0 + a * dt
    cc = mu * dt
    km1 = k - 1.0
    aa = km1 - cc
    bb = 1.0 + cc + b
    r = 2.0 * b / (bb + sqrt(bb * bb + 4.0 * aa * b))
    served = cc * r
    x1 = b - served
    cap = (a if a > mu else mu) * timeout + 1.0
    drop = 0.0
    if x1 > cap:
        drop = x1 - cap
        x1 = cap
    # ---- waiting time at the step's mean state (y = L^-1(xm), exact at k = 1)
    xm = 0.5 * (x0 + x1)
    bm = 1.0 + xm
    y = 2.0 * xm / (bm + sqrt(bm * bm + 4.0 * km1 * xm)) if xm > 0 else 0.0
    km = k * m
    if y > 0.5:
        wc = (xm - y) * m / (y * y)
        e = km / (1.0 - (y if y < WAIT_UTILIZATION_CAP else WAIT_UTILIZATION_CAP))
    else:  # (the same expression twice when y <= 0.5 < cap)
        wc = e = km / (1.0 - y)
    if wc > timeout:  # older tasks are dropped
        wc = timeout
    if mu > 0:
        c = (
            1.0
            if a3 == 2.0
            else wait_shape(y if y < WAIT_UTILIZATION_CAP else WAIT_UTILIZATION_CAP, a3)
        )
        if e >= wc * 0.999999:  # (equal at equilibrium, up to rounding)
            e = wc * c
            # ---- no backlog: a dt y exp(-(T - (1 - c) E) / (c E)) waited beyond the timeout
            # (none below e^-30)
            if e > 0 and served > 0 and drop == 0.0:
                z = -(timeout - wc + e) / e
                if z > -30.0:
                    tail = a * dt * y * exp(z)
                    if tail > served:  # (min(served, tail) without the call)
                        tail = served
                    served -= tail
                    drop += tail
        else:
            e *= c
    else:  # unavailable (loading or crashed): waits for it, at most the timeout
        e = wc
    # ---- departures
    rr = r * r
    return x1, served, drop, y, wc, e, rr * cs2 + (1.0 - rr) * ca2


def wait_shape(r: float, a3: float) -> float:
    """Coefficient of variation ``c`` of the M/G/1 wait of a task that waits, at utilisation
    ``r`` with the service's normalised third moment ``a3`` (:attr:`~jbrl.planning.latency.
    service.ServiceFit.a3`), at most 1.

    Takacs' second moment ``E[W^2] = 2 E[W]^2 + lambda E[S^3] / (3 (1 - r))`` with
    ``P(W > 0) = r`` gives the wait of a task that waits an SCV ``c^2 = r + (1 - r)(a3 - 1)``:
    1 for exponential service at any load, 1/3 for a fixed service time at light load (the
    residual of one service, uniform), tending to 1 in heavy traffic. That wait is taken as
    ``(1 - c) E + Exp(c E)`` (mean ``E``, SCV ``c^2``); for ``c^2 >= 1`` (service more variable
    than exponential) it stays ``Exp(E)``. Its exponential part decays close to the exact
    M/D/1 rate (at ``r = 0.5``: ``1.22 / D`` against Cramer-Lundberg's ``1.26 / D``; ``Exp(E)``
    alone gives ``1 / D``), which keeps light-load tails from being overstated.
    """
    c2 = r + (1.0 - r) * (a3 - 1.0)
    return sqrt(c2) if 0.0 < c2 < 1.0 else (1.0 if c2 >= 1.0 else 0.0)


def departure_scv(r: float, cs2: float, ca2: float) -> float:
    """SCV of a single-server worker's departures at utilisation ``r`` with service SCV ``cs2``
    and arrival SCV ``ca2`` (Whitt's QNA, 1983): ``r^2 cs2 + (1 - r^2) ca2``. A busy
    near-deterministic worker sends a smoother stream than it receives. (:func:`fluid_queue_step`
    computes the same inline: it runs for every worker and step.)"""
    rr = min(max(r, 0.0), 1.0) ** 2
    return rr * cs2 + (1.0 - rr) * ca2


def split_merge_scv(parts: list[tuple[float, float, float]]) -> float:
    """SCV of a receiver's arrivals merged from streams ``(flow, p, c2)``: a sender's stream of
    SCV ``c2`` of which a fraction ``p`` is routed here (random routing: ``p c2 + 1 - p``),
    merged by flow (QNA's superposition; :func:`jbrl.sim.fluid.state.arrival_scv_terms` is the
    same formula kept linear in the senders' ``c2``, which the fluid model updates every step).
    1 (Poisson) without flow."""
    tot = sum(f for f, _, _ in parts if f > 0)
    if tot <= 0:
        return 1.0
    return sum(f / tot * (p * c2 + 1.0 - p) for f, p, c2 in parts if f > 0)


def hybrid_scv(w: float, c2_interval: float, c2_asymptotic: float = 1.0) -> float:
    """The arrival SCV a single-server worker effectively sees: ``w c2_asymptotic + (1 - w)
    c2_interval``, the weight ``w`` in [0, 1] from :func:`sender_weight` (at most ``r^2`` for a
    worker at utilisation ``r``). A lightly loaded queue feels the stream's
    short-interval variability (QNA's stationary-interval SCV, ``c2_interval``: a busy
    near-deterministic sender spaces its departures), a heavily loaded one the variability of
    counts over its long busy periods, which for a stream that passed through stable queues is
    that of the external arrivals (``c2_asymptotic``: 1 for Poisson sources). The convex
    combination of the two methods is Whitt's hybrid idea (QNA, Bell Syst. Tech. J. 62(9), 1983;
    Whitt, Oper. Res. 30(1), 1982); the weight ``r^2`` is jbrl's choice, made on 16 cases of
    ``experiments/bench_slo_planning.py`` whose DES outcome was known (6 plans that missed the
    target, 10 cheaper plans that met it): predicted minus simulated attainment, pure QNA
    -0.42 to +0.82 points (mean absolute 0.30, mean +0.23), Poisson everywhere -1.45 to -0.15
    (0.75), weight ``r`` -0.72 to -0.01, ``r^2`` -0.49 to +0.08 (0.22, mean -0.21: the least
    error, on the safe side). Synth seeds 20-24 of the bench were not among them. Checked again
    once the path model followed the plan's routing (:mod:`~jbrl.planning.latency.paths`), on the
    111 capacity-only plans of that bench whose DES attainment is known (each case's grid best):
    ``r^2`` -0.57 to +0.19 points (mean absolute 0.081, mean -0.055), pure QNA -0.32 to +0.73
    (0.119, mean +0.099: 8 plans over-predicted by more than 0.3); before the routing was
    followed, ``r^2`` gave -0.79 to +0.28 (0.091). The sender's side and the tandem reduction
    came next (:func:`sender_weight`, :func:`tandem_scv`)."""
    ww = min(max(w, 0.0), 1.0)
    return ww * c2_asymptotic + (1.0 - ww) * c2_interval


def sender_weight(r_sender: float, r: float) -> float:
    """How much of a stream's long-run variability a worker at utilisation ``r`` sees in the
    departures of a sender at utilisation ``r_sender`` (the weight of ``c2_asymptotic`` in
    :func:`hybrid_scv`): ``min(r^2, x / (1 + x))`` with ``x = ((1 - r_sender) / (1 - r))^2``.

    ``r^2`` is the receiver's side (see :func:`hybrid_scv`). The second term is the sender's:
    a queue's departures keep its service's regularity over about its relaxation time, which
    grows as ``(1 - r_sender)^-2``, while the receiver's waits are shaped over about
    ``(1 - r)^-2`` (the time scales of Whitt and You's robust queueing network analyzer,
    RQNA, arXiv 2003.11174, 2020, reduced to their ratio). A receiver that relaxes faster than
    its sender sees mostly the sender's smoothed output: a busy near-deterministic stage feeding
    a lighter one. On the 111 capacity-only plans of ``experiments/bench_slo_planning.py``
    whose DES attainment is known (each case's grid best), predicted minus simulated
    attainment: ``r^2`` alone -0.57 to +0.19 points (mean absolute 0.081); with the sender's
    term -0.55 to +0.19 (0.071); the sender's term alone (without the ``min``) -0.74 to +0.19
    (0.088); with the sender's term and, for dedicated pairs, :func:`tandem_scv` bounded by
    :func:`spacing_jitter_scv` -0.43 to +0.19 (0.064)."""
    r = min(max(r, 0.0), 1.0)
    rs = min(max(r_sender, 0.0), 1.0)
    if r >= 1.0:
        return 1.0
    x = ((1.0 - rs) / (1.0 - r)) ** 2
    return min(r * r, x / (1.0 + x))


def _exceeds(t: float, shift: float, mu: float) -> float:
    """``P(shift + Exp(mean mu) > t)`` (``mu = 0``: the shift alone)."""
    if t < shift:
        return 1.0
    return exp(-(t - shift) / mu) if mu > 0.0 else 0.0


def waits_tail(t: float, waits: tuple[tuple[float, float, float], ...]) -> float:
    """``P(sum of the waits > t)`` for independent waits laid out as the batch-1 sojourn lays
    them out (:mod:`~jbrl.planning.latency.sojourn`): 0 with probability ``1 - a``, otherwise
    ``shift + Exp(mean mu)``; ``waits = ((a, shift, mu), ...)``, one or two."""
    if len(waits) == 1:
        a, s1, m1 = waits[0]
        return a * _exceeds(t, s1, m1)
    (a, s1, m1), (b, s2, m2) = waits
    u = t - s1 - s2
    if u < 0.0:
        both = 1.0
    elif abs(m1 - m2) <= 1e-12 * max(m1, m2, 1e-300):
        both = (1.0 + u / m1) * exp(-u / m1) if m1 > 0.0 else 0.0
    else:
        e1 = exp(-u / m1) if m1 > 0.0 else 0.0
        e2 = exp(-u / m2) if m2 > 0.0 else 0.0
        both = (m1 * e1 - m2 * e2) / (m1 - m2)
    return a * (1.0 - b) * _exceeds(t, s1, m1) + b * (1.0 - a) * _exceeds(t, s2, m2) + a * b * both


def wait_law(
    r: float, ca2: float, cs2: float, a3: float, mean_s: float
) -> tuple[float, float, float]:
    """The batch-1 wait of the latency model as ``(P(wait > 0), shift, exponential mean)``:
    ``r``, ``(1 - c) E``, ``c E`` with ``E = (ca2 + cs2) / 2 m / (1 - r)`` (Kingman) and ``c``
    from :func:`wait_shape`; the batch-1 sojourn (:mod:`~jbrl.planning.latency.sojourn`) is
    built from it."""
    e = 0.5 * (ca2 + cs2) * mean_s / (1.0 - r)
    c = wait_shape(r, a3)
    return r, (1.0 - c) * e, c * e


def tandem_scv(
    sender: tuple[float, float, float, float, float],
    receiver: tuple[float, float, float, float],
    q: float,
) -> float:
    """The arrival SCV that gives a worker fed by one dedicated sender (all the worker's tasks
    come from it; it sends all its tasks there) the tail the pair of deterministic servers has
    at percentile ``q``.

    ``sender = (r, ca2, cs2, a3, mean_s)``, ``receiver = (r, cs2, a3, mean_s)`` (utilisation,
    arrival SCV, service SCV, normalised third moment, mean service). For servers of fixed
    service times ``D1`` then ``D2`` the tandem's departures are those of one queue of service
    ``max(D1, D2)`` fed by the first one's arrivals, ``min(D1, D2)`` later (Friedman,
    "Reduction methods for tandem queuing systems", Oper. Res. 13(1), 1965; a sample-path
    identity: the second server waits only when the first one's spacing is shorter than its
    own service). So the pair waits as the slower server alone would. The path model adds the
    two workers' waits as independent, each laid out as the batch-1 sojourn lays it out
    (:func:`wait_law`); this chooses the receiver's mean wait so that the sum has the slower
    server's wait at ``q`` (the same law, fed by the sender's arrivals) and returns the arrival
    SCV that gives that mean in Kingman's formula: 0 where the sender's own wait already has
    the pair's tail (the sender's spacing covers the receiver's service). Matching means
    instead would make the pair's tail too light: two independent waits of half the mean have
    a lighter tail than one of the whole mean."""
    rs, ca2, cs2s, a3s, ms = sender
    r, cs2, a3, m = receiver
    if r <= 0.0 or r >= 1.0 or rs <= 0.0 or rs >= 1.0 or not 0.0 < q < 1.0:
        return 1.0
    rb, cb, ab, mb = (r, cs2, a3, m) if r >= rs else (rs, cs2s, a3s, ms)
    pb, sb, eb = wait_law(rb, ca2, cb, ab, mb)
    need = 1.0 - q
    if pb <= need:
        return 0.0
    t = sb + eb * log(pb / need)  # the slower server's wait at q
    own = (wait_law(rs, ca2, cs2s, a3s, ms),)
    if waits_tail(t, own) >= need:
        return 0.0
    c = wait_shape(r, a3)

    def tail(e: float) -> float:
        return waits_tail(t, (*own, (r, (1.0 - c) * e, c * e)))

    lo, hi = 0.0, max(t, 1e-12)
    while tail(hi) < need and hi < 1e6 * max(t, 1e-12):
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if tail(mid) < need:
            lo = mid
        else:
            hi = mid
    return max(2.0 * hi * (1.0 - r) / m - cs2, 0.0)


def spacing_jitter_scv(
    sender: tuple[float, float], receiver: tuple[float, float, float, float]
) -> float:
    """The arrival SCV that gives a worker fed by one dedicated sender the wait its services'
    jitter alone makes it wait: ``sender = (cs2, mean_s)``, ``receiver = (r, cs2, a3,
    mean_s)``.

    Friedman's reduction (:func:`tandem_scv`) holds for fixed service times. With random ones,
    while the sender is busy the receiver is a queue whose interarrival times are the sender's
    services ``S1`` and whose services are ``S2``: its wait is a random walk of increments
    ``S2 - S1`` reflected at 0, of mean wait about ``Var(S2 - S1) / (2 |E[S2 - S1]|)``
    (Kingman's heavy-traffic bound for the GI/G/1 queue, Proc. Cambridge Philos. Soc. 57(4),
    1961), taken on either side of equal means (a slightly slower receiver also waits by
    the jitter before its drift dominates), infinite when the means are equal. The SCV returned
    gives the receiver that mean wait in Kingman's formula; the path model uses the larger of
    this and :func:`tandem_scv`'s, and never more than the QNA value it refines. Two equally
    fast near-deterministic stages in a row are then left to QNA, which stays on the safe side
    of the DES there (``tests/planning/test_routing_paths.py``, ``aligned``), where Friedman
    alone is 1.6 points over it."""
    cs2s, ms = sender
    r, cs2, _a3, m = receiver
    gap = abs(m - ms)
    if gap <= 0.0 or r <= 0.0 or r >= 1.0:
        return inf
    wait = (cs2s * ms * ms + cs2 * m * m) / (2.0 * gap)
    return max(2.0 * wait * (1.0 - r) / (r * m) - cs2, 0.0)


def bulk_ctmc_sojourn(lam: float, mu: float, b: int, levels: int = 600) -> float:
    """Mean sojourn of the bulk-service queue M/M^(1,b)/1 (Chaudhry & Templeton, *A First
    Course in Bulk Queues*, 1983: a free server takes ``min(queue, b)`` and serves them in one
    exponential service of rate ``mu`` whatever the batch size; no fill timeout), from its
    continuous-time Markov chain over (idle | busy with ``q`` waiting, ``q <= levels``) solved
    numerically: ``W = E[q] / lam + 1 / mu`` (Little). An exact reference for the DES's and the
    latency model's batching (``lam < b mu``; ``levels`` must hold the queue's mass)."""
    import numpy as np

    n = levels + 2
    g = np.zeros((n, n))
    g[0, 1] = lam
    for q in range(levels + 1):
        if q < levels:
            g[1 + q, 2 + q] = lam
        g[1 + q, 0 if q == 0 else 1 + q - min(q, b)] += mu
    np.fill_diagonal(g, -g.sum(1))
    a = g.T.copy()
    a[-1] = 1.0
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    p = np.linalg.solve(a, rhs)
    return float(p[1:] @ np.arange(levels + 1)) / lam + 1.0 / mu
