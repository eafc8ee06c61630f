"""jbrl: plan, simulate and adapt ML inference workflows on tiered edge/cloud infrastructure.

Follows JellyBean (Wu, Lentz, Zhuo, Lu, PVLDB 16(3), 2022): choose the cheapest model variants
that meet an accuracy target and place them on workers across tiers, counting compute and
data-transfer cost. jbrl adds an exact MILP planner, simulators and an RL policy for changing load.
"""

__version__ = "0.1.0"
