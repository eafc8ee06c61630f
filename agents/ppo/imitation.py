"""Imitation warm start of the PPO policy: a rule policy teaches, the network learns its actions.

The teacher is one of the rule policies of :mod:`jbrl.agents.rules`, named by its spec
(``bc.teacher`` in the training config, e.g. ``milp-hysteresis:headroom=0.25:window=4``), so it
is the same policy ``jbrl evaluate`` runs under that name. :class:`PolicyTeacher` adapts it to
the env: it builds the :class:`~jbrl.agents.policy.ControlState` from the env (scenario, time,
running plan, rate history, last interval; the true trace only for clairvoyant policies), asks
the policy, and expresses its plan as the env action that leads there
(:meth:`~jbrl.envs.codec.ActionCodec.action_for` of the plan's canonical signature).

On the ``combo_ladder`` action the teacher may instead be ``ladder-hysteresis``
(:class:`~jbrl.agents.ppo.table_teacher.TableTeacher`), which decides in the env's own table of
plans and so needs no MILP solve (:func:`make_teacher` picks by spec).

The policy network learns the teacher's actions (cross-entropy under the action masks, with
plan changes weighted up) and the value network its discounted, normalised returns; optional
DAgger rounds let the student act and the teacher label. With ``bc.candidates`` the teacher is
first chosen by mean reward on training-distribution episodes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from jbrl.agents.policy import ControlState, get_policy, parse_policy_spec
from jbrl.agents.ppo.config import ImitationConfig
from jbrl.agents.ppo.policy import ObsNormalizer, PpoActor
from jbrl.agents.ppo.table_teacher import TABLE_TEACHER, TableTeacher
from jbrl.agents.ppo.workbench import Workbench
from jbrl.agents.rules.cache import PlanCache
from jbrl.envs.serving import ServingEnv
from jbrl.planning.plan import Plan
from jbrl.progress import ProgressBar

Log = Callable[[str, Any], None]


Stores = dict[tuple[Any, ...], tuple[dict, dict, dict]]
"""Planner memos shared by teachers (:meth:`~jbrl.agents.rules.cache.PlanCache.share`)."""


class PolicyTeacher:
    """A rule policy (by spec) as a teacher in the env's action space (module docstring).
    ``stores``: planner memos to share with the other teachers of the warm start."""

    def __init__(self, spec: str, stores: Stores | None = None) -> None:
        self.spec = spec
        self.policy = get_policy(spec)
        cache = getattr(self.policy, "cache", None)
        if stores is not None and isinstance(cache, PlanCache):
            cache.share(stores)

    def reset(self, env: ServingEnv) -> None:
        """Start an episode (after ``env.reset``): the policy forgets the previous one."""
        self.policy.reset(env.scenario)

    def state(self, env: ServingEnv) -> ControlState:
        """What the policy may know in ``env`` now."""
        spec = env.serving
        return ControlState(
            scenario=env.scenario,
            time_s=env.time_s,
            interval_s=env.config.interval_s,
            current_plan=env.current_plan(),
            rate_history=[spec.rates_dict(r) for r in env.rate_history],
            last_metrics=env.last,
            lookahead=env.trace if self.policy.clairvoyant else None,
        )

    def __call__(self, env: ServingEnv) -> np.ndarray:
        """The env action of the policy's decision in ``env``'s current state."""
        return action_to(env, self.policy.decide(self.state(env)))


Teacher = PolicyTeacher | TableTeacher


def make_teacher(spec: str, stores: Stores | None = None) -> Teacher:
    """The teacher a spec names: the combination-ladder teacher
    (:mod:`~jbrl.agents.ppo.table_teacher`) or a rule policy."""
    if parse_policy_spec(spec)[0] == TABLE_TEACHER:
        return TableTeacher(spec)
    return PolicyTeacher(spec, stores)


def action_to(env: ServingEnv, plan: Plan) -> np.ndarray:
    """The action that moves ``env`` from its running plan to (the canonical form of)
    ``plan``: keep when ``plan`` is the running plan."""
    codec = env.codec
    if plan is env.plan or env.sig is None:
        return codec.keep_action()
    return codec.action_for(codec.canonical_signature(plan), env.sig)


# --------------------------------------------------------------------------- demonstrations


@dataclass
class Demo:
    """Teacher-labelled transitions, episode after episode."""

    obs: list[np.ndarray]
    actions: list[np.ndarray]
    rewards: list[float]
    episode_ends: list[int]


def collect_demos(
    bench: Workbench,
    teacher: Teacher,
    episodes: int,
    seed: int,
    student: Callable[[np.ndarray], np.ndarray] | None = None,
    on_episode: Callable[[], None] | None = None,
) -> Demo:
    """Teacher-labelled transitions; with ``student`` the student acts (DAgger), the teacher
    labels. ``on_episode`` is called after each episode (a progress bar)."""
    env = bench.env()
    demo = Demo([], [], [], [])
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        teacher.reset(env)
        for _ in range(bench.config.env.episode_steps):
            assert env.sig is not None
            label = env.codec.canonical_action(teacher(env), env.sig)
            act = label if student is None else student(obs)
            demo.obs.append(obs)
            demo.actions.append(label)
            obs, r, _, _, _ = env.step(act)
            demo.rewards.append(float(r))
        demo.episode_ends.append(len(demo.obs))
        if on_episode is not None:
            on_episode()
    return demo


def tune_teacher(
    bench: Workbench,
    bc: ImitationConfig,
    log: Log,
    progress: bool = False,
    stores: Stores | None = None,
) -> Teacher:
    """The candidate with the best mean reward on training-distribution episodes, as the
    teacher that ran them (its planner memo warm). ``stores``: planner memos the candidates
    share (solves are deterministic, so sharing changes the time, not the choice)."""
    env = bench.env()
    seeds = [bench.config.seed + 30_000 + i for i in range(bc.tune_episodes)]
    best: tuple[float, int, Teacher] | None = None
    n = len(bc.candidates)
    with ProgressBar(progress, n * len(seeds), "choosing the teacher", "episodes") as bar:
        for i, spec in enumerate(bc.candidates):
            bar.describe(f"({i + 1}/{n})")
            teacher = make_teacher(spec, stores)
            total = 0.0
            for sd in seeds:
                env.reset(seed=sd)
                teacher.reset(env)
                for _ in range(bench.config.env.episode_steps):
                    _, r, _, _, _ = env.step(teacher(env))
                    total += float(r)
                bar.advance()
            score = total / len(seeds)
            if best is None or score > best[0]:
                best = (score, i, teacher)
    assert best is not None
    log("bc/teacher_reward", best[0])
    log("bc/teacher_index", best[1])
    log("bc/teacher", bc.candidates[best[1]])
    return best[2]


def imitation_warm_start(
    model: Any, venv: Any, bench: Workbench, log: Log, progress: bool = False
) -> None:
    """Fit ``model``'s policy to the teacher (cross-entropy) and its value net to the teacher's
    discounted, normalised returns; sets ``venv``'s normalisation statistics from the demos.
    ``progress``: a bar with an ETA per phase (choosing the teacher, its demonstrations, each
    fit, each DAgger round) on stderr."""
    bc = bench.config.bc
    assert bc is not None
    t0, cpu0 = time.time(), time.process_time()
    stores: Stores = {}
    teacher = (
        tune_teacher(bench, bc, log, progress, stores)
        if bc.candidates
        else make_teacher(bc.teacher, stores)
    )
    gamma = bench.config.ppo.gamma
    with ProgressBar(progress, bc.episodes, "teacher demonstrations", "episodes") as bar:
        demo = collect_demos(
            bench, teacher, bc.episodes, bench.config.seed + 10_000, on_episode=bar.advance
        )
    log("bc/demo_seconds", time.time() - t0)
    rounds = [demo]
    codec = bench.env().codec
    keep, mask = codec.keep_action(), codec.masks()
    fit(model, venv, rounds, bc, gamma, keep, log, update_stats=True, progress=progress)
    for r in range(bc.dagger_rounds):
        actor = PpoActor(model, ObsNormalizer.of(venv))

        def student(obs: np.ndarray, actor: PpoActor = actor) -> np.ndarray:
            return actor.act(obs, mask)

        seed = bench.config.seed + 20_000 + 1000 * r
        label = f"DAgger round {r + 1}/{bc.dagger_rounds}"
        with ProgressBar(progress, bc.dagger_episodes, label, "episodes") as bar:
            extra = collect_demos(
                bench, teacher, bc.dagger_episodes, seed, student=student, on_episode=bar.advance
            )
        rounds.append(extra)
        fit(model, venv, rounds, bc, gamma, keep, log, update_stats=False, progress=progress)
    log("bc/seconds", time.time() - t0)
    log("bc/cpu_seconds", time.process_time() - cpu0)  # wall time on an idle core


# --------------------------------------------------------------------------- fitting


def fit(
    model: Any,
    venv: Any,
    rounds: list[Demo],
    bc: ImitationConfig,
    gamma: float,
    keep: np.ndarray,
    log: Log,
    update_stats: bool,
    progress: bool = False,
) -> None:
    """Supervised fit of the policy (weighted cross-entropy) and value (MSE) networks on all
    demo rounds so far; ``keep`` is the codec's keep action (labels that differ from it are
    plan changes); ``update_stats`` first feeds the demos to ``venv``'s observation and return
    statistics; ``progress``: a bar over the epochs."""
    import torch

    obs = np.array([o for d in rounds for o in d.obs], dtype=np.float32)
    acts = np.array([a for d in rounds for a in d.actions], dtype=np.int64)
    if update_stats:
        venv.obs_rms.update(obs)
        for d in rounds:  # discounted-return statistics as VecNormalize keeps them
            for seq in _episode_rewards(d):
                venv.ret_rms.update(np.array(_discounted_running(seq, gamma)))
    scale = math.sqrt(float(venv.ret_rms.var) + venv.epsilon)
    targets = [
        g for d in rounds for seq in _episode_rewards(d) for g in _returns(seq, gamma, scale)
    ]
    norm = ObsNormalizer.of(venv)
    x = torch.as_tensor(norm(obs))
    a = torch.as_tensor(acts)
    v = torch.as_tensor(np.array(targets, dtype=np.float32))
    mask = torch.as_tensor(np.tile(venv.env_method("action_masks", indices=[0])[0], (len(obs), 1)))
    # plan changes are rare next to "keep": weight them up so that the student learns when to
    # change, not only to keep (inverse-frequency, square-rooted)
    apply_ = np.any(acts != np.asarray(keep)[None, :], axis=1)
    frac = float(apply_.mean()) if len(acts) else 0.0
    w_apply = math.sqrt((1.0 - frac) / frac) if 0.0 < frac < 1.0 else 1.0
    weights = torch.as_tensor(np.where(apply_, w_apply, 1.0).astype(np.float32))
    label = f"fitting to {len(obs)} labelled steps"
    with ProgressBar(progress, bc.epochs, label, "epochs") as bar:
        losses = _train_epochs(model.policy, x, a, v, mask, weights, bc, bar.advance)
    n = len(obs)
    log("bc/policy_loss", losses[0] / n)
    log("bc/value_loss", losses[1] / n)
    _log_agreement(model.policy, x, a, mask, apply_, log)
    log("bc/change_fraction", frac)
    log("bc/samples", n)


def _episode_rewards(d: Demo) -> list[list[float]]:
    out = []
    start = 0
    for end in d.episode_ends:
        out.append(d.rewards[start:end])
        start = end
    return out


def _discounted_running(rewards: list[float], gamma: float) -> list[float]:
    """The running discounted sums VecNormalize's return statistics see."""
    ret = 0.0
    seq = []
    for r in rewards:
        ret = ret * gamma + r
        seq.append(ret)
    return seq


