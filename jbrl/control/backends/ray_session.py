"""The Ray cluster and Serve instance under the Ray backend: started (or joined) and shut down.

Ray itself is started or joined by :class:`jbrl.raycluster.RayCluster` (loopback only, token
authentication and session files under the run directory for a local node; an existing cluster's
own settings otherwise). Started locally (the default), the one Ray node provides every scenario
worker's custom resource (two units each, so a worker can load its new model beside the old one
during a make-before-break switch). On an existing cluster the nodes provide them: see
:mod:`jbrl.control.backends.placement`. Serve starts without an HTTP proxy (the controller calls
the ingress through its handle). Closing shuts a local Serve and Ray down; on a joined cluster it
deletes only jbrl's own Serve applications (every name starting with ``jbrl-``) and disconnects,
leaving the cluster and its other applications running.
"""

from __future__ import annotations

from pathlib import Path

from jbrl.control.backends.placement import Placement
from jbrl.raycluster import SESSION_LINK, RayCluster

__all__ = ["APP_PREFIX", "SESSION_LINK", "RaySession"]

APP_PREFIX = "jbrl-"
"""Every Serve application jbrl deploys is named ``jbrl-...``."""


class RaySession:
    """Starts (or joins) Ray and Serve for the workers of ``placement``; :meth:`close` undoes it.

    Args:
        placement: which Ray resource places each scenario worker's replicas (a local cluster
            provides every one of them, two units each).
        address: an existing Ray cluster to join (default: start a local one).
        num_cpus: CPUs the local Ray node reports (default: the machine's).
        run_dir: where the ``ray-session`` directory (or link) goes.
        keep_session: keep Ray's session directory after :meth:`close`.
    """

    def __init__(
        self,
        placement: Placement,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        run_dir: Path | None = None,
        keep_session: bool = True,
    ) -> None:
        self.placement = placement
        self.cluster = RayCluster(
            address,
            run_dir=run_dir,
            num_cpus=num_cpus,
            resources=placement.needed() if address is None else None,
            keep_session=keep_session,
        )

    @property
    def address(self) -> str | None:
        return self.cluster.address

    @property
    def session_dir(self) -> str | None:
        """A local cluster's session directory (None until started, or when joining one)."""
        return self.cluster.session_dir

    def start(self) -> None:
        """Start a local Ray node (or join ``address``), check that the cluster provides every
        worker's resource, and start Serve without an HTTP proxy."""
        from ray import serve

        self.cluster.start()
        try:
            if self.cluster.address is not None:
                self.placement.check_cluster()
            serve.start(proxy_location="Disabled", http_options={"host": "127.0.0.1", "port": 0})
        except BaseException:
            self.cluster.close()
            raise

    def close(self) -> None:
        """Shut Serve and Ray down (on a joined cluster: disconnect), restore the environment,
        remove the session files unless they are kept."""
        import ray
        from ray import serve

        try:
            if ray.is_initialized() and self.cluster.local:
                serve.shutdown()
            elif ray.is_initialized():
                for app in serve.status().applications:
                    if app.startswith(APP_PREFIX):
                        serve.delete(app, _blocking=True)
        finally:
            self.cluster.close()
