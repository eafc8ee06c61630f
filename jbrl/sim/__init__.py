"""Simulation: a fast fluid model and a request-level discrete-event model (simpy).

Both implement :class:`~jbrl.sim.base.Simulator` (``reset``, ``apply``, ``advance``) and are
driven over a trace by the one run loop, :func:`~jbrl.sim.rollout.rollout`. Service times and
the queueing formulas are those of the latency model, :mod:`jbrl.planning.latency`. Never
imports gymnasium or torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from jbrl.sim.base import DROP_REASONS, SERVICE_FAMILIES, IntervalMetrics, SimConfig, Simulator
from jbrl.sim.faults import FaultSchedule, LinkSlowdown, WorkerCrash, load_faults
from jbrl.sim.rollout import (
    DecisionPoint,
    RunAccumulator,
    SimResult,
    Totals,
    rollout,
    totals_of,
)

if TYPE_CHECKING:
    from jbrl.sim.des import DesSimulator
    from jbrl.sim.fluid import FluidSimulator

    SIMULATORS: dict[str, type[Simulator]]

# The simulators themselves (simpy, the compiled kernels) load on first use: a command that
# only plans, e.g. ``jbrl plan``, does not pay for them (about 0.1 s of its start-up).
_LAZY = {"DesSimulator": "jbrl.sim.des", "FluidSimulator": "jbrl.sim.fluid"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name == "SIMULATORS":
        return {"fluid": __getattr__("FluidSimulator"), "des": __getattr__("DesSimulator")}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_simulator(kind: str, config: SimConfig | None = None) -> Simulator:
    """``fluid`` or ``des``."""
    from jbrl.errors import InputError, Param

    sims = __getattr__("SIMULATORS")
    if kind not in sims:
        raise InputError(
            f"unknown simulator (choose from {', '.join(sims)})",
            field=Param.SIMULATOR,
            value=kind,
        )
    return sims[kind](config)


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