def _returns(rewards: list[float], gamma: float, scale: float) -> list[float]:
    """Discounted returns to go of ``rewards / scale`` (value targets)."""
    g = 0.0
    out = []
    for r in reversed(rewards):
        g = r / scale + gamma * g
        out.append(g)
    return out[::-1]


def _train_epochs(
    policy: Any,
    x: Any,
    a: Any,
    v: Any,
    mask: Any,
    weights: Any,
    bc: ImitationConfig,
    on_epoch: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """``bc.epochs`` of minibatch Adam; the last epoch's summed policy and value losses;
    ``on_epoch`` is called after each epoch."""
    import torch

    opt = torch.optim.Adam(policy.parameters(), lr=bc.learning_rate)
    n = len(x)
    rng = np.random.default_rng(0)
    tot_pi = tot_v = 0.0
    for _ in range(bc.epochs):
        perm = rng.permutation(n)
        tot_pi = tot_v = 0.0
        for i in range(0, n, bc.batch_size):
            idx = torch.as_tensor(perm[i : i + bc.batch_size])
            values, logp, _ = policy.evaluate_actions(x[idx], a[idx], action_masks=mask[idx])
            wb = weights[idx]
            loss_pi = -(wb * logp).sum() / wb.sum()
            loss_v = torch.nn.functional.mse_loss(values.flatten(), v[idx])
            loss = loss_pi + 0.5 * loss_v
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            tot_pi += float(loss_pi.detach()) * len(idx)
            tot_v += float(loss_v.detach()) * len(idx)
        if on_epoch is not None:
            on_epoch()
    return tot_pi, tot_v


def _log_agreement(policy: Any, x: Any, a: Any, mask: Any, apply_: np.ndarray, log: Log) -> None:
    """How often the fitted policy's greedy action equals the label (all, and on changes)."""
    import torch

    with torch.no_grad():
        dist = policy.get_distribution(x, action_masks=mask.numpy())
        pred = dist.get_actions(deterministic=True)
        same = (pred == a).all(dim=1).float()
        agree = float(same.mean())
        sel = torch.as_tensor(apply_)
        agree_apply = float(same[sel].mean()) if bool(sel.any()) else math.nan
    log("bc/exact_action_agreement", agree)
    log("bc/exact_agreement_on_changes", agree_apply)
