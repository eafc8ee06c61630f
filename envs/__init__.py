"""The RL environment layer (installed as ``jbrl.envs``): :class:`ServingEnv`, registered with
gymnasium as ``jbrl/Serving-v0`` when this package is imported.

```python
import gymnasium as gym
import jbrl.envs  # registers jbrl/Serving-v0

env = gym.make("jbrl/Serving-v0")  # vqa, fluid simulator; or config=EnvConfig / YAML / dict
```
"""

from gymnasium.envs.registration import register, registry

from jbrl.envs.codec import ActionCodec, PlanSignature
from jbrl.envs.config import EnvConfig, RewardWeights, TraceComponent, load_env_config
from jbrl.envs.observation import ObservationEncoder
from jbrl.envs.serving import ServingEnv
from jbrl.planning.tables import ServingSpec

ENV_ID = "jbrl/Serving-v0"
DEFAULT_EPISODE_STEPS = 120

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="jbrl.envs.serving:ServingEnv",
        max_episode_steps=DEFAULT_EPISODE_STEPS,
    )

__all__ = [
    "ENV_ID",
    "ActionCodec",
    "EnvConfig",
    "ObservationEncoder",
    "PlanSignature",
    "RewardWeights",
    "ServingEnv",
    "ServingSpec",
    "TraceComponent",
    "load_env_config",
]
