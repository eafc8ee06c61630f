"""Ray addresses and the optional value of ``--ray``. A local Ray's session directory: in the run
directory when the path is short (tests/evaluation/test_evaluate_ray.py), linked from it when
long (tests/control/test_control_ray.py)."""

from __future__ import annotations

import pytest

from jbrl.cli import fill_optional_values
from jbrl.errors import InputError
from jbrl.raycluster import ray_address


def test_ray_address() -> None:
    assert ray_address(None) is None and ray_address("local") is None and ray_address("") is None
    for ok in ("auto", "ray://head.example:10001", "ray://10.0.0.5", "10.0.0.5:6379"):
        assert ray_address(ok) == ok
    for bad in ("http://head:8265", "head", "ray://", "a b:1", "auto;rm"):
        with pytest.raises(InputError, match="'auto'"):
            ray_address(bad)


def test_ray_option_value_may_be_left_out() -> None:
    assert fill_optional_values(["evaluate", "--ray"]) == ["evaluate", "--ray", "local"]
    assert fill_optional_values(["evaluate", "--ray", "--seeds", "2"]) == [
        "evaluate", "--ray", "local", "--seeds", "2"
    ]  # fmt: skip
    assert fill_optional_values(["evaluate", "--ray", "auto"]) == ["evaluate", "--ray", "auto"]
    assert fill_optional_values(["control", "--ray-address", "auto"]) == [
        "control", "--ray-address", "auto"
    ]  # fmt: skip
