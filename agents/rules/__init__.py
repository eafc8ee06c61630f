"""Baseline control policies: the planners of :mod:`jbrl.planning.base` turned into online rules
(ARCHITECTURE.md, "RL environment and policies"). PPO is judged against these.

=========================  ==========================================================================
spec (defaults)            rule
=========================  ==========================================================================
``milp-reactive``          every interval, solve the MILP on the last observed rates x (1 + headroom);
``:headroom=0.2``          keep the current plan when the re-solve is not strictly cheaper and the
                           current plan still covers the target (the MILP has many ties)
``milp-hysteresis``        target = max of the last ``window`` rates x (1 + headroom); scale up at
``:headroom=0.5:window=5   once, down only after a saving of more than ``tolerance`` has lasted
:down_after=10             ``down_after`` intervals; when it re-plans, it takes the plan with the most
:tolerance=0.05            capacity among those within ``tolerance`` of the cheapest (plan cost is a
:reconfig_penalty=0.2``    step function of the rate, so extra capacity is often free); its solves
                           charge ``reconfig_penalty`` $/h per model load
``milp-predictive``       ``milp-hysteresis`` planning for max(last ``window`` rates, the upper band
``:headroom=0.2:horizon=3  of a damped-trend exponential-smoothing forecast over ``horizon``
:z=2``                     intervals, z x the smoothed one-step error) x (1 + headroom)
``milp-oracle``            clairvoyant reference: re-solve on the true peak of the coming interval
``:headroom=0``            (``ControlState.lookahead``), with the reactive keep rule
``oracle``                 clairvoyant bound: the cheapest plan *sequence* given the whole trace
``:windows=1,4,16``        (dynamic programming over the MILP's plans for the true peaks of windows
``:risk_budget=0.1``       of 1, 4, 16 intervals and of the trace), charging model-load downtime:
                           a switch is safe when the new plan without its loading workers covers
                           the peak during the load; unsafe ones may put at most ``risk_budget`` x
                           the SLO's allowance of late requests at risk
                           (:mod:`~jbrl.agents.rules.sequence`)
``milp-static``            one MILP plan for the trace's peak x (1 + headroom), never changed
(``milp-static-peak``)     (JellyBean-style one-shot; reads the peak from the lookahead once)
``jellybean``              one JellyBean-heuristic plan for the trace's peak, never changed
``jellybean-reactive``     ``milp-reactive`` with the JellyBean heuristic as the planner
``autoscaler:target=2     Ray Serve's autoscaler with its documented defaults: variants fixed (those
:min=1:max=0:up_delay=30   of the cheapest plan at the first decision); per operator (deployment),
:down_delay=600            replicas (workers) = average ongoing requests over ``look_back`` s /
:up_factor=1:down_factor=1 ``target``, smoothed, bounded, after ``up_delay`` / ``down_delay`` s
:look_back=30:margin=0.2`` (:mod:`~jbrl.agents.rules.serve_rule`); workers added cheapest-first
                           where the plan stays valid, re-placed by the capacity-only MILP when they
                           cannot be; scale-downs only to a count stable at the load (``margin``)
=========================  ==========================================================================

Every planner policy (:class:`~jbrl.agents.rules.base.PlannerPolicy`) plans with the SLO-aware
MILP (plans meet the scenario's latency bound at its attainment target by the latency model,
:mod:`jbrl.planning.milp`) and also takes ``max_util`` (unset by default; given, capacity-only
planning at that cap on worker utilization), ``time_limit`` (seconds per solve) and ``grid``
(default 0; ``grid=0.01`` rounds targets up to multiples of 1 % of the nominal rates, for
memoization over noisy rates, as the imitation teacher of :mod:`jbrl.agents.ppo.imitation`
does). A target beyond what the infrastructure sustains is clamped to the largest sustainable
multiple of it (:func:`jbrl.planning.milp.max_rate`).

Modules: :mod:`~jbrl.agents.rules.base` (the planner policies' base),
:mod:`~jbrl.agents.rules.reactive`, :mod:`~jbrl.agents.rules.hysteresis`,
:mod:`~jbrl.agents.rules.predictive`,
:mod:`~jbrl.agents.rules.oracle`, :mod:`~jbrl.agents.rules.sequence` (``oracle``),
:mod:`~jbrl.agents.rules.static`,
:mod:`~jbrl.agents.rules.autoscaler` (with :mod:`~jbrl.agents.rules.serve_rule`, Ray Serve's
replica-count rule), :mod:`~jbrl.agents.rules.cache` (the one memo of planner
calls).

**Coverage.** At run time a plan's routing weights stay fixed (:mod:`jbrl.sim.compiled`): each
worker keeps its share of its operator's traffic. A plan *covers* rates R when every worker's
share of R stays within its capacity and, where the scenario has a latency bound, the plan
rescaled to R is predicted to meet the SLO's attainment target (with ``max_util`` given: every
worker within ``max_util`` of its capacity); its cost at R is the plan rescaled to R
(:func:`rescale_plan`): the same workers, communication proportional to the traffic.

**Memoization.** Planner calls are memoized per policy instance on (scenario without load times,
rates, current plan's worker -> model map), so the seeds of an evaluation reuse the first seed's
solves. A memoized solve still counts at its original solve time in the decision time: see
:attr:`PlannerPolicy.cached_solve_s`. Policies with the same planner options may share one memo
when asked (:meth:`PlanCache.share`): the imitation warm start's teacher candidates do.
"""

from jbrl.agents.rules.autoscaler import AutoscalerPolicy
from jbrl.agents.rules.base import PlannerPolicy, lookahead_of
from jbrl.agents.rules.cache import PlanCache
from jbrl.agents.rules.hysteresis import MilpHysteresisPolicy
from jbrl.agents.rules.oracle import MilpOraclePolicy
from jbrl.agents.rules.predictive import MilpPredictivePolicy
from jbrl.agents.rules.reactive import JellyBeanReactivePolicy, MilpReactivePolicy
from jbrl.agents.rules.sequence import OraclePolicy, cheapest_sequence
from jbrl.agents.rules.static import JellyBeanStaticPolicy, MilpStaticPolicy
from jbrl.planning.coverage import (
    COST_RTOL,
    TIE_PENALTY,
    Coverage,
    coverage,
    design_rates,
    effective_capacity,
    plan_signature,
    rescale_plan,
    scaled,
    scenario_fingerprint,
    served_rates,
    variants_of,
)

__all__ = [
    "COST_RTOL",
    "TIE_PENALTY",
    "AutoscalerPolicy",
    "Coverage",
    "JellyBeanReactivePolicy",
    "JellyBeanStaticPolicy",
    "MilpHysteresisPolicy",
    "MilpOraclePolicy",
    "MilpPredictivePolicy",
    "MilpReactivePolicy",
    "MilpStaticPolicy",
    "OraclePolicy",
    "PlanCache",
    "PlannerPolicy",
    "cheapest_sequence",
    "coverage",
    "design_rates",
    "lookahead_of",
    "effective_capacity",
    "plan_signature",
    "rescale_plan",
    "scaled",
    "scenario_fingerprint",
    "served_rates",
    "variants_of",
]
