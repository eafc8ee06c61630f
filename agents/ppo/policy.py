"""The learned policy: a saved MaskablePPO model behind the :class:`~jbrl.agents.policy.Policy`
interface (``ppo`` or ``ppo:path=runs/x``).

A policy folder (what ``jbrl train`` writes, and what ships in ``jbrl/configs/policies/<scenario>``)
holds ``model.zip`` (the MaskablePPO model), ``normalization.json`` (observation statistics),
``config.yaml`` (the resolved training config, whose ``env`` section fixes the observation) and
``ladder.json`` or ``combo_ladder.json`` for a ladder policy; :mod:`jbrl.agents.ppo.files` reads
them, unpickling nothing, and checks them against the scenario and codec before the policy is
used.
The observation is built from a :class:`~jbrl.agents.policy.ControlState` by the env's own
encoder (:mod:`jbrl.envs.observation`) and actions are decoded by the env's codec
(:mod:`jbrl.envs.codec`), so the deployed policy sees and does what it did in training.
:meth:`PpoPolicy.of_model` wraps a model in memory the same way (training validation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from jbrl.agents.policy import ControlState, Policy
from jbrl.agents.ppo.files import (
    CONFIG_FILE,
    MODEL_FILE,
    NORM_FILE,
    NormalizationStats,
    check_folder,
    load_model,
    load_normalization,
)
from jbrl.documents import load_yaml
from jbrl.envs.codec import ActionCodec
from jbrl.envs.combo_ladder import ComboLadder, ComboLadderCodec
from jbrl.envs.config import EnvConfig, load_env_config
from jbrl.envs.ladder import LadderCodec, PlanLadder
from jbrl.envs.observation import ObservationEncoder
from jbrl.envs.serving import LADDER_FILES, LadderTable, env_spaces, load_ladder, make_codec
from jbrl.errors import InputError, Param
from jbrl.planning.plan import Plan
from jbrl.planning.tables import ServingSpec
from jbrl.scenario.loader import load_scenario
from jbrl.scenario.model import Scenario

SHIPPED_PACKAGE = "jbrl.configs"
SHIPPED_DIR = "policies"


def shipped_policy_dir(scenario: str) -> Path:
    """Folder of the policy shipped for an embedded scenario (InputError if there is none)."""
    root = resources.files(SHIPPED_PACKAGE) / SHIPPED_DIR / scenario
    if not (root / MODEL_FILE).is_file():
        raise InputError(
            "no shipped PPO policy for this scenario; train one with `jbrl train` and pass "
            "ppo:path=<run folder>",
            field=Param.POLICY,
            value=f"ppo (scenario {scenario})",
        )
    return Path(str(root))


def _folder_env_config(folder: Path) -> EnvConfig:
    """The ``env`` section of a policy folder's ``config.yaml``, validated."""
    file = folder / CONFIG_FILE
    if not file.is_file():
        check_folder(folder, None)  # names the missing file
    raw = load_yaml(file) or {}
    if not isinstance(raw, dict):
        raise InputError("must be a YAML mapping (the training config)", file=str(file))
    env = raw.get("env", raw)
    if not isinstance(env, dict):
        raise InputError("must be a mapping (the env config)", file=str(file), field="env")
    return load_env_config(env, file=str(file))


def resolve_policy_dir(path: str | Path) -> Path:
    """A run folder, or the ``model.zip`` inside one."""
    p = Path(path)
    if p.is_file() and p.name.endswith(".zip"):
        p = p.parent
    if not (p / MODEL_FILE).is_file():
        raise InputError(f"no {MODEL_FILE} here (a PPO policy folder)", file=str(path))
    return p


@dataclass
class ObsNormalizer:
    """VecNormalize's observation transform, without the vectorised env around it."""

    mean: np.ndarray
    var: np.ndarray
    clip: float
    epsilon: float

    @classmethod
    def of_stats(cls, stats: NormalizationStats) -> ObsNormalizer:
        """The transform of saved statistics (``normalization.json``)."""
        return cls(
            np.asarray(stats.obs.mean, dtype=np.float32),
            np.asarray(stats.obs.var, dtype=np.float32),
            stats.clip_obs,
            stats.epsilon,
        )

    @classmethod
    def of(cls, vn: Any) -> ObsNormalizer:
        """The transform of a live ``VecNormalize``."""
        return cls.of_stats(NormalizationStats.of(vn))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        out = (obs - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)


