"""Regenerate the measured profiles and the embedded scenarios (vqa, vehicle, fleet).

    taskset -c 1 .venv/bin/python experiments/profile_scenarios.py measure   # ~1 h on one core
    .venv/bin/python experiments/profile_scenarios.py measure --models resnet50  # re-measure one
    .venv/bin/python experiments/profile_scenarios.py build                  # vehicle, fleet
    .venv/bin/python experiments/profile_scenarios.py build --only vqa       # see DEFAULT_BUILD

``measure`` (:mod:`scenario_measure`) runs ``jbrl profile`` with one thread at batch sizes 1, 2,
4 and 8 for every CPU variant of the embedded scenarios and writes
``configs/profiles/cpu-1thread.yaml`` (the ``jbrl profile -o`` format) and the raw records
with the machine's load around each model (``experiments/results/profiles_cpu.json``).

``build`` reads the CPU profiles, derives the GPU profiles (NVIDIA T4 and V100,
``configs/profiles/gpu-{t4,v100}-derived.yaml``, formula in their headers and
:mod:`scenario_common`), and writes ``configs/scenarios/{vqa,vehicle,fleet}.yaml``
(:mod:`scenario_vqa`, :mod:`scenario_vehicle`, :mod:`scenario_fleet`) with every number's
provenance: twice, the second time with nominal rates at half of the largest sustainable load
that the MILP finds for the first. Each file is then validated with
:func:`jbrl.scenario.load_scenario`.

Rules: every number is either measured here or a cited public figure; derived numbers state
their formula. Nothing is copied from JellyBean's data.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenario_common import (  # noqa: E402
    SCENARIOS,
    dump_commented,
    gpu_profiles,
    load_profiles,
    milp_max_scale,
    write_gpu_file,
)

Writer = Callable[..., tuple[dict[str, Any], list[str]]]
DEFAULT_BUILD = ("vehicle", "fleet")
"""``build`` without ``--only``: vqa is rebuilt only on request (``--only vqa``), together with
retraining the shipped vqa policy, whose plan ladder and layout follow vqa's profiles."""


def _writers() -> dict[str, tuple[Writer, Mapping[str, str]]]:
    from scenario_fleet import COMMENTS as FLEET_COMMENTS
    from scenario_fleet import write_fleet
    from scenario_vehicle import COMMENTS as VEHICLE_COMMENTS
    from scenario_vehicle import write_vehicle
    from scenario_vqa import COMMENTS as VQA_COMMENTS
    from scenario_vqa import write_vqa

    return {
        "vqa": (write_vqa, VQA_COMMENTS),
        "vehicle": (write_vehicle, VEHICLE_COMMENTS),
        "fleet": (write_fleet, FLEET_COMMENTS),
    }


def build(names: list[str] | None = None, cpu_file: str | None = None) -> None:
    """Derive the GPU profiles and write the scenarios (all, or ``names``) from the CPU
    profiles (``configs/profiles/cpu-1thread.yaml``, or ``cpu_file``)."""
    cpu = load_profiles(cpu_file) if cpu_file else load_profiles()
    prof = {"cpu": cpu, "t4": gpu_profiles("t4", cpu), "v100": gpu_profiles("v100", cpu)}
    for gpu in ("t4", "v100"):
        print(f"wrote {write_gpu_file(gpu, prof[gpu])}")
    cpu_prov = next(iter(cpu.values()))["provenance"].split(";")[0]
    from jbrl.scenario import load_scenario

    for name, (writer, comments) in _writers().items():
        if name not in (names or DEFAULT_BUILD):
            continue
        doc, _ = writer(prof, cpu_prov)  # pass 1: nominal rates 1 (or the site sizes)
        scale = milp_max_scale(doc)
        doc, header = writer(prof, cpu_prov, scale)  # pass 2: half the MILP's maximum
        path = SCENARIOS / f"{name}.yaml"
        path.write_text("\n".join(header) + "\n" + dump_commented(doc, comments), "utf-8")
        sc = load_scenario(path)
        print(
            f"{name}: valid, {len(sc.workers)} workers, {len(sc.profiles)} profiles, "
            f"nominal {sc.nominal_rates()}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="run the profiler, write configs/profiles/cpu-1thread.yaml")
    m.add_argument("--models", default="", help="re-measure only these (comma-separated), merge")
    b = sub.add_parser("build", help="derive GPU profiles, write configs/scenarios/*.yaml")
    b.add_argument("--only", default="", help="only these scenarios (comma-separated)")
    b.add_argument("--cpu-profiles", default=None, help="CPU profile file (default: measured)")
    args = ap.parse_args()
    if args.cmd == "measure":
        from scenario_measure import measure

        measure([x for x in args.models.split(",") if x] or None)
    else:
        build([x for x in args.only.split(",") if x] or None, args.cpu_profiles)


if __name__ == "__main__":
    main()
