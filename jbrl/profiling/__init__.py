"""Profiling of real PyTorch model variants (``jbrl profile``).

Models are built through ``transformers`` from configurations with random weights (no
download), measured on this machine, and written as the ``profiles:`` list a scenario file
accepts. ``torch`` and ``transformers`` are imported lazily, so importing this package is
cheap and works without them; measuring needs them (``pip install jbrl[profile]``).
"""

from jbrl.profiling.models import MODELS, ModelSpec, model_names, resolve_model
from jbrl.profiling.profiler import (
    ProfileRecord,
    check_device,
    cpu_model_name,
    parse_operator_map,
    profile_models,
    profiles_yaml,
    records_to_profiles,
    write_profiles,
)

__all__ = [
    "MODELS",
    "ModelSpec",
    "ProfileRecord",
    "check_device",
    "cpu_model_name",
    "model_names",
    "parse_operator_map",
    "profile_models",
    "profiles_yaml",
    "records_to_profiles",
    "resolve_model",
    "write_profiles",
]
