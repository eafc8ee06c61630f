"""The fluid simulator: per interval, flows and queues in expectation (fast, for training)."""

from jbrl.sim.fluid.simulator import FluidIntervalMetrics, FluidSimulator, service_cdf

__all__ = ["FluidIntervalMetrics", "FluidSimulator", "service_cdf"]
