"""What every env of a training run shares (:class:`Workbench`): the config, the scenario and,
for ``action: ladder`` or ``combo_ladder``, the action table; and how the run's envs are made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jbrl.agents.ppo.config import TrainConfig
from jbrl.envs.config import EnvConfig
from jbrl.envs.serving import LADDER_FILES, LadderTable, ServingEnv, load_ladder, milp_ladder
from jbrl.planning.tables import ServingSpec
from jbrl.scenario.derive import with_load_time
from jbrl.scenario.loader import load_scenario
from jbrl.scenario.model import Scenario


@dataclass
class Workbench:
    """The scenario (with ``env.load_time_s`` applied), the env config and the action table
    (a plan ladder or a combination ladder, for the ladder designs)."""

    config: TrainConfig
    scenario: Scenario
    ladder: LadderTable | None = None

    @classmethod
    def build(cls, config: TrainConfig, run_dir: Path | None = None) -> Workbench:
        """Load the scenario; for ``action: ladder`` / ``combo_ladder`` also the action table:
        ``env.ladder`` if set (relative to ``run_dir``), else ``run_dir``'s ladder.json /
        combo_ladder.json (a resumed run), else built with the MILP
        (:meth:`PlanLadder.milp <jbrl.envs.ladder.PlanLadder.milp>`,
        :meth:`ComboLadder.milp <jbrl.envs.combo_ladder.ComboLadder.milp>`)."""
        env_cfg = config.env
        base = load_scenario(env_cfg.scenario)
        ladder = None
        name = LADDER_FILES.get(env_cfg.action)
        if name is not None:
            spec = ServingSpec(base, env_cfg.accuracy)  # capacities: load times do not matter
            file = Path(env_cfg.ladder) if env_cfg.ladder else None
            if file is not None and not file.is_absolute() and run_dir is not None:
                file = run_dir / file
            if file is None and run_dir is not None and (run_dir / name).is_file():
                file = run_dir / name
            if file is not None:
                ladder = load_ladder(spec, env_cfg.action, file)
            else:
                ladder = milp_ladder(
                    spec,
                    env_cfg.action,
                    env_cfg.ladder_step,
                    env_cfg.ladder_time_limit,
                    config.table_processes,
                )
        scenario = with_load_time(base, env_cfg.load_time_s, field="load_time_s")
        return cls(config, scenario, ladder)

    def env(self, **overrides: Any) -> ServingEnv:
        """A training env (``overrides``: env config fields)."""
        cfg = self.config.env
        if overrides:
            cfg = EnvConfig.model_validate({**cfg.model_dump(), **overrides})
        return ServingEnv(cfg, scenario_obj=self.scenario, ladder=self.ladder)

    def vec_env(self, n: int, seed: int) -> Any:
        """``n`` monitored, time-limited envs in a ``DummyVecEnv`` seeded ``seed + i``."""
        from gymnasium.wrappers import TimeLimit
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv

        steps = self.config.env.episode_steps

        def make(i: int) -> Callable[[], Any]:
            return lambda: Monitor(TimeLimit(self.env(), max_episode_steps=steps))

        venv = DummyVecEnv([make(i) for i in range(n)])
        venv.seed(seed)
        return venv
