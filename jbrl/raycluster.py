"""The Ray cluster that evaluation, training sweeps and the Ray Serve backend run on.

One home for starting or joining Ray, so that every command does it the same way:

* **local** (no address, or ``local``): a one-node Ray started for the run. Everything binds to
  127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray take the loopback address as the
  node address), the dashboard is off, usage statistics are off, and Ray's session files go to
  ``<run dir>/ray-session``. Ray's Unix socket paths may not exceed 107 bytes and Ray adds up
  to :data:`SESSION_SUFFIX` characters below its temp dir, so when the run directory's path is
  too long the files go to a short temporary directory (``/tmp/jbrl-ray-XXXX``) that
  ``<run dir>/ray-session`` links to. Unless ``RAY_AUTH_MODE`` is set, the node uses Ray's
  token authentication with a fresh random token kept in this process's environment (nothing is
  written to ``~/.ray``); the environment is restored on :meth:`RayCluster.close`.
* **an existing cluster** (``auto``, ``ray://host:10001``, ``host:6379``): ``ray.init(address)``
  with that cluster's own settings (its nodes, resources, authentication).

```python
with RayCluster(address=None, run_dir=Path("runs/evaluate")) as cluster:
    ...  # ray.remote tasks, Ray Tune, Ray Serve
```
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from jbrl.errors import InputError, Param

LOCAL = "local"
"""The address that means: start a one-node Ray for this run."""
SESSION_LINK = "ray-session"
"""Name of the session directory (or of the link to it) in the run directory."""
MAX_SOCKET_PATH = 107
"""Longest Unix socket path Linux accepts (``sun_path`` less its terminating byte)."""
SESSION_SUFFIX = 64
"""What Ray appends to its temp dir for its longest socket path:
``/session_YYYY-MM-DD_HH-MM-SS_UUUUUU_PID/sockets/plasma_store`` (a 7-digit pid)."""
_ADDRESS = re.compile(r"^(auto|ray://[^\s/]+(:\d+)?|[A-Za-z0-9_.-]+:\d+)$")


def ray_address(value: str | None, field: str | Param = Param.RAY) -> str | None:
    """``value`` checked: None for a local Ray (no address or ``local``), else the address of
    an existing cluster (``auto``, ``ray://host[:port]`` or ``host:port``)."""
    if value is None or value.strip() in ("", LOCAL):
        return None
    value = value.strip()
    if not _ADDRESS.match(value):
        raise InputError(
            "must be empty or 'local' (start a local Ray), 'auto' (the cluster this machine "
            "belongs to), 'ray://HOST[:PORT]' (Ray Client) or HOST:PORT (the head's GCS)",
            field=field,
            value=value,
        )
    return value


def require_ray(what: str, field: str | Param = Param.RAY) -> None:
    """Bad input (exit 2) when Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise InputError(
            f"{what} needs Ray, which is not installed: install jbrl with its 'ray' extra "
            "(pip install 'jbrl[ray]')",
            field=field,
        ) from None


_TOKEN: str | None = None


def _process_token() -> str:
    """One random token per process: Ray caches the token it first read, so every local Ray
    this process starts uses the same one."""
    global _TOKEN
    if _TOKEN is None:
        _TOKEN = secrets.token_urlsafe(32)
    return _TOKEN


def _refresh_ray_config() -> None:
    """Make an already imported Ray see the auth settings just put in the environment."""
    try:
        # private and absent from Ray's type information; missing in some versions (handled)
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # older/newer Ray: it reads the environment at init
        pass


class RayCluster:
    """Starts a local Ray (``address`` None) or joins a cluster; :meth:`close` undoes it.

    Args:
        address: an existing cluster (see :func:`ray_address`); None starts a local one.
        run_dir: where ``ray-session`` goes (a local Ray's session files, or a link to them).
        num_cpus: CPUs a local Ray reports (default: the machine's).
        resources: custom resources of a local Ray's node.
        keep_session: keep a local Ray's session files after :meth:`close`.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        run_dir: Path | None = None,
        num_cpus: int | None = None,
        resources: Mapping[str, float] | None = None,
        keep_session: bool = True,
    ) -> None:
        self.address = ray_address(address)
        self.run_dir = run_dir
        self.num_cpus = num_cpus
        self.resources = dict(resources or {})
        self.keep_session = keep_session
        self.session_dir: str | None = None
        self._linked = False
        self._saved_env: dict[str, str | None] = {}

    @property
    def local(self) -> bool:
        """Whether this starts its own one-node Ray (rather than joining a cluster)."""
        return self.address is None

    def start(self) -> None:
        """Start the local node, or connect to the cluster."""
        import ray

        if ray.is_initialized():
            raise RuntimeError("Ray is already initialised in this process")
        if self.address is not None:
            ray.init(
                address=self.address,
                namespace="jbrl",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            return
        self._set_env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind to 127.0.0.1
        self._set_env("RAY_USAGE_STATS_ENABLED", "0")
        if "RAY_AUTH_MODE" not in os.environ:
            # token auth with a fresh token held in the environment, not in ~/.ray
            self._set_env("RAY_AUTH_TOKEN", _process_token())
            self._set_env("RAY_AUTH_MODE", "token")
            _refresh_ray_config()
        self.session_dir = self._make_session_dir()
        ray.init(
            address="local",
            _node_ip_address="127.0.0.1",
            include_dashboard=False,
            _temp_dir=self.session_dir,
            num_cpus=self.num_cpus,
            resources=self.resources,
            namespace="jbrl",
            log_to_driver=False,
            logging_level=logging.WARNING,
        )

    def close(self) -> None:
        """Disconnect (and stop a local node), restore the environment, remove the session
        files unless they are kept."""
        import ray

        try:
            if ray.is_initialized():
                ray.shutdown()
        finally:
            for key, old in self._saved_env.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
            if "RAY_AUTH_MODE" in self._saved_env:
                _refresh_ray_config()  # a later Ray in this process must not expect our token
            self._saved_env.clear()
            if self.session_dir and not self.keep_session:
                shutil.rmtree(self.session_dir, ignore_errors=True)
                if self._linked and self.run_dir is not None:
                    link = self.run_dir / SESSION_LINK
                    if link.is_symlink():
                        link.unlink()

    def __enter__(self) -> RayCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def describe(self) -> str:
        """One line for the user: where Ray runs."""
        if self.address is not None:
            return f"Ray cluster at {self.address}"
        return f"local Ray on 127.0.0.1 (session files in {self.session_dir})"

    def _make_session_dir(self) -> str:
        """``<run dir>/ray-session`` when Ray's socket paths fit below it; else a short
        temporary directory linked from there (see the module docstring)."""
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            here = (self.run_dir / SESSION_LINK).absolute()
            if len(str(here)) + SESSION_SUFFIX <= MAX_SOCKET_PATH and not here.is_symlink():
                here.mkdir(exist_ok=True)
                return str(here)
        short = tempfile.mkdtemp(prefix="jbrl-ray-", dir="/tmp")
        if self.run_dir is not None:
            link = self.run_dir / SESSION_LINK
            if link.is_symlink() or link.is_file():
                link.unlink()
            link.symlink_to(short)
            self._linked = True
        return short

    def _set_env(self, key: str, value: str) -> None:
        if key not in self._saved_env:
            self._saved_env[key] = os.environ.get(key)
        os.environ[key] = value
