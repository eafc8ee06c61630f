"""Bounded reading of user files (jbrl.documents) and the limits (jbrl.limits)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jbrl import limits
from jbrl.documents import check_document, load_document, parse_json, parse_yaml, read_text
from jbrl.errors import InputError
from jbrl.limits import Limits


def test_limits_from_items_and_errors() -> None:
    lim = Limits().with_items(["workers=50000", "trace_s=1e6"])
    assert lim.workers == 50000 and isinstance(lim.workers, int) and lim.trace_s == 1e6
    for bad in (["workers"], ["nope=1"], ["workers=0"], ["workers=nan"], ["depth=-3"]):
        with pytest.raises(InputError, match="--limit"):
            Limits().with_items(bad)
    with limits.using(Limits(depth=3)):
        assert limits.current().depth == 3
        with pytest.raises(InputError, match="depth=3"):
            parse_json("[[[[1]]]]", "<x>")
    assert limits.current().depth == Limits().depth


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "[Infinity]",
        '{"a": -Infinity}',
        "1e999",
        "[" * 5000 + "]" * 5000,
        "9" * 5000,
        "[" + "9" * 400 + "]",
        '{"factor": -1' + "0" * 400 + "}",
        "{",
        "",
    ],
)
def test_bad_json(text: str) -> None:
    with pytest.raises(InputError):
        parse_json(text, "<x>")


@pytest.mark.parametrize(
    "text",
    [
        ".nan",
        "[.inf]",
        "a: -.Inf",
        "1.0e+999",
        "[" * 2000 + "]" * 2000,
        "a: &a [*a]",
        "a: !!python/object:os.system {}",
        "{a: 1",
        "x: " + "9" * 5000,
        "x: [" + "9" * 400 + "]",
    ],
)
def test_bad_yaml(text: str) -> None:
    with pytest.raises(InputError):
        parse_yaml(text, "<x>")


def test_alias_expansion_is_counted() -> None:
    doc = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"a{i}: &a{i} [{','.join(['*a' if i == 1 else f'*a{i - 1}'] * 10)}]\n" for i in range(1, 5)
    )
    with limits.using(Limits(nodes=100_000)), pytest.raises(InputError, match="nodes"):
        parse_yaml(doc, "<bomb>")
    assert parse_yaml(doc, "<bomb>")["a4"][0][0][0][0] == [1] * 10  # 123,000 values, shared


def test_shared_parts_are_walked_once() -> None:
    shared = list(range(1000))
    check_document({"a": [shared] * 900}, "<x>")  # 900k values, 1.9k distinct: fast


def test_read_text_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_text(tmp_path / "missing")
    with pytest.raises(InputError, match="directory"):
        read_text(tmp_path)
    with pytest.raises(InputError, match=r"field 'a\[1\]\.b', value nan"):
        parse_json('{"a": [1, {"b": NaN}]}', "<x>")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="regular"):
        read_text(fifo)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a" * 3000)
    with limits.using(Limits(yaml_bytes=1000)), pytest.raises(InputError, match="yaml_bytes"):
        load_document(big)
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="UTF-8"):
        load_document(tmp_path / "bin.json")
    with pytest.raises(InputError, match="regular"):
        read_text("/dev/zero")