class PpoActor:
    """Deterministic action of a MaskablePPO model for one raw observation.

    The greedy action of a masked MultiDiscrete policy is the per-dimension argmax of the masked
    logits; computing it directly skips building a dozen torch distributions per call (about
    10x faster than ``model.predict``, which gives the same action).
    """

    def __init__(self, model: Any, normalizer: ObsNormalizer | None) -> None:
        import torch

        self.model = model
        self.normalizer = normalizer
        self._torch = torch
        nvec = np.asarray(model.action_space.nvec, dtype=np.int64)
        self._splits = np.cumsum(nvec)[:-1]

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = self.normalizer(obs) if self.normalizer is not None else obs.astype(np.float32)
        policy = self.model.policy
        torch = self._torch
        with torch.no_grad():
            t = torch.as_tensor(x).reshape(1, -1)
            features = policy.extract_features(t, policy.pi_features_extractor)
            logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
        z = logits.numpy()[0].astype(np.float64)
        z[~np.asarray(mask, dtype=bool)] = -np.inf
        return np.array([int(np.argmax(part)) for part in np.split(z, self._splits)])


def policy_folder(
    path: str | Path | None = None,
    shipped: str | None = None,
    scenario: Scenario | str | None = None,
) -> Path:
    """The folder ``ppo``'s parameters name: ``path`` (a run folder or its ``model.zip``),
    ``shipped`` (a shipped policy's name), or neither (the policy shipped for ``scenario``,
    an embedded scenario's name or object; default vqa). InputError when both are given or
    the shipped name is not one."""
    if path is not None and shipped is not None:
        raise InputError(
            "give ppo either path= (a run folder) or shipped= (a shipped policy), not both",
            field="policy.shipped",
            value=shipped,
        )
    if shipped is not None:  # another shipped policy than the scenario's default
        if not re.fullmatch(r"[a-z0-9_]+", shipped):
            raise InputError(
                "a shipped policy's name (letters, digits, _)",
                field="policy.shipped",
                value=shipped,
            )
        return shipped_policy_dir(shipped)
    if path is None:
        name = scenario.name if isinstance(scenario, Scenario) else (scenario or "vqa")
        return shipped_policy_dir(str(name))
    return resolve_policy_dir(path)


