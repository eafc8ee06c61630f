"""The exact planner: one mixed-integer linear program solved by HiGHS.

:class:`MilpPlanner` (registered as ``milp``), :func:`max_rate` (the largest sustainable
multiple of the source rates), :func:`infeasibility_reason` (numbers for an infeasible request)
and :func:`prune_dominated` (variant combinations another one makes useless).

Modules, in the order a solve uses them:

* :mod:`~jbrl.planning.milp.planner` — :class:`MilpPlanner`: options, ``plan`` and
  ``max_rate`` (the model is stated in its docstring);
* :mod:`~jbrl.planning.milp.combos` — the variant combinations a request admits, pruning;
* :mod:`~jbrl.planning.milp.layout` — worker groups, capacities, where each operator may run;
* :mod:`~jbrl.planning.milp.model` — the columns and rows (:func:`build_model`);
* :mod:`~jbrl.planning.milp.highs` — the small declarative model builder over highspy;
* :mod:`~jbrl.planning.milp.warm_start` — a start plan as a partial solution;
* :mod:`~jbrl.planning.milp.extract` — HiGHS's status and the solution as a plan;
* :mod:`~jbrl.planning.milp.bounds` — :class:`MaxRate` and why a request is infeasible.
"""

from jbrl.planning.milp.bounds import MaxRate
from jbrl.planning.milp.combos import prune_dominated
from jbrl.planning.milp.planner import MilpPlanner, infeasibility_reason, max_rate

__all__ = ["MaxRate", "MilpPlanner", "infeasibility_reason", "max_rate", "prune_dominated"]
