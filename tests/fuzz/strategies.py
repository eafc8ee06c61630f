"""Hypothesis strategies shared by the fuzz tests: hostile JSON-like values and structural
mutations of a valid document (replace, delete or duplicate a part at a random place)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([0, -1, 2**63, 10**5000 // 10**4990, 1e308, -1e308, 1e-320])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["", "NaN", "inf", "-1", "1e999", "0x10", "default", "\x00", "é" * 3])
)

VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)


def _places(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``doc`` (dict keys and list indices)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _places(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _places(v, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw: st.DrawFn, base: Any, max_mutations: int = 3) -> Any:
    """``base`` with 1..``max_mutations`` parts replaced by hostile values, deleted or
    duplicated."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_mutations))):
        places = [p for p in _places(doc) if p]
        if not places:
            return draw(VALUES)
        path = draw(st.sampled_from(places))
        parent, key = _parent(doc, path), path[-1]
        op = draw(st.sampled_from(["replace", "replace", "delete", "duplicate", "nest"]))
        if op == "replace":
            parent[key] = draw(VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif op == "duplicate" and isinstance(parent, dict):
            parent[f"{key}_"] = copy.deepcopy(parent[key])
        else:
            parent[key] = [parent[key]] if draw(st.booleans()) else {"x": parent[key]}
    return doc


@st.composite
def mangled_text(draw: st.DrawFn, text: str) -> bytes:
    """``text`` as bytes with a few bytes inserted, deleted or replaced."""
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(0, len(data) - 1)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if op == "insert":
            data[i:i] = chunk
        elif op == "delete" and data:
            del data[i : i + len(chunk)]
        else:
            data[i : i + len(chunk)] = chunk
    return bytes(data)
