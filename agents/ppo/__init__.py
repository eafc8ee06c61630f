"""The learned policy (MaskablePPO): the deployed policy behind the ``Policy`` interface
(:mod:`~jbrl.agents.ppo.policy`) and its training (:mod:`~jbrl.agents.ppo.train`)."""

from jbrl.agents.ppo.policy import (
    CONFIG_FILE,
    MODEL_FILE,
    NORM_FILE,
    ObsNormalizer,
    PpoActor,
    PpoPolicy,
    resolve_policy_dir,
    shipped_policy_dir,
)

__all__ = [
    "CONFIG_FILE",
    "MODEL_FILE",
    "NORM_FILE",
    "ObsNormalizer",
    "PpoActor",
    "PpoPolicy",
    "resolve_policy_dir",
    "shipped_policy_dir",
]
