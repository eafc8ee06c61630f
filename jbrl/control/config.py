"""The options of the online controller: one frozen, validated dataclass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from jbrl.errors import InputError


@dataclass(frozen=True)
class ControllerConfig:
    """Options of the control loop.

    * ``interval_s``: control interval (trace seconds).
    * ``headroom``: plans must have capacity for the observed load times ``1 + headroom``;
      fallback plans are made with ``max_util = 1 / (1 + headroom)``.
    * ``accuracy``: accuracy target (default: the scenario's SLO).
    * ``policy_timeout_s``: wall seconds a policy may take to decide.
    * ``fallback_time_limit_s``: HiGHS time limit of the fallback MILP.
    * ``duration_s``: stop after this much trace time (None: until stopped).
    * ``health_checks``: backend health polls per interval (crash reaction).
    * ``state_file``, ``log_dir``, ``tensorboard``: persistence and logging.
    * ``history``: observed intervals kept for the policy (its ``rate_history``).
    * ``shield``: the SLO shield (:mod:`jbrl.planning.shield`) on every policy decision: a plan
      predicted to miss the SLO at the observed load x ``1 + headroom`` is replaced by the
      cheapest scale-up that meets it, before the checks (on by default).
    """

    interval_s: float = 60.0
    headroom: float = 0.1
    accuracy: float | None = None
    policy_timeout_s: float = 10.0
    fallback_time_limit_s: float = 10.0
    duration_s: float | None = None
    health_checks: int = 4
    state_file: Path | None = None
    log_dir: Path | None = None
    tensorboard: bool = True
    history: int = 120
    shield: bool = True

    def __post_init__(self) -> None:
        for name in ("interval_s", "policy_timeout_s", "fallback_time_limit_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise InputError("must be a positive number of seconds", field=name, value=v)
        if not (0 <= self.headroom < 10):
            raise InputError("must be in [0, 10)", field="headroom", value=self.headroom)
        if self.duration_s is not None and not self.duration_s > 0:
            raise InputError("must be positive", field="duration_s", value=self.duration_s)
        if self.health_checks < 1:
            raise InputError("must be >= 1", field="health_checks", value=self.health_checks)
