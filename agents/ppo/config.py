"""``jbrl train`` configuration: frozen, validated, loaded from YAML (``configs/train/``).

```yaml
seed: 0
n_envs: 4
total_timesteps: 1000000
env: {...}                   # an EnvConfig mapping, or a path to an env YAML
ppo: {learning_rate: 1e-4, n_steps: 512, ...}          # MaskablePPO hyperparameters
bc:                          # imitation warm start (null: none)
  teacher: "milp-hysteresis:headroom=0.25:window=4:down_after=6"   # a rules/ policy spec
  candidates: ["milp-hysteresis:headroom=0.2", "milp-reactive:headroom=0.2"]  # optional
eval: {every_steps: 15000, baseline: "milp-reactive:headroom=0.2"}  # validation (null: none)
```

The imitation teacher and the validation baseline are policy specs of the one policy registry
(:func:`jbrl.agents.policy.get_policy`), checked when the config is loaded: a name means the
same policy in training, ``jbrl evaluate`` and the controller. Training episodes start from the
MILP's plan unless the env config says otherwise (``env.initial_plan``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jbrl import limits
from jbrl.agents.policy import get_policy, parse_policy_spec
from jbrl.documents import load_yaml
from jbrl.envs.config import EnvConfig, RewardWeights
from jbrl.envs.workload import ALL_TRACE_SPECS, EVAL_TRACE_SPECS
from jbrl.errors import InputError
from jbrl.scenario.loader import validate_document

DEFAULT_TEACHER = (
    "milp-hysteresis:headroom=0.2:window=3:down_after=5:tolerance=0.02:reconfig_penalty=0"
    ":max_scale=1.5:grid=0.01"
)
"""The default imitation teacher: MILP-hysteresis with a short window, a 2 % tolerance, no
reconfiguration penalty and at most 1.5x the target as free capacity, on a 1 % rate grid (so
that the teacher's solves are memoized over noisy training rates)."""
DEFAULT_BASELINE = "milp-reactive:headroom=0.2"
"""The policy validation compares PPO with."""


def check_teacher_spec(spec: str) -> str:
    """``spec`` if it names a teacher: a deployable rule policy (:func:`check_rule_spec`) or
    the combination-ladder teacher (:mod:`jbrl.agents.ppo.table_teacher`); ValueError
    otherwise."""
    from jbrl.agents.ppo.table_teacher import TABLE_TEACHER, table_params

    try:
        if parse_policy_spec(spec)[0] == TABLE_TEACHER:
            table_params(spec)
            return spec
    except InputError as exc:
        raise ValueError(f"{exc.field or 'policy'}: {exc}") from None
    return check_rule_spec(spec, deployable=True)


def check_rule_spec(spec: str, deployable: bool = False) -> str:
    """``spec`` if it names a rule policy with valid parameters (the policy is built once to
    check them) and, with ``deployable``, one that does not read the future (a teacher acts
    in the env, where there is no future to read); ValueError otherwise (pydantic reports it
    under the field's name)."""
    try:
        name, _ = parse_policy_spec(spec)
        if name == "ppo":
            raise ValueError("must be a rule policy (jbrl.agents.rules), not ppo")
        policy = get_policy(spec)
    except InputError as exc:
        raise ValueError(f"{exc.field or 'policy'}: {exc}") from None
    if deployable and policy.clairvoyant:
        raise ValueError(
            f"{spec!r} reads the future trace (a reference policy); a teacher must be a "
            "deployable rule policy"
        )
    return spec


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, le=1)]
Count = Annotated[int, Field(ge=1)]


class PpoHyper(_Frozen):
    """MaskablePPO hyperparameters (sb3-contrib names)."""

    learning_rate: Positive = 1e-4
    n_steps: Annotated[int, Field(ge=2)] = 512
    batch_size: Annotated[int, Field(ge=2)] = 256
    n_epochs: Count = 5
    gamma: Fraction = 0.97
    gae_lambda: Annotated[float, Field(ge=0, le=1)] = 0.9
    clip_range: Positive = 0.1
    ent_coef: NonNeg = 0.0
    vf_coef: NonNeg = 0.5
    max_grad_norm: Positive = 0.5
    target_kl: Positive | None = 0.02
    net_arch: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [128, 128], min_length=1, max_length=8
    )


class ImitationConfig(_Frozen):
    """Warm start from a rule policy (:mod:`jbrl.agents.ppo.imitation`)."""

    teacher: str = Field(
        default=DEFAULT_TEACHER,
        description="Policy spec of the teacher (a jbrl.agents.rules policy, e.g. "
        "'milp-hysteresis:headroom=0.25:window=4:down_after=6').",
    )
    episodes: Count = 48
    dagger_rounds: Annotated[int, Field(ge=0)] = 1
    dagger_episodes: Count = 24
    epochs: Count = 30
    batch_size: Count = 256
    learning_rate: Positive = 1e-3
    candidates: list[str] = Field(
        default_factory=list,
        description="Teacher specs tried on tune_episodes training-distribution episodes; the "
        "one with the best mean reward teaches (empty: teacher).",
    )
    tune_episodes: Count = 8

    @field_validator("teacher")
    @classmethod
    def _teacher(cls, v: str) -> str:
        return check_teacher_spec(v)

    @field_validator("candidates")
    @classmethod
    def _candidates(cls, v: list[str]) -> list[str]:
        return [check_teacher_spec(s) for s in v]


