"""Frozen, validated configuration of :class:`~jbrl.envs.serving.ServingEnv` (loaded from YAML).

```yaml
scenario: vqa                # embedded name, scenario YAML, or JellyBean inputs directory
simulator: fluid             # fluid (fast, training) | des (request level)
interval_s: 60
episode_steps: 120
history: 8                   # past intervals of source rates in the observation
load_time_s: null            # force every model load time (s); null keeps the scenario's
initial_plan: greedy         # starting plan: greedy (no solver) | milp
action: workers              # workers | ladder | combo_ladder (jbrl.envs.ladder, .combo_ladder)
ladder: null                 # the ladder designs' action table (JSON); null: greedy-built
ladder_step: 0.05            # level grid (x nominal) of a table jbrl train builds with the MILP
ladder_time_limit: 10        # ... and each of its MILP solves' time limit (s)
initial_headroom: 0.3        # ... for the first interval's rates x (1 + this)
shield: null                 # SLO shield margin (e.g. 1.1: jbrl.planning.shield); null: off
shield_check: model          # model (latency model + MILP scale-up) | table (combo_ladder's table)
reward: {dollar: 1.0, slo_miss: 0.01, reconfiguration: 0.002, shield: 0.0}
traces:                      # training-trace distribution, one component drawn per episode
  - {weight: 1, kinds: [diurnal], params: {amplitude: [0.2, 0.6], period_s: [3600, 14400]}}
  - {weight: 1, kinds: [diurnal, bursty], params: {...}}   # several kinds multiply
```

Every ``params`` value is a number or a ``[low, high]`` range drawn uniformly per episode from the
env's ``np_random`` (a ``kinds`` list of several generators multiplies their multipliers, e.g. a
diurnal day with bursts). Parameters are those of :func:`jbrl.scenario.traces.generate_trace`
(a parameter name prefixed ``bursty.`` applies only to that kind of a product).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jbrl import limits
from jbrl.documents import load_yaml
from jbrl.errors import InputError
from jbrl.scenario.loader import validate_document
from jbrl.scenario.traces import TRACE_KINDS, TRACE_PARAMS

Number = Annotated[float, Field(allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RewardWeights(_Frozen):
    """reward = -(dollar * $ in the interval + slo_miss * late requests + reconfiguration * loads
    + shield * shield interventions)."""

    dollar: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    slo_miss: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.01, description="$ per request finishing beyond the latency bound or dropped."
    )
    reconfiguration: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.002, description="$ per worker that loads a model."
    )
    shield: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0,
        description="$ per SLO-shield intervention (with env.shield): a price on leaning on "
        "the shield, so that the policy learns not to need it. Validation scores never "
        "count it (they weigh $ and late requests only).",
    )


class TraceComponent(_Frozen):
    """One family of training traces: the product of ``kinds``' multipliers."""

    weight: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    kinds: list[str] = Field(min_length=1)
    params: dict[str, Number | tuple[Number, Number]] = Field(default_factory=dict)
    step_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 60.0

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        for k in v:
            if k not in TRACE_KINDS:
                raise ValueError(f"unknown trace kind {k!r} (kinds: {', '.join(TRACE_KINDS)})")
        return v

    def model_post_init(self, __context: Any) -> None:
        for name, value in self.params.items():
            kind, _, pname = name.rpartition(".")
            kinds = [kind] if kind else self.kinds
            if kind and kind not in self.kinds:
                raise ValueError(f"params.{name}: {kind!r} is not one of kinds {self.kinds}")
            if not any(pname in TRACE_PARAMS[k] for k in kinds):
                raise ValueError(f"params.{name}: not a parameter of {', '.join(kinds)}")
            if isinstance(value, tuple) and value[0] > value[1]:
                raise ValueError(f"params.{name}: range [{value[0]}, {value[1]}] is reversed")


