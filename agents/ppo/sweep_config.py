"""``jbrl sweep`` configuration: which training runs a sweep makes (``configs/sweep/``).

```yaml
name: vqa_reward                 # the sweep's folder: <runs_dir>/<name>
train: ../train/ppo_vqa.yaml     # the base training config (relative to this file) or a mapping
set: {total_timesteps: 60000}    # fixed changes to the base, dotted keys
seeds: [0, 1]                    # every point of the grid (and every sample) runs per seed
grid:                            # dotted key -> values: every combination (Tune's grid_search)
  env.reward.slo_miss: [0.0005, 0.002]
search:                          # dotted key -> a distribution, Tune's own random search:
  ppo.learning_rate: {loguniform: [3.0e-5, 3.0e-4]}   # uniform | loguniform | randint | choice
num_samples: 1                   # draws of `search` per grid point and seed
score: {dollar: 1.0, slo_miss: 0.0005}   # validation score weights (default: base env.reward)
resources: {cpu: 1}              # per trial; torch threads: the base's `threads` (1)
max_concurrent: null             # trials at once (null: as many as the cluster's CPUs allow)
runs_dir: runs/sweeps
```

A trial is one ``jbrl train`` run of the base config with the trial's seed and values, scored on
the base's **validation** traces (``eval``; never the test traces of ``configs/traces/``) with
the sweep's ``score`` weights, the same for every trial, so trials with different reward weights
are judged alike. Every dotted key is checked against the training config when the sweep is
loaded, with each grid value and each end of each distribution.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jbrl.agents.ppo.config import TrainConfig, load_train_config
from jbrl.envs.config import RewardWeights
from jbrl.errors import InputError
from jbrl.scenario.loader import validation_to_input_error

DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
"""Search distributions (Ray Tune's ``tune.<name>``): ``[low, high]`` or, for choice, values."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TrialResources(_Frozen):
    """What each trial asks Ray for."""

    cpu: Annotated[float, Field(gt=0)] = 1.0


class SweepConfig(_Frozen):
    """A sweep over ``jbrl train`` runs (see the module docstring)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    train: dict[str, Any] = Field(description="The base training config, resolved.")
    set: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=list)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    search: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    num_samples: Annotated[int, Field(ge=1)] = 1
    score: RewardWeights | None = None
    resources: TrialResources = Field(default_factory=TrialResources)
    max_concurrent: Annotated[int, Field(ge=1)] | None = None
    runs_dir: str = "runs/sweeps"

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"grid.{key}: needs at least one value")
        return v

    @field_validator("search")
    @classmethod
    def _search(cls, v: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
        for key, dist in v.items():
            kinds = list(dist)
            if len(kinds) != 1 or kinds[0] not in DISTRIBUTIONS:
                raise ValueError(f"search.{key}: must be one of {', '.join(DISTRIBUTIONS)}")
            args = dist[kinds[0]]
            if kinds[0] == "choice" and not args:
                raise ValueError(f"search.{key}: choice needs at least one value")
            if kinds[0] != "choice" and (len(args) != 2 or not args[0] < args[1]):
                raise ValueError(f"search.{key}: {kinds[0]} needs [low, high] with low < high")
            if kinds[0] == "loguniform" and args[0] <= 0:
                raise ValueError(f"search.{key}: loguniform needs low > 0")
        return v

    @property
    def base(self) -> TrainConfig:
        return TrainConfig.model_validate(self.train)

    @property
    def score_weights(self) -> RewardWeights:
        """The validation score's weights: ``score``, else the base's reward weights."""
        return self.score or self.base.env.reward

    @property
    def trial_count(self) -> int:
        n = max(1, len(self.seeds)) * self.num_samples
        for values in self.grid.values():
            n *= len(values)
        return n

    def trial_config(self, params: dict[str, Any], runs_dir: Path) -> TrainConfig:
        """The training config of the trial with ``params`` (dotted key -> value; ``seed``),
        writing its run folder under ``runs_dir`` and scored with the sweep's weights."""
        raw = with_values(self.train, self.set)
        raw = with_values(raw, params)
        raw["runs_dir"] = str(runs_dir)
        if raw.get("eval") is not None:
            raw["eval"] = {**raw["eval"], "score": self.score_weights.model_dump()}
        return TrainConfig.model_validate(raw)


def with_values(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``raw`` with each dotted key of ``values`` set."""
    out = copy.deepcopy(raw)
    for key, value in values.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and check a sweep config (see the module docstring)."""
    file = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    except FileNotFoundError:
        raise InputError("no such file", file=file) from None
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read YAML: {exc}", file=file) from None
    if not isinstance(raw, dict):
        raise InputError("a sweep config must be a YAML mapping", file=file, value=raw)
    raw.setdefault("name", Path(path).stem)
    raw["train"] = _base_config(raw.get("train"), Path(path).parent, file)
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise validation_to_input_error(exc, file) from None
    _check_trials(config, file)
    return config


def _base_config(train: Any, folder: Path, file: str) -> dict[str, Any]:
    """The base training config as a resolved mapping (a scenario file given by a relative path
    made absolute: trials run in other working directories)."""
    if isinstance(train, str):
        base = load_train_config(folder / train)
    elif isinstance(train, dict):
        base = load_train_config(train)
    else:
        raise InputError(
            "must name the base training config (a path) or be one (a mapping)",
            file=file,
            field="train",
            value=train,
        )
    if base.eval is None:
        raise InputError(
            "the base training config has no validation (eval: null): a sweep scores its "
            "trials on the validation traces",
            file=file,
            field="train.eval",
        )
    out = base.model_dump(mode="json")
    scen = Path(base.env.scenario)
    if scen.exists():
        out["env"]["scenario"] = str(scen.absolute())
    return out


def _check_trials(config: SweepConfig, file: str) -> None:
    """Every fixed change, grid value and distribution end gives a valid training config."""
    checks: list[tuple[str, dict[str, Any]]] = [("set", config.set)]
    checks += [("seeds", {"seed": s}) for s in config.seeds]
    checks += [(f"grid.{k}", {k: v}) for k, vs in config.grid.items() for v in vs]
    for key, dist in config.search.items():
        kind, args = next(iter(dist.items()))
        checks += [(f"search.{key}.{kind}", {key: v}) for v in args]
    for where, values in checks:
        try:
            TrainConfig.model_validate(with_values(with_values(config.train, config.set), values))
        except ValidationError as exc:
            err = validation_to_input_error(exc, file)
            raise InputError(
                f"gives an invalid training config: {err.reason}",
                file=file,
                field=where,
                value=values if where != "set" else err.value,
            ) from None
