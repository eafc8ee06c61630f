"""The scenario data model: workflow, variants and accuracy, infrastructure, profiles, SLO.

A :class:`Scenario` is immutable and validated when it is built (pydantic, frozen). Cross
references (an edge naming an operator, a profile naming a worker type, ...) are checked by
:mod:`jbrl.scenario.validation`, so every later layer can look things up without guarding.

Units: rates in requests/s, prices in $/hour, link cost in $/GB, bandwidth in MB/s, latency in ms,
message sizes in KB (KiB), model load time in s, accuracy in the table's own unit (e.g. %).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from jbrl.scenario.validation import (
    check_combinations,
    check_source_rates,
    check_worker_counts,
    first_duplicate,
    reference_errors,
)

KB_PER_GB = 1024.0 * 1024.0
SECONDS_PER_HOUR = 3600.0

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- workflow


class Source(_Model):
    """A data emitter: requests enter the workflow here."""

    name: Name
    rate: PositiveFloat = Field(description="Nominal request rate (req/s).")
    tier: Name | int = Field(0, description="Tier (name or index) where the data originates.")
    provenance: str | None = None


class Operator(_Model):
    """A model stage of the workflow with one or more variants."""

    name: Name
    variants: list[Name] = Field(default_factory=lambda: ["default"], min_length=1)
    description: str | None = None

    @field_validator("variants")
    @classmethod
    def _unique_variants(cls, v: list[str]) -> list[str]:
        dup = first_duplicate(v)
        if dup is not None:
            raise ValueError(f"duplicate variant name {dup!r}")
        return v


class Edge(_Model):
    """Dataflow edge u -> v.

    ``ratio`` is requests of v per request of u (>1 for fan-out). ``message_kb`` is the data sent
    along the edge per request of v, either one number or a mapping from u's variant to KB (key
    ``default`` as fallback).
    """

    source: Name = Field(alias="from")
    target: Name = Field(alias="to")
    ratio: PositiveFloat = 1.0
    message_kb: NonNegFloat | dict[Name, NonNegFloat] = 0.0
    provenance: str | None = None

    def message_kb_for(self, source_variant: str) -> float:
        """KB per request of v when u runs ``source_variant``."""
        if isinstance(self.message_kb, dict):
            if source_variant in self.message_kb:
                return self.message_kb[source_variant]
            return self.message_kb.get("default", 0.0)
        return self.message_kb


# --------------------------------------------------------------------------- accuracy


class AccuracyEntry(_Model):
    """End-to-end accuracy of one variant combination."""

    variants: dict[Name, Name]
    accuracy: FiniteFloat
    provenance: str | None = None


class AccuracySample(_Model):
    inputs_acc: list[FiniteFloat] = Field(default_factory=list)
    output_acc: FiniteFloat


class OperatorVariantAccuracy(_Model):
    cost: NonNegFloat = Field(description="Relative model cost used by beam search to rank.")
    samples: list[AccuracySample] = Field(default_factory=list)


class OperatorAccuracyProfile(_Model):
    """Per-operator input-accuracy -> output-accuracy samples (JellyBean's beam search input)."""

    op: Name
    inputs: list[Name] = Field(default_factory=list)
    weight: NonNegFloat = 1.0
    variants: dict[Name, OperatorVariantAccuracy]


class Accuracy(_Model):
    """Accuracy model: an end-to-end table over the variants of ``operators``."""

    operators: list[Name] = Field(
        default_factory=list, description="Operators whose variant choice changes accuracy."
    )
    table: list[AccuracyEntry] = Field(default_factory=list)
    per_operator: list[OperatorAccuracyProfile] = Field(default_factory=list)
    metric: str = Field(
        default="accuracy", description="What the numbers measure, e.g. 'VQA accuracy %'."
    )


# --------------------------------------------------------------------------- infrastructure


class Worker(_Model):
    """A machine that can host one operator variant at a time."""

    name: Name
    type: Name
    tier: Name | int
    price: PositiveFloat = Field(description="$/hour, charged in full when the worker is used.")
    provenance: str | None = None


class Link(_Model):
    """Network properties from ``from`` to ``to``; each end a tier, worker or source name."""

    source: Name = Field(alias="from")
    target: Name = Field(alias="to")
    cost_per_gb: NonNegFloat = 0.0
    bandwidth_mb_s: PositiveFloat | None = None
    latency_ms: NonNegFloat | None = None
    provenance: str | None = None


class NetworkDefaults(_Model):
    """Bandwidth and latency used where no link lists them (documented defaults)."""

    same_tier_bandwidth_mb_s: PositiveFloat = 1250.0
    same_tier_latency_ms: NonNegFloat = 0.2
    cross_tier_bandwidth_mb_s: PositiveFloat = 125.0
    cross_tier_latency_ms: NonNegFloat = 10.0


# --------------------------------------------------------------------------- profiles


class BatchLatency(_Model):
    """Whole-batch latency of one batch size (the batch's p50 and p90, ms)."""

    batch: Annotated[int, Field(ge=1, le=4096)]
    p50_ms: PositiveFloat
    p90_ms: PositiveFloat

    @model_validator(mode="after")
    def _check(self) -> BatchLatency:
        if self.p90_ms < self.p50_ms:
            raise ValueError(
                f"batch {self.batch}: p90_ms {self.p90_ms} is below p50_ms {self.p50_ms}"
            )
        return self


class Profile(_Model):
    """Measured behaviour of one (operator, variant) on a worker type or a single worker."""

    operator: Name
    variant: Name = "default"
    worker_type: Name | None = None
    worker: Name | None = None
    p50_ms: PositiveFloat
    p90_ms: PositiveFloat
    plan_ms: PositiveFloat | None = Field(
        None, description="Latency the planner uses for capacity (default: p90_ms)."
    )
    output_kb: NonNegFloat | None = None
    load_s: NonNegFloat | None = Field(None, description="Model load time (default: scenario's).")
    batches: list[BatchLatency] = Field(default_factory=list)
    provenance: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Profile:
        if (self.worker_type is None) == (self.worker is None):
            raise ValueError("give exactly one of worker_type or worker")
        if self.p90_ms < self.p50_ms:
            raise ValueError(f"p90_ms {self.p90_ms} is below p50_ms {self.p50_ms}")
        seen: set[int] = set()
        for r in self.batches:
            if r.batch in seen:
                raise ValueError(f"batches: batch size {r.batch} is listed twice")
            seen.add(r.batch)
            if r.batch == 1 and not (
                math.isclose(r.p50_ms, self.p50_ms, rel_tol=1e-6)
                and math.isclose(r.p90_ms, self.p90_ms, rel_tol=1e-6)
            ):
                raise ValueError(
                    f"batches: the batch-1 row ({r.p50_ms}/{r.p90_ms} ms) differs from the "
                    f"profile's p50_ms/p90_ms ({self.p50_ms}/{self.p90_ms}); batch 1 is the "
                    "profile's own percentiles"
                )
        return self

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Batch sizes a worker may run with this profile: 1 and every ``batches`` row."""
        return tuple(sorted({1, *(r.batch for r in self.batches)}))

    def batch_p90_ms(self, batch: int) -> float | None:
        """p90 (ms) of a whole batch of a profiled size (None for another size)."""
        if batch == 1:
            return self.p90_ms
        return next((r.p90_ms for r in self.batches if r.batch == batch), None)


class Slo(_Model):
    """The service-level objective. Without ``latency_ms`` a scenario plans on capacity alone
    (JellyBean's semantics) and simulators report no attainment (NaN)."""

    min_accuracy: FiniteFloat = Field(description="Minimum end-to-end accuracy.")
    latency_ms: PositiveFloat | None = Field(
        None,
        description="End-to-end latency bound (ms); unset: capacity-only planning, no attainment.",
    )
    attainment: Annotated[float, Field(gt=0, le=1)] = Field(
        0.99, description="Fraction of requests that must finish within the bound."
    )

    @property
    def bound_s(self) -> float | None:
        """The latency bound in seconds, or None when the scenario has none."""
        return None if self.latency_ms is None else self.latency_ms / 1000.0


class DemoSettings(_Model):
    """How ``jbrl demo`` runs the scenario's policies unless told otherwise (``--sim``,
    ``--interval``, ``--duration``). Not read by planners or simulators: a fleet-scale scenario, whose MILP takes
    seconds per decision and whose request-level DES of a 2-hour trace takes about a minute per
    policy, can ask for the fluid simulator and a longer decision interval so that the demo
    stays short."""

    sim: Literal["des", "fluid"] = Field(default="des", description="Simulator of the demo's runs.")
    interval_s: PositiveFloat = Field(
        default=60.0, description="Decision interval of the demo's runs (s)."
    )
    duration_s: PositiveFloat | None = Field(
        default=None,
        description="Cut the demo's trace to this many seconds (None: the whole trace).",
    )
    reason: str = Field(default="", description="Why these settings (shown by the demo).")


# --------------------------------------------------------------------------- scenario


class LinkInfo(BaseModel):
    """A resolved sender -> receiver path: what one request's bytes cost and take."""

    model_config = ConfigDict(frozen=True)

    cost_per_gb: float
    bandwidth_mb_s: float
    latency_ms: float
    direction: Literal["same", "up", "back"]
    allowed: bool

    def transfer_s(self, kb: float) -> float:
        """Seconds to send ``kb`` KB: size / bandwidth + one-way latency."""
        return kb / (1024.0 * self.bandwidth_mb_s) + self.latency_ms / 1000.0


class Scenario(_Model):
    """A complete planning problem. See README "Scenario format" for the YAML form."""

    name: Name
    description: str = ""
    provenance: dict[str, str] = Field(
        default_factory=dict, description="Where the numbers come from, by topic."
    )
    tiers: list[Name] = Field(min_length=1, description="Tier names, nearest the data first.")
    sources: list[Source] = Field(min_length=1)
    operators: list[Operator] = Field(min_length=1)
    edges: list[Edge] = Field(min_length=1)
    accuracy: Accuracy = Field(default_factory=Accuracy)
    workers: list[Worker] = Field(min_length=1)
    links: list[Link] = Field(default_factory=list)
    network: NetworkDefaults = Field(default_factory=NetworkDefaults)
    backward_traffic: Literal["forbidden", "charged"] = "forbidden"
    comm_cost_scale: PositiveFloat = Field(
        1.0, description="Multiplier on link cost (JellyBean's COMM_COST_SCALING_FACTOR)."
    )
    latency_overestimate: PositiveFloat = Field(
        1.0, description="Multiplier on planning latency (JellyBean's LATENCY_OVERESTIMATE_RATIO)."
    )
    default_load_s: NonNegFloat = Field(10.0, description="Model load time where no profile says.")
    batch_wait_timeout_s: NonNegFloat = Field(
        0.0,
        description="Longest a free worker with a batch size above 1 waits for its batch to "
        "fill (s; Ray Serve's batch_wait_timeout_s). 0: it takes what is queued.",
    )
    profiles: list[Profile] = Field(min_length=1)
    slo: Slo
    demo: DemoSettings = Field(
        default_factory=DemoSettings,
        description="How `jbrl demo` runs the policies unless told (simulator, interval).",
    )

    # ------------------------------------------------------------------ validation

    @model_validator(mode="before")
    @classmethod
    def _expand_worker_counts(cls, data: Any) -> Any:
        """Expand ``{name: edge-cpu, count: 3, ...}`` into edge-cpu-1 .. edge-cpu-3."""
        if not isinstance(data, dict) or not isinstance(data.get("workers"), list):
            return data
        check_worker_counts(data["workers"])
        out: list[Any] = []
        for item in data["workers"]:
            if isinstance(item, dict) and "count" in item:
                count = item["count"]
                base = {k: v for k, v in item.items() if k != "count"}
                for i in range(1, count + 1):
                    out.append({**base, "name": f"{base.get('name')}-{i}"})
            else:
                out.append(item)
        return {**data, "workers": out}

    @model_validator(mode="after")
    def _check_references(self) -> Scenario:
        """Cross references (:mod:`jbrl.scenario.validation`): every problem in one error."""
        check_source_rates(self.sources)
        check_combinations(self.operators)
        errors = reference_errors(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # ------------------------------------------------------------------ lookups

    @cached_property
    def operator_map(self) -> dict[str, Operator]:
        return {o.name: o for o in self.operators}

    @cached_property
    def source_map(self) -> dict[str, Source]:
        return {s.name: s for s in self.sources}

    @cached_property
    def worker_map(self) -> dict[str, Worker]:
        return {w.name: w for w in self.workers}

    def tier_index(self, tier: str | int) -> int:
        return tier if isinstance(tier, int) else self.tiers.index(tier)

    @cached_property
    def worker_tier(self) -> dict[str, int]:
        """Tier index of every worker."""
        return {w.name: self.tier_index(w.tier) for w in self.workers}

    @cached_property
    def source_tier(self) -> dict[str, int]:
        return {s.name: self.tier_index(s.tier) for s in self.sources}

    def endpoint_tier(self, name: str) -> int:
        """Tier of a worker or a source."""
        if name in self.worker_tier:
            return self.worker_tier[name]
        return self.source_tier[name]

    @cached_property
    def topo_order(self) -> list[str]:
        """Operators in topological order (sources excluded)."""
        indeg = {o.name: 0 for o in self.operators}
        for e in self.edges:
            indeg[e.target] += 1
        ready = [s.name for s in self.sources]
        order: list[str] = []
        out: dict[str, list[str]] = {}
        for e in self.edges:
            out.setdefault(e.source, []).append(e.target)
        while ready:
            n = ready.pop(0)
            if n in indeg:
                order.append(n)
            for m in out.get(n, []):
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
        return order

    @cached_property
    def in_edges(self) -> dict[str, list[Edge]]:
        res: dict[str, list[Edge]] = {o.name: [] for o in self.operators}
        for e in self.edges:
            res[e.target].append(e)
        return res

    @cached_property
    def out_edges(self) -> dict[str, list[Edge]]:
        res: dict[str, list[Edge]] = {n: [] for n in [s.name for s in self.sources]}
        res.update({o.name: [] for o in self.operators})
        for e in self.edges:
            res[e.source].append(e)
        return res

    @cached_property
    def sinks(self) -> list[str]:
        return [o for o in self.topo_order if not self.out_edges[o]]

    def nominal_rates(self) -> dict[str, float]:
        return {s.name: s.rate for s in self.sources}

    def demand(self, rates: Mapping[str, float] | None = None) -> dict[str, float]:
        """Required rate of every source and operator: rate(v) = min_u rate(u) * ratio(u, v)."""
        rates = dict(self.nominal_rates() if rates is None else rates)
        out: dict[str, float] = {s.name: float(rates.get(s.name, 0.0)) for s in self.sources}
        for op in self.topo_order:
            out[op] = min(out[e.source] * e.ratio for e in self.in_edges[op])
        return out

    def demand_per_unit(self) -> dict[str, dict[str, float]]:
        """Linear coefficients: demand(op) = min over sources s of rate(s) * coef[op][s]."""
        coef: dict[str, dict[str, float]] = {s.name: {s.name: 1.0} for s in self.sources}
        for op in self.topo_order:
            merged: dict[str, float] = {}
            for e in self.in_edges[op]:
                for s, c in coef[e.source].items():
                    merged[s] = min(merged.get(s, math.inf), c * e.ratio)
            coef[op] = merged
        return coef

    # ------------------------------------------------------------------ profiles

    @cached_property
    def _profile_index(self) -> dict[tuple[str, str, str], Profile]:
        idx: dict[tuple[str, str, str], Profile] = {}
        by_type: dict[str, list[str]] = {}
        for w in self.workers:
            by_type.setdefault(w.type, []).append(w.name)
        for p in self.profiles:
            if p.worker_type is not None:
                for name in by_type.get(p.worker_type, []):
                    idx.setdefault((p.operator, p.variant, name), p)
        for p in self.profiles:  # worker-specific profiles win over type profiles
            if p.worker is not None:
                idx[(p.operator, p.variant, p.worker)] = p
        return idx

    def profile(self, operator: str, variant: str, worker: str) -> Profile | None:
        return self._profile_index.get((operator, variant, worker))

    def planning_ms(self, profile: Profile, batch: int = 1) -> float:
        """Planning latency (ms) of a whole batch: ``plan_ms`` (else p90) times the latency
        overestimate; at a batch size above 1, that batch's p90 (times ``plan_ms / p90_ms``
        where ``plan_ms`` is given). inf for a batch size the profile lacks."""
        base = profile.plan_ms if profile.plan_ms is not None else profile.p90_ms
        if batch != 1:
            p90 = profile.batch_p90_ms(batch)
            if p90 is None:
                return math.inf
            base *= p90 / profile.p90_ms
        return base * self.latency_overestimate

    def capacity(self, operator: str, variant: str, worker: str, batch: int = 1) -> float:
        """Requests/s the worker sustains for this variant in full batches of ``batch``:
        ``batch * 1000 / planning latency`` (0 without a profile or for an unprofiled size)."""
        p = self.profile(operator, variant, worker)
        if p is None:
            return 0.0
        return batch * 1000.0 / self.planning_ms(p, batch)

    def load_time(self, operator: str, variant: str, worker: str) -> float:
        p = self.profile(operator, variant, worker)
        if p is None or p.load_s is None:
            return self.default_load_s
        return p.load_s

    # ------------------------------------------------------------------ accuracy

    @cached_property
    def _accuracy_index(self) -> dict[tuple[str, ...], float]:
        ops = self.accuracy.operators
        return {tuple(r.variants[o] for o in ops): r.accuracy for r in self.accuracy.table}

    def accuracy_of(self, model_assignment: Mapping[str, str]) -> float | None:
        """End-to-end accuracy of a variant choice; None when the table lacks the combination."""
        ops = self.accuracy.operators
        if not ops:
            return math.inf if not self.accuracy.table else None
        key = tuple(model_assignment.get(o, "") for o in ops)
        return self._accuracy_index.get(key)

    def variant_combinations(self) -> Iterator[tuple[dict[str, str], float]]:
        """Every full variant assignment with a known accuracy, as (assignment, accuracy)."""
        ops = self.operators
        for combo in itertools.product(*[o.variants for o in ops]):
            assignment = {o.name: v for o, v in zip(ops, combo, strict=True)}
            acc = self.accuracy_of(assignment)
            if acc is not None:
                yield assignment, acc

    def best_accuracy(self) -> float:
        accs = [a for _, a in self.variant_combinations()]
        return max(accs) if accs else -math.inf

    # ------------------------------------------------------------------ network

    @cached_property
    def _link_index(self) -> dict[tuple[str, str], Link]:
        return {(lk.source, lk.target): lk for lk in self.links}

    def link(self, sender: str, receiver: str) -> LinkInfo:
        """Resolve the path from a worker or source to a worker.

        The most specific listed link wins: (sender, receiver), (sender, receiver's tier),
        (sender's tier, receiver), (sender's tier, receiver's tier). Unlisted cost is 0;
        unlisted bandwidth and latency come from ``network``.
        """
        st = self.endpoint_tier(sender)
        rt = self.worker_tier[receiver]
        stn, rtn = self.tiers[st], self.tiers[rt]
        idx = self._link_index
        found: Link | None = None
        for key in ((sender, receiver), (sender, rtn), (stn, receiver), (stn, rtn)):
            if key in idx:
                found = idx[key]
                break
        direction: Literal["same", "up", "back"] = (
            "same" if st == rt else ("up" if rt > st else "back")
        )
        net = self.network
        same = direction == "same"
        bw = found.bandwidth_mb_s if found and found.bandwidth_mb_s else None
        lat = found.latency_ms if found and found.latency_ms is not None else None
        return LinkInfo(
            cost_per_gb=found.cost_per_gb if found else 0.0,
            bandwidth_mb_s=bw
            or (net.same_tier_bandwidth_mb_s if same else net.cross_tier_bandwidth_mb_s),
            latency_ms=lat
            if lat is not None
            else (net.same_tier_latency_ms if same else net.cross_tier_latency_ms),
            direction=direction,
            allowed=direction != "back" or self.backward_traffic == "charged",
        )

    def comm_cost_per_kb_s(self, sender: str, receiver: str) -> float:
        """$/hour for 1 KB/s sent from sender to receiver (inf where forbidden)."""
        info = self.link(sender, receiver)
        if not info.allowed:
            return math.inf
        return info.cost_per_gb * self.comm_cost_scale * SECONDS_PER_HOUR / KB_PER_GB