class EvalConfig(_Frozen):
    """Periodic validation on held-out traces (validation seed, never the test seed 0)."""

    every_steps: Count = 20_000
    traces: list[str] = Field(default_factory=lambda: list(EVAL_TRACE_SPECS), min_length=1)
    seed: Annotated[int, Field(ge=0)] = 1
    duration_s: Positive = 7200.0

    @field_validator("traces")
    @classmethod
    def _traces(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in ALL_TRACE_SPECS:
                raise ValueError(
                    f"unknown validation trace {name!r} (traces: {', '.join(ALL_TRACE_SPECS)})"
                )
        return v

    @field_validator("duration_s")
    @classmethod
    def _duration(cls, v: float) -> float:
        limits.check("trace_s", v, field="eval.duration_s", what="the validation trace length")
        return v

    baseline: str | None = Field(
        default=DEFAULT_BASELINE,
        description="Policy spec run once on the validation traces for comparison "
        "(eval_<name>/... in TensorBoard); null: none (a MILP baseline's solves take minutes "
        "on many validation traces).",
    )

    score: RewardWeights | None = Field(
        default=None,
        description="Weights of the validation score, $ per hour of dollar x $ + slo_miss x late "
        "requests (reconfiguration is not used): it picks the best checkpoint and, in a sweep, "
        "the best trial. None: env.reward. A sweep gives all its trials the same weights.",
    )

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: str | None) -> str | None:
        return None if v is None else check_rule_spec(v)


class TrainConfig(_Frozen):
    """``jbrl train`` configuration (YAML; see the module docstring)."""

    env: EnvConfig = Field(default_factory=lambda: EnvConfig(initial_plan="milp"))
    seed: Annotated[int, Field(ge=0)] = 0
    n_envs: Count = 4
    total_timesteps: Count = 200_000
    threads: Count = 1
    table_processes: Count = Field(
        default=1,
        description="Spawned processes that solve a combination ladder's ladders when jbrl "
        "train builds the action table (env.action combo_ladder without env.ladder).",
    )
    ppo: PpoHyper = Field(default_factory=PpoHyper)
    bc: ImitationConfig | None = Field(default_factory=ImitationConfig)
    eval: EvalConfig | None = Field(default_factory=EvalConfig)
    checkpoint_every: Count = 20_000
    freeze_normalization: bool = Field(
        default=True,
        description="Keep VecNormalize statistics from the warm start fixed during PPO.",
    )
    runs_dir: str = Field(default="runs", min_length=1)

    @model_validator(mode="after")
    def _within_limits(self) -> TrainConfig:
        """Sizes of the run within the limits (:mod:`jbrl.limits`)."""
        limits.check("envs", self.n_envs, field="n_envs", what="parallel environments")
        limits.check("threads", self.threads, field="threads", what="torch threads")
        limits.check("processes", self.table_processes, field="table_processes")
        limits.check("timesteps", self.total_timesteps, field="total_timesteps")
        return self

    @model_validator(mode="before")
    @classmethod
    def _milp_start(cls, data: Any) -> Any:
        """Training episodes start from the MILP's plan unless ``env.initial_plan`` is set."""
        if isinstance(data, dict) and isinstance(data.get("env"), dict):
            env = data["env"]
            if "initial_plan" not in env:
                return {**data, "env": {**env, "initial_plan": "milp"}}
        return data


def load_train_config(path: str | Path | dict[str, Any], **overrides: Any) -> TrainConfig:
    """Read and validate a training config; ``env`` may be a mapping or a path to an env YAML
    (relative to the config file)."""
    file = "<train config>"
    if isinstance(path, dict):
        raw = dict(path)
        base = Path.cwd()
    else:
        file = str(path)
        raw = load_yaml(path) or {}
        base = Path(path).parent
        if not isinstance(raw, dict):
            raise InputError("a training config must be a YAML mapping", file=file, value=raw)
    if isinstance(raw.get("env"), str):
        env_file = base / raw["env"]
        raw["env"] = load_yaml(env_file) or {}
        if not isinstance(raw["env"], dict):
            raise InputError("an env config must be a YAML mapping", file=str(env_file))
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return validate_document(TrainConfig, raw, file)


def check_before_training(config: TrainConfig) -> None:
    """What a run will read, checked before any work (no folder made, nothing solved): the
    scenario, the load times, the ladder file the env names, the accuracy target."""
    from jbrl.envs.serving import LADDER_FILES, load_ladder
    from jbrl.planning.tables import ServingSpec
    from jbrl.scenario.derive import with_load_time
    from jbrl.scenario.loader import load_scenario

    env = config.env
    base = load_scenario(env.scenario)
    with_load_time(base, env.load_time_s, field="load_time_s")
    for x in env.load_time_mix:
        with_load_time(base, x, field="load_time_mix")
    spec = ServingSpec(base, env.accuracy)
    if env.action in LADDER_FILES and env.ladder:
        load_ladder(spec, env.action, env.ladder)