def default_traces() -> list[TraceComponent]:
    """Training distribution: calm and busy days, bursts, flash crowds, random walks, steps."""
    return [
        TraceComponent(
            kinds=["diurnal"],
            params={
                "mean": (0.6, 1.3),
                "amplitude": (0.1, 0.6),
                "period_s": (3600.0, 21600.0),
                "phase": (0.0, 1.0),
                "noise": (0.0, 0.08),
            },
        ),
        TraceComponent(
            kinds=["diurnal", "bursty"],
            params={
                "diurnal.mean": (0.5, 1.1),
                "diurnal.amplitude": (0.1, 0.5),
                "diurnal.period_s": (3600.0, 21600.0),
                "diurnal.phase": (0.0, 1.0),
                "diurnal.noise": (0.0, 0.05),
                "bursty.base": 1.0,
                "bursty.burst": (1.1, 1.5),
                "bursty.mean_normal_s": (300.0, 1800.0),
                "bursty.mean_burst_s": (60.0, 600.0),
                "bursty.flash_per_hour": (0.0, 1.0),
                "bursty.flash_peak": (1.2, 1.8),
                "bursty.flash_decay_s": (60.0, 600.0),
                "bursty.noise": (0.0, 0.05),
            },
        ),
        TraceComponent(
            kinds=["random_walk"],
            params={
                "mean": (0.5, 1.4),
                "sigma": (0.02, 0.1),
                "reversion_s": (600.0, 3600.0),
                "min": 0.1,
                "max": 2.0,
            },
        ),
        TraceComponent(
            kinds=["step", "random_walk"],
            params={
                "step.low": (0.3, 1.2),
                "step.high": (0.6, 1.8),
                "step.at_s": (600.0, 6600.0),
                "random_walk.sigma": (0.0, 0.04),
                "random_walk.min": 0.7,
                "random_walk.max": 1.3,
            },
        ),
    ]


