"""Shared by the experiment scripts: rewrite one marked section of a results markdown file, and
the ``--help`` text of a settings dataclass."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path


def write_section(path: Path, start: str, end: str, body: str) -> None:
    """Replace the text between ``start`` and ``end`` in ``path`` (append it if absent)."""
    text = path.read_text("utf-8") if path.exists() else "# Simulators\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")


def field_help(cls: type) -> dict[str, str]:
    """The docstring under each field of the dataclass ``cls`` (its ``--help`` text), by field
    name; fields without one are absent. Read from the class source, so one text documents the
    field in the code and on the command line."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    out: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:], strict=False):
        doc = (
            nxt.value.value
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
            else None
        )
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(doc, str)
        ):
            out[stmt.target.id] = " ".join(doc.split())
    return out