class PpoPolicy(Policy):
    """A trained MaskablePPO policy (``path`` a run folder or its ``model.zip``; ``shipped`` the
    name of a shipped policy folder, e.g. ``vqa_v2``; neither: the policy shipped for
    ``scenario``).

    ``decide`` encodes the state with the env's encoder, asks the network (deterministic, with
    the action masks) and decodes the action with the env's codec: a valid plan, or the current
    plan unchanged when the policy keeps it.
    """

    name = "ppo"
    folder: Path | None
    """The policy folder (None for a model in memory)."""

    def __init__(
        self,
        path: str | Path | None = None,
        scenario: Scenario | str | None = None,
        shipped: str | None = None,
        **params: Any,
    ) -> None:
        import torch

        if params:  # a typo such as ppo:pth=... must not quietly run the shipped policy
            key = sorted(params)[0]
            raise InputError(
                "unknown parameter of policy 'ppo' (known: path, shipped)",
                field=f"policy.{key}",
                value=params[key],
            )
        folder = policy_folder(path, shipped, scenario)
        torch.set_num_threads(1)
        env_config = _folder_env_config(folder)
        check_folder(folder, LADDER_FILES.get(env_config.action))
        scen = (
            scenario
            if isinstance(scenario, Scenario)
            else load_scenario(scenario or env_config.scenario)
        )
        self._layout(env_config, scen, None, folder)
        # validated before use: the network and the statistics must fit this layout
        codec, enc = self._tables_for(scen)
        obs_space, act_space = env_spaces(codec, enc)
        model = load_model(folder / MODEL_FILE, obs_space, act_space)
        stats = load_normalization(folder / NORM_FILE, enc.size)
        self._attach(PpoActor(model, ObsNormalizer.of_stats(stats)))

    @classmethod
    def of_model(
        cls,
        model: Any,
        normalizer: ObsNormalizer | None,
        env_config: EnvConfig,
        ladder: LadderTable | None = None,
    ) -> PpoPolicy:
        """The policy of a model in memory (training validation): ``env_config`` as in
        training, ``ladder`` its action table for ``action: ladder`` / ``combo_ladder``."""
        policy = cls.__new__(cls)
        policy._layout(env_config, None, ladder, None)
        policy._attach(PpoActor(model, normalizer))
        return policy

    def _layout(
        self,
        env_config: EnvConfig,
        scenario: Scenario | None,
        ladder: LadderTable | None,
        folder: Path | None,
    ) -> None:
        """What fixes the observation and action layout (the network comes after)."""
        self.env_config = env_config
        self.folder = folder
        self._rungs = ladder
        self._scenario = scenario
        self._codec: ActionCodec | None = None
        self._encoder: ObservationEncoder | None = None
        self._for: int | None = None

    def _attach(self, actor: PpoActor) -> None:
        self.actor = actor
        self.model = actor.model

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        """Bind the policy to ``scenario`` before a run: its action codec and observation
        encoder are built here (the action table's rungs priced on the scenario: 0.7 s on the
        fleet, milliseconds on vqa), so no decision pays for them, and a policy trained for
        another layout fails before the run starts."""
        self._scenario = scenario
        self.tables(scenario)

    def ladder(self, scenario: Scenario | None = None) -> LadderTable | None:
        """The action table the policy acts on (``action: ladder``: a plan ladder;
        ``combo_ladder``: a combination ladder), else None."""
        name = LADDER_FILES.get(self.env_config.action)
        if name is None:
            return None
        scen = scenario or self._scenario or load_scenario(self.env_config.scenario)
        spec = ServingSpec(scen, self.env_config.accuracy)
        r = self._rungs
        if isinstance(r, ComboLadder):  # the same rungs and levels
            return r.for_spec(spec)
        if isinstance(r, PlanLadder):  # the same rungs (and, on an SLO basis, their levels)
            return PlanLadder(spec, r.rungs, r.scale.tolist() if r.basis == "slo" else None)
        assert self.folder is not None, "a policy in memory needs its ladder"
        return load_ladder(spec, self.env_config.action, self.folder / name)

    def _tables_for(self, scenario: Scenario) -> tuple[ActionCodec, ObservationEncoder]:
        """The action codec and observation encoder of ``scenario`` in this policy's layout."""
        spec = ServingSpec(scenario, self.env_config.accuracy)
        try:
            table = self.ladder(scenario)
        except InputError as e:  # the action table names another scenario's plans
            raise InputError(
                f"{e.reason} (the PPO policy was {self._trained()}: its action table holds "
                "that scenario's plans, so it acts on that scenario only)",
                file=e.file,
                field=e.field,
                value=e.value,
                has_value=e.has_value,
            ) from e
        codec = make_codec(spec, self.env_config, table)
        return codec, ObservationEncoder.for_config(codec, self.env_config)

    def _trained(self) -> str:
        return f"trained on scenario {self.env_config.scenario!r}"

    def tables(self, scenario: Scenario) -> tuple[ActionCodec, ObservationEncoder]:
        """The action codec and observation encoder of ``scenario`` in this policy's layout
        (InputError when the model was trained for another layout)."""
        if self._codec is None or self._for != id(scenario):
            codec, enc = self._tables_for(scenario)
            want = self.model.observation_space.shape[0]
            nvec = np.asarray(self.model.action_space.nvec)
            if enc.size != want or not np.array_equal(codec.nvec, nvec):
                raise InputError(
                    f"the PPO policy in {self.folder or 'memory'} was {self._trained()}, another "
                    f"layout: observation of {want} values and action {nvec.tolist()}, this "
                    f"scenario {enc.size} and {np.asarray(codec.nvec).tolist()}",
                    field=Param.POLICY,
                    value=scenario.name,
                )
            self._codec, self._encoder, self._for = codec, enc, id(scenario)
        assert self._encoder is not None
        return self._codec, self._encoder

    def _initial(self, codec: ActionCodec, rates: np.ndarray) -> Any:
        from jbrl.planning.base import get_planner

        target = rates * (1.0 + self.env_config.initial_headroom)
        spec = codec.spec
        if isinstance(codec, LadderCodec):  # the cheapest rung covering the target: no solve
            return codec.ladder.rungs[codec.ladder.covering(float(np.max(target / spec.nominal)))]
        if isinstance(codec, ComboLadderCodec):  # ... of any combination
            i, j = codec.table.cheapest_covering(float(np.max(target / spec.nominal)))
            return codec.table.ladders[i].rungs[j]
        try:
            res = get_planner("milp", time_limit=10.0).plan(
                spec.scenario,
                rates=dict(zip(spec.sources, target.tolist(), strict=True)),
                accuracy=spec.accuracy,
            )
        except Exception:  # noqa: BLE001 - any planner failure: fall back to the greedy plan
            res = None
        if res is not None and res.feasible:
            return codec.canonical_signature(res.plan)
        return codec.greedy_signature(target)

    def decide(self, state: ControlState) -> Plan:
        codec, enc = self.tables(state.scenario)
        spec = codec.spec
        hist = [spec.rates_array(r) for r in state.rate_history]
        last = hist[-1] if hist else spec.rates_array(state.last_rates())
        current = state.current_plan
        if current is None:
            # the first plan as training starts: the MILP for the rates x (1 + initial_headroom)
            return codec.plan_of(self._initial(codec, last), last)
        sig = codec.signature(current)
        obs = enc.encode(state.time_s, hist or [last], sig, state.last_metrics, state.scenario)
        action = self.actor.act(obs, codec.masks())
        plan = codec.decode(action, last, current)
        if plan is current or codec.signature(plan) == sig:
            return current
        return plan
