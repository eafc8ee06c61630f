"""The files of a policy folder, read without running anything they contain.

A policy folder (what ``jbrl train`` writes; what ships in ``jbrl/configs/policies/<scenario>``)
holds:

==================  ==========================================================================
``model.zip``       the MaskablePPO model (stable-baselines3's zip: JSON ``data`` and PyTorch
                    weights)
``normalization.json``  the observation (and return) statistics of ``VecNormalize``, as numbers
``config.yaml``     the resolved training config; its ``env`` section fixes the observation
                    and the action layout
``ladder.json``     the plan ladder (``action: ladder`` only)
``combo_ladder.json``  the combination ladder (``action: combo_ladder`` only)
==================  ==========================================================================

Nothing in a folder is unpickled: the statistics are JSON (the ``vecnormalize.pkl`` of earlier
versions is refused: a pickle runs code when it is loaded), and stable-baselines3 loads the model
with every pickled entry of its ``data`` replaced by an object built here
(``custom_objects``) and the weights through ``torch.load(weights_only=True)``; a ``data``
entry this module does not know how to replace makes the folder bad input. The network is
built for the spaces of the scenario and codec the policy is used with, so a model trained for
another layout, or statistics of another length, are refused (exit 2) before any decision.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jbrl import limits
from jbrl.documents import load_json, parse_json
from jbrl.errors import InputError, Param

MODEL_FILE = "model.zip"
NORM_FILE = "normalization.json"
LEGACY_NORM_FILE = "vecnormalize.pkl"
CONFIG_FILE = "config.yaml"
NORM_FORMAT = "jbrl-normalization/1"

# data entries SB3 pickles, and what replaces each when a model is loaded here
_RESET_ON_LOAD = (
    "_last_obs",
    "_last_episode_starts",
    "_last_original_obs",
    "rollout_buffer_class",
)


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class RunningStats:
    """Mean, variance and sample count (stable-baselines3's ``RunningMeanStd``)."""

    mean: np.ndarray
    var: np.ndarray
    count: float


@dataclass(frozen=True)
class NormalizationStats:
    """``VecNormalize``'s state, as numbers."""

    obs: RunningStats
    ret: RunningStats
    clip_obs: float
    clip_reward: float
    epsilon: float
    gamma: float
    norm_obs: bool
    norm_reward: bool

    @classmethod
    def of(cls, vn: Any) -> NormalizationStats:
        """The statistics of a ``VecNormalize``."""
        return cls(
            RunningStats(
                np.asarray(vn.obs_rms.mean), np.asarray(vn.obs_rms.var), float(vn.obs_rms.count)
            ),
            RunningStats(
                np.asarray(vn.ret_rms.mean), np.asarray(vn.ret_rms.var), float(vn.ret_rms.count)
            ),
            float(vn.clip_obs),
            float(vn.clip_reward),
            float(vn.epsilon),
            float(vn.gamma),
            bool(vn.norm_obs),
            bool(vn.norm_reward),
        )

    def to_dict(self) -> dict[str, Any]:
        def stats(r: RunningStats) -> dict[str, Any]:
            return {
                "mean": np.asarray(r.mean, dtype=float).tolist(),
                "var": np.asarray(r.var, dtype=float).tolist(),
                "count": r.count,
            }

        return {
            "format": NORM_FORMAT,
            "obs": stats(self.obs),
            "ret": stats(self.ret),
            "clip_obs": self.clip_obs,
            "clip_reward": self.clip_reward,
            "epsilon": self.epsilon,
            "gamma": self.gamma,
            "norm_obs": self.norm_obs,
            "norm_reward": self.norm_reward,
        }

    def restore(self, vn: Any) -> Any:
        """Put these statistics into the ``VecNormalize`` ``vn`` (resuming training)."""
        vn.obs_rms.mean, vn.obs_rms.var = self.obs.mean.copy(), self.obs.var.copy()
        vn.obs_rms.count = self.obs.count
        vn.ret_rms.mean, vn.ret_rms.var = self.ret.mean.copy(), self.ret.var.copy()
        vn.ret_rms.count = self.ret.count
        vn.clip_obs, vn.clip_reward, vn.epsilon = self.clip_obs, self.clip_reward, self.epsilon
        vn.gamma, vn.norm_obs, vn.norm_reward = self.gamma, self.norm_obs, self.norm_reward
        return vn


def save_normalization(vn: Any, path: str | Path) -> Path:
    """Write a ``VecNormalize``'s statistics to ``path`` as JSON."""
    p = Path(path)
    p.write_text(json.dumps(NormalizationStats.of(vn).to_dict(), indent=1) + "\n", "utf-8")
    return p


def load_normalization(path: str | Path, obs_size: int | None = None) -> NormalizationStats:
    """Read and check ``normalization.json``: finite numbers, variances >= 0, positive clip and
    epsilon, and (with ``obs_size``) one mean and variance per observation element."""
    file = str(path)
    data = load_json(path)
    if not isinstance(data, dict) or data.get("format") != NORM_FORMAT:
        raise InputError(
            f"not a jbrl normalization file (format {NORM_FORMAT!r})", file=file, field="format"
        )
    obs = _running(data.get("obs"), file, "obs", obs_size)
    ret = _running(data.get("ret"), file, "ret", None)
    nums = {k: _positive(data.get(k), file, k) for k in ("clip_obs", "clip_reward", "epsilon")}
    gamma = data.get("gamma")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise InputError("must be in (0, 1]", file=file, field="gamma", value=gamma, has_value=True)
    flags = {k: data.get(k) for k in ("norm_obs", "norm_reward")}
    for k, v in flags.items():
        if not isinstance(v, bool):
            raise InputError("must be true or false", file=file, field=k, value=v, has_value=True)
    return NormalizationStats(
        obs,
        ret,
        nums["clip_obs"],
        nums["clip_reward"],
        nums["epsilon"],
        float(gamma),
        bool(flags["norm_obs"]),
        bool(flags["norm_reward"]),
    )


def _running(d: Any, file: str, where: str, size: int | None) -> RunningStats:
    if not isinstance(d, dict):
        raise InputError(
            "must be {mean, var, count}", file=file, field=where, value=d, has_value=True
        )
    try:
        mean = np.asarray(d.get("mean"), dtype=float)
        var = np.asarray(d.get("var"), dtype=float)
    except (TypeError, ValueError):
        raise InputError("mean and var must be numbers", file=file, field=where) from None
    if mean.shape != var.shape or mean.ndim > 1:
        raise InputError(
            f"mean {mean.shape} and var {var.shape} must be equal vectors", file=file, field=where
        )
    if size is not None and mean.shape != (size,):
        raise InputError(
            f"has {mean.size} entries, but the observation of this scenario and codec has "
            f"{size}: the statistics belong to another policy",
            file=file,
            field=f"{where}.mean",
        )
    if not (np.all(np.isfinite(var)) and np.all(var >= 0)):
        raise InputError("variances must be finite and >= 0", file=file, field=f"{where}.var")
    count = d.get("count")
    if isinstance(count, bool) or not isinstance(count, (int, float)) or count <= 0:
        raise InputError(
            "must be a number > 0", file=file, field=f"{where}.count", value=count, has_value=True
        )
    return RunningStats(mean, var, float(count))


def _positive(v: Any, file: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
        raise InputError("must be a number > 0", file=file, field=where, value=v, has_value=True)
    return float(v)


# --------------------------------------------------------------------------- the folder


def check_folder(folder: Path, ladder_file: str | None) -> None:
    """Every file the policy needs is there (and no pickle stands in for one); ``ladder_file``:
    the action table's file of a ladder design (``ladder.json``, ``combo_ladder.json``)."""
    for name in (CONFIG_FILE, MODEL_FILE, NORM_FILE) + ((ladder_file,) if ladder_file else ()):
        if (folder / name).is_file():
            continue
        if name == NORM_FILE and (folder / LEGACY_NORM_FILE).exists():
            raise InputError(
                f"this policy folder has its observation statistics only as {LEGACY_NORM_FILE}, "
                "a pickle, which jbrl no longer loads (unpickling runs code from the file); "
                f"retrain it with `jbrl train`, which writes {NORM_FILE}",
                file=str(folder / LEGACY_NORM_FILE),
                field=Param.POLICY,
            )
        raise InputError(
            f"missing {name} (a PPO policy folder holds {MODEL_FILE}, {NORM_FILE}, "
            f"{CONFIG_FILE} and, for a ladder policy, ladder.json or combo_ladder.json)",
            file=str(folder),
            field=Param.POLICY,
        )


def model_data(path: Path) -> dict[str, Any]:
    """The JSON ``data`` of a stable-baselines3 zip, read within the limits (a zip whose
    members would unpack beyond the limit ``file_bytes`` is refused)."""
    file = str(path)
    cap = limits.current().file_bytes
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            if total > cap or len(infos) > 64:
                raise limits.over_limit(
                    "file_bytes", total, file=file, what="the unpacked size of the model (bytes)"
                )
            if "data" not in zf.namelist():
                raise InputError("not a stable-baselines3 model (no 'data' in the zip)", file=file)
            raw = zf.read("data")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InputError(f"not a readable model zip: {exc}", file=file) from None
    data = parse_json(raw, f"{file} (data)")
    if not isinstance(data, dict):
        raise InputError("the model's 'data' must be a JSON object", file=file)
    return data


def custom_objects(
    data: dict[str, Any],
    observation_space: Any,
    action_space: Any,
    file: str,
    hyper: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Replacements for every pickled entry of ``data`` (so SB3 unpickles nothing); an entry
    not known here makes the model bad input."""
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    h = hyper or {}
    lr = float(h.get("learning_rate", 1e-4))
    known: dict[str, Any] = {
        "policy_class": MaskableActorCriticPolicy,
        "observation_space": observation_space,
        "action_space": action_space,
        "lr_schedule": _Constant(lr),
        "learning_rate": lr,
        "clip_range": float(h.get("clip_range", 0.2)),
        "ep_info_buffer": deque(maxlen=100),
        "ep_success_buffer": deque(maxlen=100),
        **dict.fromkeys(_RESET_ON_LOAD),
    }
    out: dict[str, Any] = {}
    for key, item in data.items():
        if isinstance(item, dict) and ":serialized:" in item:
            if key not in known:
                raise InputError(
                    f"the model holds a pickled entry {key!r} that jbrl does not load (only "
                    "models written by `jbrl train` are read)",
                    file=file,
                    field=key,
                )
            out[key] = known[key]
    for key in ("observation_space", "action_space", "policy_class"):
        out[key] = known[key]
    kwargs = data.get("policy_kwargs")
    if kwargs is not None and not _plain(kwargs):
        raise InputError(
            "policy_kwargs must be plain JSON (a jbrl-trained model's are)",
            file=file,
            field="policy_kwargs",
        )
    return out


class _Constant:
    """A constant schedule (picklable, unlike a lambda)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, _progress: float) -> float:
        return self.value


def _plain(x: Any) -> bool:
    if isinstance(x, dict):
        return ":serialized:" not in x and all(_plain(v) for v in x.values())
    if isinstance(x, list):
        return all(_plain(v) for v in x)
    return True


def load_model(
    path: Path,
    observation_space: Any,
    action_space: Any,
    *,
    env: Any = None,
    hyper: dict[str, float] | None = None,
) -> Any:
    """A MaskablePPO model from ``path`` for these spaces, with nothing unpickled (module
    docstring); InputError when the file is not such a model or its network does not fit the
    spaces (a policy trained for another scenario or codec)."""
    from sb3_contrib import MaskablePPO

    file = str(path)
    data = model_data(path)
    objs = custom_objects(data, observation_space, action_space, file, hyper)
    try:
        return MaskablePPO.load(file, env=env, device="cpu", custom_objects=objs)
    except Exception as exc:  # noqa: BLE001 - whatever a corrupt file raises is bad input
        text = _first_line(exc)
        if any(k in text for k in ("size mismatch", "Missing key", "Unexpected key")):
            raise InputError(
                "the model's network does not fit this scenario and codec (observation "
                f"{observation_space.shape[0]}, actions {[int(n) for n in action_space.nvec]}): {text}",
                file=file,
            ) from None
        raise InputError(f"not a loadable model: {type(exc).__name__}: {text}", file=file) from None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
