"""The pieces of one controller decision, as types.

* :class:`PolicyCaller` asks the policy for a plan in a worker thread with a timeout and says
  what went wrong, if anything, as a :class:`PolicyFailure` (set where the failure happens, not
  read back from a message);
* :class:`Vetted` is the outcome of checking the policy's plan (the plan to run, where it came
  from, why the MILP fallback replaced it);
* :class:`Decision` is what ``decisions.jsonl`` records of one decision;
* :class:`OverrideResult` is what became of an operator's plan (``POST /plan``): an
  :class:`OverrideOutcome` that the HTTP layer maps to a status code, and the response body.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jbrl.agents.policy import ControlState, Policy
from jbrl.control.backends.base import PlanDiff
from jbrl.planning.plan import Plan

# --------------------------------------------------------------------------- the policy


class PolicyFailure(StrEnum):
    """Why the policy handed over no plan to check."""

    TIMEOUT = "timeout"  # it took longer than ``policy_timeout_s``
    BUSY = "busy"  # it is still running a decision that timed out
    ERROR = "error"  # it raised
    NOT_A_PLAN = "not_a_plan"  # it returned something other than a Plan or None

    @property
    def reason_label(self) -> str:
        """The key under which a fallback for this failure is counted (``fallback_reasons`` in
        the summary, label ``reason`` of ``jbrl_fallbacks_total``). A decision skipped because
        the timed-out one still runs counts as a timeout, and a wrong return type as an error,
        as they always have."""
        if self in (PolicyFailure.TIMEOUT, PolicyFailure.BUSY):
            return "policy_timeout"
        return "policy_error"


@dataclass(frozen=True)
class PolicyAnswer:
    """The policy's plan, or the failure and its description (``fallback_reason`` in the
    log); ``ms``: wall milliseconds the call took (None when it timed out or never started)."""

    plan: Plan | None
    failure: PolicyFailure | None = None
    message: str | None = None
    ms: float | None = None


class PolicyCaller:
    """Runs ``policy.decide`` in a worker thread and waits at most ``timeout_s``.

    A decision that times out cannot be interrupted: it keeps the thread, and until it returns
    every later call answers :attr:`PolicyFailure.BUSY` at once.
    """

    def __init__(self, policy: Policy, timeout_s: float) -> None:
        self.policy = policy
        self.timeout_s = timeout_s
        self._executor = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jbrl-policy")
        self._stuck: cf.Future[Any] | None = None

    def ask(self, state: ControlState, current: Plan | None) -> PolicyAnswer:
        """The policy's answer for ``state``; a ``None`` from the policy keeps ``current``."""
        if self._stuck is not None:
            if not self._stuck.done():
                return PolicyAnswer(
                    None,
                    PolicyFailure.BUSY,
                    "the policy is still busy with a decision that timed out",
                )
            self._stuck = None
        t = time.perf_counter()
        fut = self._executor.submit(self.policy.decide, state)
        try:
            plan = fut.result(timeout=self.timeout_s)
        except cf.TimeoutError:
            self._stuck = fut
            message = f"the policy timed out after {self.timeout_s:g} s"
            return PolicyAnswer(None, PolicyFailure.TIMEOUT, message)
        except Exception as exc:
            ms = (time.perf_counter() - t) * 1000.0
            message = f"the policy raised {type(exc).__name__}: {exc}"
            return PolicyAnswer(None, PolicyFailure.ERROR, message, ms)
        ms = (time.perf_counter() - t) * 1000.0
        if plan is None:
            return PolicyAnswer(current, ms=ms)  # None: keep the current plan (still checked)
        if not isinstance(plan, Plan):
            message = f"the policy returned {type(plan).__name__}, not a Plan"
            return PolicyAnswer(None, PolicyFailure.NOT_A_PLAN, message, ms)
        return PolicyAnswer(plan, ms=ms)

    def close(self) -> None:
        """Stop the worker thread (a decision still running is abandoned)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Vetted:
    """The plan to run after the checks: the candidate when it passed, else the MILP fallback
    (``source`` ``fallback``, ``reason`` the first failure, ``how`` the attempt that produced
    it; ``plan`` None when not even the fallback found one)."""

    plan: Plan | None
    source: str
    reason: str | None = None
    problems: list[str] = field(default_factory=list)
    how: str | None = None
    shield: dict[str, Any] | None = None
    """The SLO shield's verdict on the policy's plan (None: not checked by it)."""


@dataclass(frozen=True)
class Decision:
    """One decision of the controller (what ``decisions.jsonl`` records)."""

    seq: int
    time_s: float
    trigger: str  # start | resume | interval | crash | surge | override
    source: str  # policy | fallback | override | resume | keep | apply_failed
    plan: Plan
    diff: PlanDiff
    decision_ms: float
    policy_ms: float | None = None
    metrics_ms: float | None = None
    apply_s: float = 0.0
    fallback_reason: str | None = None
    problems: list[str] = field(default_factory=list)
    how: str | None = None
    load: dict[str, float] = field(default_factory=dict)
    down: list[str] = field(default_factory=list)
    shield: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        return not self.diff.empty


# --------------------------------------------------------------------------- overrides

MAX_HOLD_INTERVALS = 10_000


class OverrideOutcome(StrEnum):
    """What became of an operator's plan."""

    APPLIED = "applied"
    BAD_HOLD = "bad_hold"  # hold_intervals is not an integer in [0, MAX_HOLD_INTERVALS]
    MALFORMED = "malformed"  # not a plan
    REJECTED = "rejected"  # a plan that fails the checks


def override_request(data: Any, hold_intervals: int = 1) -> tuple[Any, int | None]:
    """(the plan's JSON, hold_intervals) of an override given as a plan or as ``{"plan": ...,
    "hold_intervals": n}``; hold_intervals None when it is not an integer in
    ``[0, MAX_HOLD_INTERVALS]``."""
    hold: Any = hold_intervals
    if isinstance(data, dict) and "plan" in data:
        hold = data.get("hold_intervals", hold)
        data = data["plan"]
    if isinstance(hold, bool) or not isinstance(hold, int) or not 0 <= hold <= MAX_HOLD_INTERVALS:
        return data, None
    return data, hold


@dataclass(frozen=True)
class OverrideResult:
    """The outcome of :meth:`~jbrl.control.controller.Controller.override` and the response
    body (:meth:`to_dict`): the reasons of a refusal, or what the applied plan changed."""

    outcome: OverrideOutcome
    reasons: list[str] = field(default_factory=list)
    seq: int | None = None
    hold_intervals: int | None = None
    diff: PlanDiff | None = None
    apply_s: float = 0.0

    @property
    def applied(self) -> bool:
        return self.outcome is OverrideOutcome.APPLIED

    def to_dict(self) -> dict[str, Any]:
        if self.outcome is OverrideOutcome.BAD_HOLD:
            return {"error": f"hold_intervals must be an integer in [0, {MAX_HOLD_INTERVALS}]"}
        if self.outcome is OverrideOutcome.MALFORMED:
            return {"error": "malformed plan", "reasons": list(self.reasons)}
        if self.outcome is OverrideOutcome.REJECTED:
            return {"error": "plan rejected", "reasons": list(self.reasons)}
        assert self.diff is not None
        return {
            "applied": True,
            "seq": self.seq,
            "hold_intervals": self.hold_intervals,
            "diff": self.diff.to_dict(),
            "apply_s": self.apply_s,
        }
