"""``ServingEnv``: adapt an inference workflow's plan to changing load, one control interval per
step (registered as ``jbrl/Serving-v0``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from jbrl.envs.codec import ActionCodec, PlanSignature
from jbrl.envs.combo_ladder import COMBO_LADDER_FILE, ComboLadder, ComboLadderCodec
from jbrl.envs.config import EnvConfig, load_env_config
from jbrl.envs.ladder import LADDER_FILE, LadderCodec, PlanLadder
from jbrl.envs.observation import OBS_HIGH, OBS_LOW, ObservationEncoder
from jbrl.envs.start import MilpStart, table_start
from jbrl.envs.table_shield import TableShield
from jbrl.envs.workload import sample_trace
from jbrl.errors import InputError
from jbrl.planning.plan import Plan
from jbrl.planning.shield import SloShield
from jbrl.planning.tables import ServingSpec
from jbrl.scenario.derive import with_load_time
from jbrl.scenario.loader import load_scenario
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace
from jbrl.sim import SimConfig, Simulator, make_simulator
from jbrl.sim.base import IntervalMetrics

LadderTable = PlanLadder | ComboLadder
"""The action table of a ladder design: a 1-D plan ladder or a combination ladder."""

LADDER_FILES = {"ladder": LADDER_FILE, "combo_ladder": COMBO_LADDER_FILE}
"""The file a trained policy keeps its action table in, per action design that has one."""


def make_codec(spec: ServingSpec, cfg: EnvConfig, ladder: LadderTable | None = None) -> ActionCodec:
    """The action codec of ``cfg.action``: per-worker, a plan ladder or a combination ladder
    (``ladder`` if given, else ``cfg.ladder``'s file, else one built by the greedy planner)."""
    if cfg.action == "workers":
        return ActionCodec(spec)
    if ladder is None:
        ladder = load_ladder(spec, cfg.action, cfg.ladder) if cfg.ladder else None
    if cfg.action == "combo_ladder":
        if ladder is None:
            ladder = ComboLadder.greedy(spec)
        if not isinstance(ladder, ComboLadder):
            raise InputError("action 'combo_ladder' needs a combination ladder", field="ladder")
        return ComboLadderCodec(spec, ladder)
    if ladder is None:
        ladder = PlanLadder.greedy(spec)
    if not isinstance(ladder, PlanLadder):
        raise InputError("action 'ladder' needs a plan ladder", field="ladder")
    return LadderCodec(spec, ladder)


def load_ladder(spec: ServingSpec, action: str, path: str | Path) -> LadderTable:
    """The action table of ``action`` (``ladder`` or ``combo_ladder``) from its JSON file."""
    if action == "combo_ladder":
        return ComboLadder.load(spec, path)
    return PlanLadder.load(spec, path)


def milp_ladder(
    spec: ServingSpec,
    action: str,
    step: float = 0.05,
    time_limit: float = 10.0,
    processes: int = 1,
) -> LadderTable:
    """The action table of ``action`` built with the MILP, a level every ``step`` x nominal,
    each solve limited to ``time_limit`` s (what ``jbrl train`` does; ``processes``: spawned
    processes for a combination ladder's independent ladders)."""
    if action == "combo_ladder":
        return ComboLadder.milp(spec, step=step, time_limit=time_limit, processes=processes)
    return PlanLadder.milp(spec, step=step, time_limit=time_limit)


def env_spaces(
    codec: ActionCodec, encoder: ObservationEncoder
) -> tuple[spaces.Box, spaces.MultiDiscrete]:
    """The observation and action spaces of an env with this codec and encoder (what a saved
    policy's network must fit)."""
    obs = spaces.Box(OBS_LOW, OBS_HIGH, shape=(encoder.size,), dtype=np.float32)
    return obs, spaces.MultiDiscrete(codec.nvec)


class ServingEnv(gym.Env[np.ndarray, np.ndarray]):
    """Serve a workflow of ML models on tiered edge/cloud workers under changing load.

    ## Description

    A workflow (a DAG of models, e.g. VQA: image features and speech recognition feeding a
    question-answering model) runs on heterogeneous workers of several tiers. Every control
    interval (``interval_s``, 60 s of simulated time by default) the agent chooses the model
    variants (among the combinations meeting the accuracy target) and which operator each worker
    runs. The simulator (:mod:`jbrl.sim`, fluid by default, discrete-event as an option) then
    serves the interval's load from a trace, charging every deployed worker's hourly price and
    the data sent between tiers. Changing a worker's model costs its load time, during which it
    serves nothing. The load is drawn per episode from a distribution of synthetic traces
    (diurnal days, bursts, flash crowds, random walks, steps). The agent does well when it keeps
    just enough capacity ahead of the load and does not thrash (cf. JellyBean, Wu et al.,
    PVLDB 16(3) 2022, which plans once for a fixed load).

    ## Action Space

    With ``action: workers`` (the default) ``MultiDiscrete`` with one dimension per row below
    (the ``2 + w`` row once per worker; sizes as :class:`ActionCodec` builds ``nvec``, checked
    by a test). "Keep" is choice 0 of every dimension after the first, so an action changes
    only what it means to change:

    | dim   | size         | meaning                                                           |
    |-------|--------------|-------------------------------------------------------------------|
    | 0     | 2            | 1: keep the whole current plan (other dims ignored); 0: apply 1.. |
    | 1     | n_combos + 1 | 0: keep the combination; 1 + c: combination c (those meeting the  |
    |       |              | accuracy target)                                                  |
    | 2 + w | n_ops + 2    | worker w: 0 keep what it runs, 1 idle, 2 + o run operator o       |
    |       |              | (topological order)                                               |

    With ``action: ladder`` (:mod:`jbrl.envs.ladder`) a ladder of complete plans (variant
    combination and placement) ordered by the load they cover, each the cheapest for its load
    level (MILP-built by ``jbrl train``; the greedy planner's when no ladder is given); every
    choice is valid, so the mask is all true:

    | dim   | size         | meaning                                                           |
    |-------|--------------|-------------------------------------------------------------------|
    | 0     | n_rungs + 1  | 0: keep the current plan; 1 + j: deploy rung j                    |

    With ``action: combo_ladder`` (:mod:`jbrl.envs.combo_ladder`) one plan ladder per variant
    combination the MILP plans over, on load levels shared by all combinations (MILP-built by
    ``jbrl train``; the greedy planner's when no ladder is given); a level beyond a
    combination's top rung deploys that top rung, so again every choice is valid:

    | dim   | size                | meaning                                                    |
    |-------|---------------------|------------------------------------------------------------|
    | 0     | n_ladder_combos + 1 | 0: keep the current plan (dim 1 ignored); 1 + i: the       |
    |       |                     | ladder's combination i                                     |
    | 1     | n_levels            | k: the cheapest rung of the combination serving levels[k]  |
    |       |                     | x nominal (its top rung beyond it)                         |

    ``info["combo_level"]`` is the running plan's (combination, level) there (combination -1
    when the running plan's combination is not one of the ladder's, e.g. a greedy start).

    :meth:`action_masks` masks, per dimension, operators without any profile on a worker or on a
    tier below their inputs (backward traffic), and combinations that cannot be placed. What
    independent masks cannot express is repaired when decoding (:class:`ActionCodec`): a worker
    without a profile for the chosen variant idles, a worker below an upstream operator's tier
    idles, an operator left without workers gets the cheapest allowed idle worker. Each
    operator's load is split over its workers in proportion to capacity. Every decoded action
    is a structurally valid plan (no unknown or reused worker, no missing profile, no backward
    traffic); ``info["repairs"]`` counts repairs.

    ## Observation Space

    ``Box(-1, 8, (n,), float32)``, ``n`` the sum of the sizes below (the parts of
    :class:`~jbrl.envs.observation.ObservationEncoder`, in order; checked by a test); rates are
    multiples of the nominal rates.

    | part                | size                      | value                                  |
    |---------------------|---------------------------|----------------------------------------|
    | rates               | history * n_src           | observed mean rate / nominal, newest   |
    |                     |                           | first, <= 4                            |
    | time                | 2                         | sin, cos of the time of day (day_s)    |
    | forecast            | 2 * n_src                 | with ``forecast`` only: per source, a  |
    |                     |                           | 3-interval forecast and its upper band |
    |                     |                           | / nominal, <= 4                        |
    | combo               | n_combos                  | one-hot of the current combination     |
    | level               | 1                         | combo_ladder only: (running level + 1) |
    |                     |                           | / n_levels                             |
    | assignment          | n_workers * (n_ops + 1)   | one-hot of each worker's operator      |
    |                     |                           | (0 = idle, 1 + o = operator o)         |
    | capacity_vs_demand  | n_ops                     | plan capacity / demand at the last     |
    |                     |                           | rates, <= 4                            |
    | capacity_vs_nominal | n_ops                     | plan capacity / nominal demand, <= 4   |
    | utilization         | n_ops                     | last interval's mean worker            |
    |                     |                           | utilisation, <= 2                      |
    | backlog             | n_ops                     | log(1 + queued tasks / nominal demand) |
    | load_time           | 1                         | longest model load time / interval,    |
    |                     |                           | <= 2                                   |
    | last_interval       | 4                         | SLO attainment, $/h / price of all     |
    |                     |                           | workers, workers reconfigured /        |
    |                     |                           | n_workers, plan $/h / all              |

    ## Rewards

    ``r = -(dollar * $ + slo_miss * late + reconfiguration * loads)`` per interval: ``$`` the
    interval's compute and communication dollars, ``late`` the requests finished beyond the
    latency bound or dropped, ``loads`` the workers that load a model. Weights come from
    ``EnvConfig.reward``; ``info`` holds each part (``reward_dollar``, ``reward_slo``,
    ``reward_reconfiguration``; they sum to the reward), the raw figures and the interval's
    :class:`~jbrl.sim.base.IntervalMetrics` (``metrics``).

    ## Starting State

    A load trace is drawn from ``EnvConfig.traces`` with ``np_random`` (or given through
    ``reset(options={"trace": trace})``). The starting plan covers the first interval's rates
    times ``1 + initial_headroom``: the greedy planner's, or the MILP's with
    ``initial_plan: milp`` (:mod:`jbrl.envs.start`); deployed and warm, with empty queues.

    ## Episode End

    Never terminates (serving goes on). Truncation comes from the registration's
    ``max_episode_steps`` (``episode_steps`` steps of ``gym.make``); the env itself returns
    ``truncated=False``. Traces last the episode; past their end the last rates hold.

    ## Arguments

    ``gym.make("jbrl/Serving-v0", config=cfg)`` with ``cfg`` an :class:`EnvConfig`, a YAML path
    or a mapping; keyword overrides of any config field (``scenario="vehicle"``,
    ``simulator="des"``, ``load_time_s=30``); ``scenario_obj`` (a loaded :class:`Scenario`,
    instead of loading ``config.scenario``); ``ladder`` (a :class:`PlanLadder` for
    ``action: ladder``, a :class:`~jbrl.envs.combo_ladder.ComboLadder` for
    ``action: combo_ladder``, instead of ``config.ladder`` or the greedy ladder).
    ``shield`` (a margin, default null) puts the SLO shield (:mod:`jbrl.planning.shield`)
    between the decoded action and the simulator: a plan predicted to miss the SLO at the last
    observed rates x the margin is replaced by the cheapest scale-up that meets it;
    ``info["shield"]`` holds the verdict (``intervened``, ``reason``, ...) and the episode's
    ``interventions`` so far. ``shield_check: table`` (``combo_ladder`` only) makes the same
    decisions from the action table's SLO-safe loads, without a prediction or solve per step
    (:mod:`jbrl.envs.table_shield`: the shield in the training loop); ``reward.shield`` prices
    each intervention.
    ``obs_noise`` (training only) multiplies the measured parts of the observation by
    lognormal noise drawn from ``np_random``.

    ## Version History

    * v0: initial version (``action: workers``; ``action: ladder`` and ``action:
      combo_ladder`` added without changing the default; ``initial_plan: milp`` replaced the
      ``initial_plan`` callable argument, and ``info["metrics"]`` was added, without changing
      the default behaviour; ``shield_check`` and ``reward.shield`` / ``info["reward_shield"]``
      added, 0 unless set).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        config: EnvConfig | str | Path | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        *,
        scenario_obj: Scenario | None = None,
        ladder: LadderTable | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(config, EnvConfig):
            cfg = config.model_copy(update=overrides) if overrides else config
            if overrides:
                cfg = EnvConfig.model_validate(cfg.model_dump())
        else:
            cfg = load_env_config(
                dict(config) if isinstance(config, Mapping) else config, **overrides
            )
        self.config = cfg
        base = scenario_obj if scenario_obj is not None else load_scenario(cfg.scenario)
        self.scenario = with_load_time(base, cfg.load_time_s, field="load_time_s")
        self._variants = {
            x: (self.scenario if x is None else with_load_time(base, x, field="load_time_mix"))
            for x in cfg.load_time_mix
        }
        self.serving = ServingSpec(self.scenario, cfg.accuracy)
        self.codec = make_codec(self.serving, cfg, ladder)
        self.encoder = ObservationEncoder.for_config(self.codec, cfg)
        self.milp_start = MilpStart(self.codec) if cfg.initial_plan == "milp" else None
        if cfg.initial_plan == "table":
            table_start(self.codec, 1.0)  # refused here, at construction, without a table
        self.render_mode = render_mode
        self.observation_space, self.action_space = env_spaces(self.codec, self.encoder)
        self.sim: Simulator = make_simulator(cfg.simulator, SimConfig(service=cfg.service))
        self.shield: SloShield | TableShield | None = None
        if cfg.shield is not None and cfg.shield_check == "table":
            self.shield = TableShield(self.codec, cfg.shield)  # refuses other actions
        self.trace: Trace | None = None
        self.plan: Plan | None = None
        self.sig: PlanSignature | None = None
        self.time_s = 0.0
        self.rate_history: list[np.ndarray] = []
        self.last: IntervalMetrics | None = None
        self.trace_info: dict[str, object] = {}

    # ------------------------------------------------------------------ gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        cfg = self.config
        options = options or {}
        trace = options.get("trace")
        if trace is None:
            trace, self.trace_info = sample_trace(
                cfg.traces,
                self.np_random,
                cfg.episode_s + cfg.interval_s,
                cfg.max_scale,
                self.scenario.nominal_rates(),
            )
        else:
            self.trace_info = {"file": getattr(trace, "file", None)}
        if self._variants:
            keys = list(self._variants)
            self.scenario = self._variants[keys[int(self.np_random.integers(len(keys)))]]
        self.trace = trace.for_scenario(self.scenario)
        rates0 = np.asarray(self.trace.array_at(0.0), dtype=float)
        target = rates0 * (1.0 + cfg.initial_headroom)
        if self.milp_start is not None:
            sig = self.milp_start.signature(self.scenario, target)
        elif cfg.initial_plan == "table":
            sig = table_start(self.codec, float(np.max(target / self.serving.nominal)))
        else:
            sig = self.codec.greedy_signature(target)
        self.sig = sig
        self.plan = self.codec.plan_of(sig, rates0)
        sim_seed = int(self.np_random.integers(0, 2**31 - 1))
        self.sim.reset(self.scenario, self.plan, sim_seed)
        self.time_s = 0.0
        self.rate_history = [rates0]
        self.last = None
        if cfg.shield is not None:
            if cfg.shield_check == "model" and not (
                isinstance(self.shield, SloShield) and self.shield.scenario is self.scenario
            ):
                self.shield = SloShield(self.scenario, cfg.shield)  # per load-time variant
            assert self.shield is not None
            self.shield.reset()
        return self._obs(), {"trace": self.trace_info}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self.trace is not None and self.plan is not None and self.sig is not None, (
            "call reset() first"
        )
        cfg = self.config
        design = self.rate_history[-1]
        plan = self.codec.decode(action, design, self.plan)
        repairs = self.codec.last_repairs
        shield: dict[str, Any] | None = None
        if self.shield is not None:
            verdict = self.shield.check(plan, self.serving.rates_dict(design))
            shield = {**verdict.info(), "interventions": self.shield.stats.interventions}
            if verdict.intervened:
                plan = verdict.plan
        loads: list[str] = []
        if plan is not self.plan:
            sig = self.codec.signature(plan)
            if sig != self.sig:
                loads = self.sim.apply(plan)
                self.plan, self.sig = plan, sig
        t0 = self.time_s
        pieces = self.trace.segments_array(t0, t0 + cfg.interval_s)
        m = self.sim.advance(cfg.interval_s, pieces)
        self.time_s = t0 + cfg.interval_s
        self.last = m
        self.rate_history.append(self.serving.rates_array(m.rates))
        if len(self.rate_history) > cfg.history:
            self.rate_history = self.rate_history[-cfg.history :]
        late = m.missed_slo
        w = cfg.reward
        parts = {
            "reward_dollar": -w.dollar * m.dollars,
            "reward_slo": -w.slo_miss * late,
            "reward_reconfiguration": -w.reconfiguration * len(loads),
            "reward_shield": -w.shield * float(shield is not None and shield["intervened"]),
        }
        reward = float(sum(parts.values()))
        info: dict[str, Any] = {
            **parts,
            "dollars": m.dollars,
            "cost_per_hour": m.dollars_per_hour,
            "arrivals": m.arrivals,
            "finished": m.completed + m.dropped_total,
            "within_slo": m.within_slo,
            "late": late,
            "slo_attainment": m.slo_attainment,
            "reconfigurations": len(loads),
            "accuracy": float(self.serving.combo_accuracy[self.sig.combo]),
            "repairs": repairs,
            "capacity": self.codec.capacity(self.sig).tolist(),
            "metrics": m,
        }
        if shield is not None:
            info["shield"] = shield
        if isinstance(self.codec, ComboLadderCodec):
            info["combo_level"] = self.codec.position(self.sig)
        return self._obs(), reward, False, False, info

    def action_masks(self) -> np.ndarray:
        """Boolean mask over every dimension's choices, concatenated (sb3-contrib layout)."""
        return self.codec.masks()

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self.sig is None:
            return None
        m = self.last
        cap = self.codec.capacity(self.sig)
        head = f"t={self.time_s:7.0f}s rates={np.round(self.rate_history[-1], 1).tolist()}"
        plan = f" combo={self.sig.combo} cap={np.round(cap, 1).tolist()}"
        if m is None:
            return head + plan
        return head + plan + f" $={m.dollars:.4f} slo={m.slo_attainment:.3f}"

    # ------------------------------------------------------------------ helpers

    def _obs(self) -> np.ndarray:
        assert self.sig is not None
        obs = self.encoder.encode(
            self.time_s, self.rate_history, self.sig, self.last, self.scenario
        )
        sigma = self.config.obs_noise
        if sigma > 0 and self.last is not None:
            m = self.encoder.measured
            noise = self.np_random.lognormal(-0.5 * sigma * sigma, sigma, int(m.sum()))
            obs[m] = np.clip(obs[m] * noise, OBS_LOW, OBS_HIGH).astype(np.float32)
        return obs

    def current_plan(self) -> Plan:
        assert self.plan is not None, "call reset() first"
        return self.plan
