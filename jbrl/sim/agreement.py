"""Fluid vs discrete-event agreement at steady load (the check behind docs' agreement table).

For a plan and a target utilisation ``rho`` (of the plan's busiest worker, at the service
fits' mean), the sources run at their nominal rates times ``rho / rho_nominal``. The DES runs
``seeds`` replications of ``duration`` seconds; below saturation the first ``warmup`` seconds
are left out (the DES starts empty). The fluid model then runs at the arrival rate the DES
actually drew (Poisson counts wander by ~1/sqrt(n), and near saturation the waiting time is
very sensitive to the rate), over the same window. Compared: served throughput (completed
requests/s), dollars (compute + communication) and SLO attainment (within bound / finished).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.sim.base import IntervalMetrics, SimConfig
from jbrl.sim.compiled import CompiledPlan
from jbrl.sim.des import DesSimulator
from jbrl.sim.fluid import FluidSimulator
from jbrl.sim.rollout import Totals, totals_of


@dataclass
class AgreementRow:
    scenario: str
    rho: float
    duration_s: float
    seeds: int
    des_requests: int
    des_throughput: float
    fluid_throughput: float
    des_dollars: float
    fluid_dollars: float
    des_slo: float
    fluid_slo: float
    des_p50_ms: float
    fluid_p50_ms: float
    des_p99_ms: float
    fluid_p99_ms: float
    des_seconds: float  # wall time of the DES runs

    @property
    def throughput_diff(self) -> float:
        """Relative difference (fluid / DES - 1)."""
        return self.fluid_throughput / self.des_throughput - 1.0

    @property
    def dollars_diff(self) -> float:
        return self.fluid_dollars / self.des_dollars - 1.0

    @property
    def slo_diff_points(self) -> float:
        return 100.0 * (self.fluid_slo - self.des_slo)

    def to_dict(self) -> dict[str, float | str | int]:
        d = asdict(self)
        d.update(
            throughput_diff=self.throughput_diff,
            dollars_diff=self.dollars_diff,
            slo_diff_points=self.slo_diff_points,
        )
        return d


def busiest_utilization(scenario: Scenario, plan: Plan) -> float:
    """Utilisation of the plan's busiest worker at the nominal rates (mean service time; a
    worker with batch size ``b`` above 1: rate over its full-batch capacity ``b / E[S_b]``)."""
    cp = CompiledPlan(scenario, plan)
    best = 0.0
    for oi, weights in enumerate(cp.base_weights):
        demand = cp.report.operators[cp.ops[oi]].demand
        total = sum(weights.values())
        for w, wt in weights.items():
            fit = cp.service[w]
            if fit is None or total <= 0:
                continue
            bs, b = cp.batch_service[w], cp.batch[w]
            per_task = bs.fit(b).mean_s / b if bs is not None and b > 1 else fit.mean_s
            best = max(best, demand * wt / total * per_task)
    return best


def _window(intervals: list[IntervalMetrics], start: float) -> Totals:
    return totals_of([m for m in intervals if m.t_start >= start])


def compare(
    scenario: Scenario,
    plan: Plan,
    rho: float,
    duration: float,
    *,
    seeds: Sequence[int] = (0,),
    warmup: float = 300.0,
    interval: float = 60.0,
    config: SimConfig | None = None,
) -> AgreementRow:
    """Run both simulators at utilisation ``rho`` and summarise (see the module docstring)."""
    import time

    scale = rho / busiest_utilization(scenario, plan)
    nominal = scenario.nominal_rates()
    rates = {k: v * scale for k, v in nominal.items()}
    start = warmup if rho < 1.0 else 0.0
    n = round(duration / interval)
    des_tot: list[Totals] = []
    fl_tot: list[Totals] = []
    t0 = time.perf_counter()
    for seed in seeds:
        des = DesSimulator(config)
        des.reset(scenario, plan, seed=seed)
        ivs = [des.advance(interval, rates) for _ in range(n)]
        des_tot.append(_window(ivs, start))
    des_seconds = time.perf_counter() - t0
    for d in des_tot:
        drawn = d.arrivals / d.duration / (max(rates.values()) or 1.0)
        fluid = FluidSimulator(config)
        fluid.reset(scenario, plan, seed=0)
        realized = {k: v * drawn for k, v in rates.items()}
        fl_tot.append(_window([fluid.advance(interval, realized) for _ in range(n)], start))

    def pooled(ts: list[Totals]) -> tuple[float, float, float, float, float]:
        dur = sum(t.duration for t in ts)
        done = sum(t.completed + t.dropped_total for t in ts)
        comp = sum(t.completed for t in ts)
        p50 = sum(t.latency_ms["p50"] * t.completed for t in ts) / max(comp, 1e-9)
        p99 = sum(t.latency_ms["p99"] * t.completed for t in ts) / max(comp, 1e-9)
        return (
            comp / dur,
            sum(t.dollars for t in ts),
            sum(t.within_slo for t in ts) / done if done > 0 else float("nan"),
            p50,
            p99,
        )

    d_thr, d_usd, d_slo, d_p50, d_p99 = pooled(des_tot)
    f_thr, f_usd, f_slo, f_p50, f_p99 = pooled(fl_tot)
    return AgreementRow(
        scenario=scenario.name,
        rho=rho,
        duration_s=duration,
        seeds=len(seeds),
        des_requests=int(sum(t.arrivals for t in des_tot)),
        des_throughput=d_thr,
        fluid_throughput=f_thr,
        des_dollars=d_usd,
        fluid_dollars=f_usd,
        des_slo=d_slo,
        fluid_slo=f_slo,
        des_p50_ms=d_p50,
        fluid_p50_ms=f_p50,
        des_p99_ms=d_p99,
        fluid_p99_ms=f_p99,
        des_seconds=des_seconds,
    )


def markdown_table(rows: Sequence[AgreementRow]) -> str:
    head = (
        "| scenario | utilisation | DES requests | throughput DES / fluid (req/s) | diff "
        "| dollars DES / fluid | diff | SLO attainment DES / fluid | diff (points) "
        "| p50 ms DES / fluid | p99 ms DES / fluid |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.rho:g} | {r.des_requests} "
            f"| {r.des_throughput:.3f} / {r.fluid_throughput:.3f} | {100 * r.throughput_diff:+.2f} % "
            f"| {r.des_dollars:.4f} / {r.fluid_dollars:.4f} | {100 * r.dollars_diff:+.2f} % "
            f"| {100 * r.des_slo:.2f} % / {100 * r.fluid_slo:.2f} % | {r.slo_diff_points:+.2f} "
            f"| {r.des_p50_ms:.0f} / {r.fluid_p50_ms:.0f} | {r.des_p99_ms:.0f} / {r.fluid_p99_ms:.0f} |"
        )
    return head + "\n".join(lines) + "\n"
