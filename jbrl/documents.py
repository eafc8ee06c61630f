"""Reading user files within bounds: the one way jbrl reads a file it is given.

Every loader (scenario YAML, JellyBean directories, traces, fault schedules, plans, env and
training configs, the controller's state file, policy folders) reads through here, so that
each gets the same guarantees:

* only regular files are read (not a FIFO that blocks, not ``/proc`` or a device), and at most
  :attr:`~jbrl.limits.Limits.file_bytes` (YAML: ``yaml_bytes``) of them;
* text must be UTF-8;
* JSON and YAML are parsed without unbounded recursion (a document nested deeper than the limit
  ``depth``, or with more than ``nodes`` values counting YAML aliases where they expand, or an
  alias cycle, is refused) and with no non-finite number anywhere (``NaN``, ``Infinity``,
  ``.inf``, ``1e999``: NaN passes every ``< 0`` check, so it is stopped at the door);
* every failure is an :class:`~jbrl.errors.InputError` naming the file (exit 2, no traceback).
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

import yaml

from jbrl import limits
from jbrl.errors import InputError

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it (5x faster; libyaml refuses nesting over 1000)."""


def read_bytes(path: str | Path, limit: str = "file_bytes") -> bytes:
    """The content of the regular file ``path``, at most the limit ``limit`` (bytes)."""
    p = Path(path)
    cap = int(getattr(limits.current(), limit))
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError("no such file", file=str(p)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", file=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=str(p)) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError("is a directory, not a file", file=str(p))
        if not stat.S_ISREG(st.st_mode):
            raise InputError("not a regular file", file=str(p))
        if st.st_size > cap:
            raise limits.over_limit(limit, st.st_size, file=str(p), what="file size (bytes)")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(cap + 1)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=str(p)) from None
    finally:
        os.close(fd)
    if len(data) > cap:
        raise limits.over_limit(limit, len(data), file=str(p), what="file size (bytes)")
    return data


def read_text(path: str | Path, limit: str = "file_bytes") -> str:
    """:func:`read_bytes` decoded as UTF-8 (a byte-order mark is dropped)."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})",
            file=str(path),
        ) from None


def parse_json(text: str | bytes, file: str) -> Any:
    """Parse JSON text, then :func:`check_document` (which names a NaN's or an infinity's
    place: JSON's ``NaN``/``Infinity`` and ``1e999`` parse to such floats first)."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise _too_deep(file) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {_one_line(str(exc))}", file=file) from None
    except (ValueError, UnicodeDecodeError) as exc:  # 5,000-digit integers, NaN, bad bytes
        raise InputError(f"not valid JSON: {_one_line(str(exc))}", file=file) from None
    check_document(data, file)
    return data


def parse_yaml(text: str, file: str) -> Any:
    """Parse one YAML document safely (no Python objects), then :func:`check_document`."""
    cap = limits.current().yaml_bytes
    if len(text) > cap:
        raise limits.over_limit("yaml_bytes", len(text), file=file, what="YAML size (characters)")
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except RecursionError:
        raise _too_deep(file) from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {_one_line(str(exc))}", file=file) from None
    except (ValueError, TypeError, OverflowError) as exc:  # huge integers, odd timestamps
        raise InputError(f"not valid YAML: {_one_line(str(exc))}", file=file) from None
    check_document(data, file)
    return data


def load_json(path: str | Path) -> Any:
    """Read and parse a JSON file within the limits."""
    return parse_json(read_text(path), str(path))


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file within the limits (JSON is YAML too)."""
    return parse_yaml(read_text(path, "yaml_bytes"), str(path))


def load_document(path: str | Path) -> Any:
    """A ``.json`` file as JSON, anything else as YAML."""
    return load_json(path) if str(path).endswith(".json") else load_yaml(path)


# --------------------------------------------------------------------------- checks


def check_document(data: Any, file: str) -> None:
    """Refuse a parsed document that nests deeper than the limit ``depth``, holds more than
    ``nodes`` values (YAML aliases counted where they expand, each shared part measured once),
    refers to itself (a YAML alias cycle) or holds a non-finite number (named by its place)."""
    lim = limits.current()
    memo: dict[int, tuple[int, int]] = {}  # id -> (values, depth) of a finished container
    open_: set[int] = set()  # containers on the current path
    stack: list[tuple[Any, bool, str]] = [(data, False, "")]
    while stack:
        obj, done, where = stack.pop()
        if not _is_container(obj):
            _check_scalar(obj, file, where)
            continue
        oid = id(obj)
        if done:
            n, d = 1, 1
            for c in _children(obj):
                cn, cd = memo[id(c)] if _is_container(c) else (1, 1)
                n, d = n + cn, max(d, cd + 1)
            memo[oid] = (n, d)
            open_.discard(oid)
            if d > lim.depth:
                raise limits.over_limit("depth", d, file=file, what="nesting depth")
            if n > lim.nodes:
                raise limits.over_limit("nodes", n, file=file, what="number of values")
            continue
        if oid in memo:
            continue
        if oid in open_:
            raise InputError("a YAML alias refers to a node that contains it (a cycle)", file=file)
        open_.add(oid)
        stack.append((obj, True, where))
        for key, c in _items(obj):
            if _is_container(c):
                if id(c) not in memo:
                    stack.append((c, False, _join(where, key)))
            else:
                _check_scalar(c, file, _join(where, key))
            if isinstance(obj, dict):
                _check_scalar(key, file, _join(where, key))


def _is_container(obj: Any) -> bool:
    return isinstance(obj, (dict, list, tuple, set))


def _children(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    return list(obj)


def _items(obj: Any) -> Any:
    return obj.items() if isinstance(obj, dict) else enumerate(obj)


def _join(where: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def _check_scalar(x: Any, file: str, where: str) -> None:
    if isinstance(x, float) and not math.isfinite(x):
        raise InputError(
            "not a finite number (NaN and infinity are not accepted anywhere)",
            file=file,
            field=where or None,
            value=x,
        )
    if isinstance(x, int) and abs(x) > sys.float_info.max:  # math.isfinite(x) would overflow
        raise InputError(
            f"an integer of {len(str(abs(x)))} digits is beyond any number's range "
            f"(at most {sys.float_info.max:.3g})",
            file=file,
            field=where or None,
        )


def _too_deep(file: str) -> InputError:
    return limits.over_limit("depth", None, file=file, what="nesting depth")


def _one_line(text: str) -> str:
    out = " ".join(text.split())
    return out if len(out) <= 300 else out[:297] + "..."
