"""Simulation: a fast fluid model and a request-level discrete-event model (simpy).

Both implement :class:`~jbrl.sim.base.Simulator` (``reset``, ``apply``, ``advance``) and are
driven over a trace by the one run loop, :func:`~jbrl.sim.rollout.rollout`. Service times and
the queueing formulas are those of the latency model, :mod:`jbrl.planning.latency`. Never
imports gymnasium or torch.
"""

from jbrl.sim.base import DROP_REASONS, SERVICE_FAMILIES, IntervalMetrics, SimConfig, Simulator
from jbrl.sim.des import DesSimulator
from jbrl.sim.faults import FaultSchedule, LinkSlowdown, WorkerCrash, load_faults
from jbrl.sim.fluid import FluidSimulator
from jbrl.sim.rollout import (
    DecisionPoint,
    RunAccumulator,
    SimResult,
    Totals,
    rollout,
    totals_of,
)

SIMULATORS = {"fluid": FluidSimulator, "des": DesSimulator}


def make_simulator(kind: str, config: SimConfig | None = None) -> Simulator:
    """``fluid`` or ``des``."""
    from jbrl.errors import InputError, Param

    if kind not in SIMULATORS:
        raise InputError(
            f"unknown simulator (choose from {', '.join(SIMULATORS)})",
            field=Param.SIMULATOR,
            value=kind,
        )
    return SIMULATORS[kind](config)


__all__ = [
    "DROP_REASONS",
    "SERVICE_FAMILIES",
    "SIMULATORS",
    "DecisionPoint",
    "DesSimulator",
    "FaultSchedule",
    "FluidSimulator",
    "IntervalMetrics",
    "LinkSlowdown",
    "RunAccumulator",
    "SimConfig",
    "SimResult",
    "Simulator",
    "Totals",
    "WorkerCrash",
    "load_faults",
    "make_simulator",
    "rollout",
    "totals_of",
]
