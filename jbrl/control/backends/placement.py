"""Which Ray node serves each scenario worker: one Ray custom resource per worker.

Every replica of scenario worker ``W`` asks for one unit of ``W``'s resource, so Ray places it on
a node that provides that resource. The **convention** is the resource ``jbrl-worker/W``
(:func:`worker_resource`), two units per worker (a worker loads its new model beside the old one
during a make-before-break switch):

* one machine (``jbrl control --backend ray`` without ``--ray-address``): the local Ray node
  provides every worker's resource, so one machine emulates all the workers;
* a real cluster: the node that *is* worker ``W`` starts with
  ``ray start --address HEAD:6379 --resources '{"jbrl-worker/W": 2}'``; on KubeRay, the worker
  group of that node carries the same JSON in ``rayStartParams``
  (``resources: '"{\\"jbrl-worker/W\\": 2}"'``).

A **placement file** maps workers to resources the nodes already have (or puts several workers on
one node); workers it does not list follow the convention::

    # placement.yaml: scenario worker -> Ray custom resource of the node that serves it
    workers:
      edge-cpu-1: edge-node-a       # the node started with --resources '{"edge-node-a": 4}'
      edge-cpu-2: edge-node-a       # two workers on one node: 2 units each
      cloud-gpu-1: gpu-node-1

Joining a cluster, the backend first checks that the cluster provides every worker's resource
(two units per worker mapped to it) and stops with a message naming the missing ones, instead of
waiting forever for a replica Ray cannot place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jbrl.errors import InputError, Param

RESOURCE_PREFIX = "jbrl-worker/"
UNITS_PER_WORKER = 2
"""Units of its resource a worker needs: its replica and, during a switch, the next one."""


def worker_resource(worker: str) -> str:
    """The Ray custom resource that stands for scenario worker ``worker`` by convention."""
    return RESOURCE_PREFIX + worker


@dataclass(frozen=True)
class Placement:
    """Scenario worker -> the Ray custom resource its replicas ask for (see the module
    docstring); ``file`` is the placement file it came from, if any."""

    resources: Mapping[str, str]
    file: str | None = None

    @classmethod
    def convention(cls, workers: Iterable[str]) -> Placement:
        """Every worker on its ``jbrl-worker/<name>`` resource."""
        return cls({w: worker_resource(w) for w in workers})

    @classmethod
    def load(cls, path: str | Path, workers: Iterable[str]) -> Placement:
        """Read a placement file for the scenario workers ``workers``."""
        file = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text("utf-8"))
        except FileNotFoundError:
            raise InputError("no such file", file=file) from None
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read YAML: {exc}", file=file) from None
        if not isinstance(raw, dict) or set(raw) != {"workers"}:
            raise InputError(
                "a placement file is a mapping with one key, 'workers'", file=file, value=raw
            )
        given = raw["workers"] or {}
        if not isinstance(given, dict):
            raise InputError("must map worker names to resource names", file=file,
                             field="workers", value=given)  # fmt: skip
        names = list(workers)
        for w, res in given.items():
            if w not in names:
                raise InputError(
                    f"not a worker of the scenario (workers: {', '.join(names)})",
                    file=file,
                    field=f"workers.{w}",
                    value=w,
                )
            if not isinstance(res, str) or not res.strip():
                raise InputError("must be a Ray resource name", file=file,
                                 field=f"workers.{w}", value=res)  # fmt: skip
        out = {w: str(given.get(w, worker_resource(w))).strip() for w in names}
        return cls(out, file)

    def resource(self, worker: str) -> str:
        return self.resources[worker]

    def needed(self) -> dict[str, float]:
        """Units of each resource the workers need (:data:`UNITS_PER_WORKER` per worker); a
        local Ray node provides exactly these."""
        return {r: float(UNITS_PER_WORKER * n) for r, n in Counter(self.resources.values()).items()}

    def missing(self, available: Mapping[str, float]) -> dict[str, tuple[float, float]]:
        """Resources the cluster lacks: ``{resource: (needed, has)}``."""
        return {
            r: (need, float(available.get(r, 0.0)))
            for r, need in self.needed().items()
            if float(available.get(r, 0.0)) < need
        }

    def check_cluster(self) -> None:
        """Bad input when the connected Ray cluster lacks a worker's resource."""
        import ray

        missing = self.missing(ray.cluster_resources())
        if not missing:
            return
        by_res: dict[str, list[str]] = {}
        for w, r in self.resources.items():
            by_res.setdefault(r, []).append(w)
        parts = [
            f"{r!r} for {', '.join(by_res[r])} (needs {need:g} units, the cluster has {has:g})"
            for r, (need, has) in sorted(missing.items())
        ]
        raise InputError(
            "the Ray cluster lacks the custom resources that place these scenario workers' "
            f"replicas: {'; '.join(parts)}. Start each worker's node with e.g. ray start "
            f"--resources '{{\"{next(iter(sorted(missing)))}\": {UNITS_PER_WORKER}}}' (KubeRay: "
            "the worker group's rayStartParams), or map the workers to resources the nodes "
            "have in a placement file (--placement)",
            file=self.file,
            field=Param.PLACEMENT if self.file else Param.RAY_ADDRESS,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "resources": dict(self.resources)}


def replica_nodes(apps: Iterable[str]) -> dict[str, str]:
    """The Ray node id each Serve application's replica runs on (asked from the replica)."""
    from ray import serve

    responses = {a: serve.get_app_handle(a).node_id.remote() for a in apps}
    return {a: str(r.result(timeout_s=60)) for a, r in responses.items()}
