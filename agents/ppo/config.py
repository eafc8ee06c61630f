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
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jbrl.agents.policy import get_policy, parse_policy_spec
from jbrl.envs.config import EnvConfig
from jbrl.envs.workload import EVAL_TRACE_SPECS
from jbrl.errors import InputError
from jbrl.scenario.loader import validation_to_input_error

DEFAULT_TEACHER = (
    "milp-hysteresis:headroom=0.2:window=3:down_after=5:tolerance=0.02:reconfig_penalty=0"
    ":max_scale=1.5:grid=0.01"
)
"""The default imitation teacher: MILP-hysteresis with a short window, a 2 % tolerance, no
reconfiguration penalty and at most 1.5x the target as free capacity, on a 1 % rate grid (so
that the teacher's solves are memoized over noisy training rates)."""
DEFAULT_BASELINE = "milp-reactive:headroom=0.2"
"""The policy validation compares PPO with."""


def check_rule_spec(spec: str) -> str:
    """``spec`` if it names a rule policy with valid parameters (the policy is built once to
    check them); ValueError otherwise (pydantic reports it under the field's name)."""
    try:
        name, _ = parse_policy_spec(spec)
        if name == "ppo":
            raise ValueError("must be a rule policy (jbrl.agents.rules), not ppo")
        get_policy(spec)
    except InputError as exc:
        raise ValueError(f"{exc.field or 'policy'}: {exc}") from None
    return spec


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PpoHyper(_Frozen):
    """MaskablePPO hyperparameters (sb3-contrib names)."""

    learning_rate: float = 1e-4
    n_steps: int = 512
    batch_size: int = 256
    n_epochs: int = 5
    gamma: float = 0.97
    gae_lambda: float = 0.9
    clip_range: float = 0.1
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = 0.02
    net_arch: list[int] = Field(default_factory=lambda: [128, 128])


class ImitationConfig(_Frozen):
    """Warm start from a rule policy (:mod:`jbrl.agents.ppo.imitation`)."""

    teacher: str = Field(
        default=DEFAULT_TEACHER,
        description="Policy spec of the teacher (a jbrl.agents.rules policy, e.g. "
        "'milp-hysteresis:headroom=0.25:window=4:down_after=6').",
    )
    episodes: int = 48
    dagger_rounds: int = 1
    dagger_episodes: int = 24
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    candidates: list[str] = Field(
        default_factory=list,
        description="Teacher specs tried on tune_episodes training-distribution episodes; the "
        "one with the best mean reward teaches (empty: teacher).",
    )
    tune_episodes: int = 8

    @field_validator("teacher")
    @classmethod
    def _teacher(cls, v: str) -> str:
        return check_rule_spec(v)

    @field_validator("candidates")
    @classmethod
    def _candidates(cls, v: list[str]) -> list[str]:
        return [check_rule_spec(s) for s in v]


class EvalConfig(_Frozen):
    """Periodic validation on held-out traces (validation seed, never the test seed 0)."""

    every_steps: int = 20_000
    traces: list[str] = Field(default_factory=lambda: list(EVAL_TRACE_SPECS))
    seed: int = 1
    duration_s: float = 7200.0
    baseline: str = Field(
        default=DEFAULT_BASELINE,
        description="Policy spec run once on the validation traces for comparison "
        "(eval_<name>/... in TensorBoard).",
    )

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: str) -> str:
        return check_rule_spec(v)


class TrainConfig(_Frozen):
    """``jbrl train`` configuration (YAML; see the module docstring)."""

    env: EnvConfig = Field(default_factory=lambda: EnvConfig(initial_plan="milp"))
    seed: int = 0
    n_envs: int = 4
    total_timesteps: int = 200_000
    threads: int = 1
    ppo: PpoHyper = Field(default_factory=PpoHyper)
    bc: ImitationConfig | None = Field(default_factory=ImitationConfig)
    eval: EvalConfig | None = Field(default_factory=EvalConfig)
    checkpoint_every: int = 20_000
    freeze_normalization: bool = Field(
        default=True,
        description="Keep VecNormalize statistics from the warm start fixed during PPO.",
    )
    runs_dir: str = "runs"

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
    """Read a training config; ``env`` may be a mapping or a path to an env YAML (relative to
    the config file)."""
    file = "<train config>"
    if isinstance(path, dict):
        raw = dict(path)
        base = Path.cwd()
    else:
        file = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text("utf-8")) or {}
        except FileNotFoundError:
            raise InputError("no such file", file=file) from None
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read YAML: {exc}", file=file) from None
        base = Path(path).parent
        if not isinstance(raw, dict):
            raise InputError("a training config must be a YAML mapping", file=file, value=raw)
    if isinstance(raw.get("env"), str):
        env_file = base / raw["env"]
        try:
            raw["env"] = yaml.safe_load(env_file.read_text("utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read env config: {exc}", file=str(env_file)) from None
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise validation_to_input_error(exc, file, TrainConfig) from None
