"""The Ray cluster and Serve instance under the Ray backend: started (or joined) and shut down.

Started locally (the default), one Ray node provides every scenario worker's custom resource
``jbrl-worker/<name>`` (two units each, so a worker can load its new model beside the old one
during a make-before-break switch). Everything binds to 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_
CLUSTER=0`` makes Ray pick the loopback address as the node address), the dashboard and Serve's
HTTP proxy are off, and Ray's session files live in a short temporary directory
(``/tmp/jbrl-ray-XXXX``; Unix socket paths are limited to 107 bytes) linked from the run
directory as ``ray-session``. Unless ``RAY_AUTH_MODE`` is set, the local cluster uses Ray's
token authentication with a fresh random token kept in the environment (nothing is written to
``~/.ray``); the environment is restored on :meth:`RaySession.close`. Joining an existing
cluster (``address=``) uses that cluster's settings.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path

RESOURCE_PREFIX = "jbrl-worker/"
SESSION_LINK = "ray-session"


def worker_resource(worker: str) -> str:
    """The Ray custom resource that stands for scenario worker ``worker``."""
    return RESOURCE_PREFIX + worker


def _refresh_ray_config() -> None:
    """Make an already imported Ray see the auth settings just put in the environment."""
    try:
        # private and absent from Ray's type information; missing in some versions (handled)
        from ray._raylet import Config  # type: ignore[attr-defined]

        Config.initialize("")
    except (ImportError, AttributeError):  # older/newer Ray: it reads the environment at init
        pass


_TOKENS: list[str] = []


def _process_token() -> str:
    """The auth token of this process's local clusters: fresh per process, the same for every
    session in it (Ray's client caches the first token it reads, so a second session with a new
    token would fail to authenticate)."""
    if not _TOKENS:
        _TOKENS.append(secrets.token_urlsafe(32))
    return _TOKENS[0]


class RaySession:
    """Starts (or joins) Ray and Serve for the workers ``workers``; :meth:`close` undoes it.

    Args:
        workers: the scenario's workers (each gets a custom resource on a local cluster).
        address: an existing Ray cluster to join (default: start a local one).
        num_cpus: CPUs the local Ray node reports (default: the machine's).
        run_dir: where the ``ray-session`` link goes.
        keep_session: keep Ray's session directory after :meth:`close`.
    """

    def __init__(
        self,
        workers: list[str],
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        run_dir: Path | None = None,
        keep_session: bool = True,
    ) -> None:
        self.workers = list(workers)
        self.address = address
        self.num_cpus = num_cpus
        self.run_dir = run_dir
        self.keep_session = keep_session
        self.session_dir: str | None = None
        self._saved_env: dict[str, str | None] = {}

    def start(self) -> None:
        """Start a local Ray node (or join ``address``) and Serve without an HTTP proxy."""
        import ray
        from ray import serve

        if self.address is None:
            self._set_env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind to 127.0.0.1
            self._set_env("RAY_USAGE_STATS_ENABLED", "0")
            if "RAY_AUTH_MODE" not in os.environ:
                # token auth with a fresh token held in the environment, not in ~/.ray
                self._set_env("RAY_AUTH_TOKEN", _process_token())
                self._set_env("RAY_AUTH_MODE", "token")
                _refresh_ray_config()
            self.session_dir = tempfile.mkdtemp(prefix="jbrl-ray-", dir="/tmp")
            self._link_session()
            ray.init(
                address="local",
                _node_ip_address="127.0.0.1",
                include_dashboard=False,
                _temp_dir=self.session_dir,
                num_cpus=self.num_cpus,
                resources={worker_resource(w): 2.0 for w in self.workers},
                namespace="jbrl",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        else:
            ray.init(
                address=self.address,
                namespace="jbrl",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        serve.start(proxy_location="Disabled", http_options={"host": "127.0.0.1", "port": 0})

    def close(self) -> None:
        """Shut Serve and Ray down, restore the environment, remove the session files unless
        they are kept."""
        import ray
        from ray import serve

        try:
            if ray.is_initialized():
                serve.shutdown()
        finally:
            if ray.is_initialized():
                ray.shutdown()
            for key, old in self._saved_env.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
            self._saved_env.clear()
            if self.session_dir and not self.keep_session:
                shutil.rmtree(self.session_dir, ignore_errors=True)
                if self.run_dir is not None:
                    link = self.run_dir / SESSION_LINK
                    if link.is_symlink():
                        link.unlink()

    def _link_session(self) -> None:
        if self.run_dir is None or self.session_dir is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        link = self.run_dir / SESSION_LINK
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.session_dir)

    def _set_env(self, key: str, value: str) -> None:
        if key not in self._saved_env:
            self._saved_env[key] = os.environ.get(key)
        os.environ[key] = value
