"""The learned policy (MaskablePPO).

* :mod:`~jbrl.agents.ppo.policy` — the deployed policy behind the ``Policy`` interface;
* :mod:`~jbrl.agents.ppo.files` — the files of a policy folder, read without unpickling;
* :mod:`~jbrl.agents.ppo.config` — the training configuration (``TrainConfig``);
* :mod:`~jbrl.agents.ppo.workbench` — what the envs of a run share;
* :mod:`~jbrl.agents.ppo.imitation` — the imitation teacher (an adapter of a rule policy),
  demonstrations and the supervised fit;
* :mod:`~jbrl.agents.ppo.callbacks` — serving figures, validation, hyperparameters;
* :mod:`~jbrl.agents.ppo.train` — the training run (``jbrl train``);
* :mod:`~jbrl.agents.ppo.sweep_config`, :mod:`~jbrl.agents.ppo.sweep` — training sweeps on Ray
  Tune (``jbrl sweep``), each trial a training run scored on validation.
"""

from jbrl.agents.ppo.files import CONFIG_FILE, MODEL_FILE, NORM_FILE
from jbrl.agents.ppo.policy import (
    ObsNormalizer,
    PpoActor,
    PpoPolicy,
    policy_folder,
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
    "policy_folder",
    "resolve_policy_dir",
    "shipped_policy_dir",
]