class EnvConfig(_Frozen):
    """Everything :class:`~jbrl.envs.serving.ServingEnv` needs; see the module docstring."""

    scenario: str = "vqa"
    simulator: Literal["fluid", "des"] = "fluid"
    service: Literal["lognormal", "exponential", "deterministic"] = "lognormal"
    interval_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 60.0
    episode_steps: Annotated[int, Field(ge=1)] = 120
    history: Annotated[int, Field(ge=1, le=64)] = 8
    forecast: bool = Field(
        default=False,
        description="Add forecast features to the observation: per source, a damped-trend "
        "exponential-smoothing forecast 3 intervals ahead and its upper band, from the rate "
        "history (jbrl.envs.observation.forecast_features).",
    )
    load_time_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    accuracy: Number | None = Field(
        default=None, description="Accuracy target (default: the SLO's)."
    )
    load_time_mix: list[Annotated[float, Field(ge=0, allow_inf_nan=False)] | None] = Field(
        default_factory=list,
        description="Training only: each episode forces every model load time to one of these "
        "seconds, drawn uniformly (null: the scenario's own, or load_time_s), so one policy "
        "learns both quick and slow reconfiguration; the observation carries the load time.",
    )
    initial_plan: Literal["greedy", "milp", "table"] = Field(
        default="greedy",
        description="Starting plan of an episode, for the first interval's rates x (1 + "
        "initial_headroom): 'greedy' (jbrl.planning.greedy, no solver), 'milp' (the MILP, "
        "memoized on a 1 % grid; see jbrl.envs.start) or, for the ladder actions, 'table' (the "
        "cheapest plan of the action table covering it: MILP plans without a solve per "
        "episode). Training configs default to 'milp'.",
    )
    initial_headroom: Annotated[float, Field(ge=0, le=5)] = 0.3
    day_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 86400.0
    max_scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=2.0,
        description="Training traces are clipped to this multiple of the nominal rates.",
    )
    shield: Annotated[float | None, Field(ge=1, le=10, allow_inf_nan=False)] = Field(
        default=None,
        description="The SLO shield's margin (jbrl.planning.shield): before the agent's plan "
        "is applied, it is checked at the last observed rates x this margin and, predicted to "
        "miss, replaced by the cheapest scale-up that meets the target; info['shield'] says "
        "what it did. null: no shield.",
    )
    shield_check: Literal["model", "table"] = Field(
        default="model",
        description="How the shield checks and substitutes: 'model' predicts attainment with "
        "the latency model and solves the SLO-aware MILP for a scale-up (the deployment "
        "shield, jbrl.planning.shield); 'table' (action combo_ladder only) reads each rung's "
        "SLO-safe load from the action table and substitutes the cheapest covering rung, with "
        "no prediction or solve per step (jbrl.envs.table_shield: what training uses).",
    )
    obs_noise: Annotated[float, Field(ge=0, le=2)] = Field(
        default=0.0,
        description="Training only: lognormal noise (sigma) on the measured parts of the "
        "observation (utilization, backlog, last interval), so that a policy trained on the "
        "smooth fluid model also reads the noisier request-level simulator and real metrics.",
    )
    action: Literal["workers", "ladder", "combo_ladder"] = Field(
        default="workers",
        description="Action design: 'workers' (a variant combination and an operator per "
        "worker), 'ladder' (one of a ladder of complete plans ordered by capacity, or keep; "
        "see jbrl.envs.ladder) or 'combo_ladder' (a variant combination and a capacity "
        "level, each pair an SLO-aware MILP plan of that combination, or keep; see "
        "jbrl.envs.combo_ladder).",
    )
    ladder: str | None = Field(
        default=None,
        description="The action table's JSON (action 'ladder': a plan ladder, ladder.json; "
        "'combo_ladder': a combination ladder, combo_ladder.json); relative paths are read "
        "from the config's folder. None: a table passed to the env, else one built by the "
        "greedy planner (jbrl train builds it with the MILP).",
    )
    ladder_step: Annotated[float, Field(ge=0.01, le=1, allow_inf_nan=False)] = Field(
        default=0.05,
        description="The load-level grid (x nominal) of an action table jbrl train builds "
        "with the MILP (env.ladder unset): one MILP solve per level and combination, so 0.1 "
        "halves the build of a large scenario's table.",
    )
    ladder_time_limit: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = Field(
        default=10.0,
        description="Time limit (s) of each MILP solve of an action table jbrl train builds: "
        "the best plan found by then is the rung.",
    )
    reward: RewardWeights = Field(default_factory=RewardWeights)
    traces: list[TraceComponent] = Field(default_factory=default_traces, min_length=1)

    @property
    def episode_s(self) -> float:
        return self.interval_s * self.episode_steps

    @model_validator(mode="after")
    def _within_limits(self) -> EnvConfig:
        """An episode's length within the limits (:mod:`jbrl.limits`)."""
        limits.check("intervals", self.episode_steps, field="episode_steps", what="an episode")
        limits.check(
            "trace_s",
            self.episode_s,
            field="episode_steps",
            what=f"an episode's length ({self.episode_s:g} s)",
        )
        for i, c in enumerate(self.traces):
            n = self.episode_s / c.step_s
            if n > limits.current().trace_rows:
                raise limits.over_limit(
                    "trace_rows",
                    c.step_s,
                    field=f"traces[{i}].step_s",
                    what=f"the rows of an episode's trace ({n:.3g})",
                )
        return self


def load_env_config(
    data: str | Path | dict[str, Any] | None, *, file: str | None = None, **overrides: Any
) -> EnvConfig:
    """An :class:`EnvConfig` from a YAML file, a mapping or None (defaults), with overrides;
    ``file`` names where a mapping came from in error messages."""
    from_file = not (data is None or isinstance(data, dict))
    if data is None:
        raw: dict[str, Any] = {}
    elif isinstance(data, dict):
        raw = dict(data)
    else:
        raw = load_yaml(data) or {}
        file = str(data)
        if not isinstance(raw, dict):
            raise InputError("an env config must be a YAML mapping", file=file, value=raw)
    file = file or "<env config>"
    if from_file and isinstance(raw.get("ladder"), str):
        raw["ladder"] = str(Path(data).parent / raw["ladder"])  # type: ignore[arg-type]
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return validate_document(EnvConfig, raw, file)
