"""The exact planner: one mixed-integer linear program solved by HiGHS.

:class:`MilpPlanner` (registered as ``milp``), :func:`max_rate` (the largest sustainable
multiple of the source rates) and :func:`infeasibility_reason` (numbers for an infeasible
request). :mod:`~jbrl.planning.milp.highs` is the small declarative model builder over highspy.
"""

from jbrl.planning.milp.planner import (
    MaxRate,
    MilpPlanner,
    infeasibility_reason,
    max_rate,
    prune_dominated,
)

__all__ = ["MaxRate", "MilpPlanner", "infeasibility_reason", "max_rate", "prune_dominated"]
