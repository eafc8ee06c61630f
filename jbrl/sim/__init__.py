"""Simulation: a fast fluid model and a request-level discrete-event model (simpy).

Both implement :class:`~jbrl.sim.base.Simulator` (``reset``, ``apply``, ``advance``) and are
driven over a trace by :func:`~jbrl.sim.base.run`. Never imports gymnasium or torch.
"""

from jbrl.sim.base import (
    DROP_REASONS,
    SERVICE_FAMILIES,
    IntervalMetrics,
    SimConfig,
    SimResult,
    Simulator,
    Totals,
    run,
    totals_of,
)
from jbrl.sim.des import DesSimulator
from jbrl.sim.faults import FaultSchedule, LinkSlowdown, WorkerCrash, load_faults
from jbrl.sim.fluid import FluidSimulator

SIMULATORS = {"fluid": FluidSimulator, "des": DesSimulator}


def make_simulator(kind: str, config: SimConfig | None = None) -> Simulator:
    """``fluid`` or ``des``."""
    from jbrl.errors import InputError

    if kind not in SIMULATORS:
        raise InputError(
            f"unknown simulator (choose from {', '.join(SIMULATORS)})", field="--sim", value=kind
        )
    return SIMULATORS[kind](config)


__all__ = [
    "DROP_REASONS",
    "SERVICE_FAMILIES",
    "SIMULATORS",
    "DesSimulator",
    "FaultSchedule",
    "FluidSimulator",
    "IntervalMetrics",
    "LinkSlowdown",
    "SimConfig",
    "SimResult",
    "Simulator",
    "Totals",
    "WorkerCrash",
    "load_faults",
    "make_simulator",
    "run",
    "totals_of",
]
