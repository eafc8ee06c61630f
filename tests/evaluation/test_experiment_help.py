"""The benchmark scripts' ``--help`` explains every option (the settings' field docstrings)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize("script", ["evaluate_policies.py", "evaluate_vqa.py", "cost_floor.py"])
def test_help_names_what_each_option_does(script: str) -> None:
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        from _results import field_help

        module = __import__(script.removesuffix(".py"))
    finally:
        sys.path.remove(str(EXPERIMENTS))
    helps = field_help(module.Args)
    options = [f.name for f in dataclasses.fields(module.Args) if f.name != "specs"]
    assert set(options) <= set(helps), "every option has a docstring"
    out = subprocess.run(
        [sys.executable, str(EXPERIMENTS / script), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    flat = " ".join(out.split())
    for name in options:
        assert f"--{name.replace('_', '-')}" in flat
        assert " ".join(helps[name].split()[:4]) in flat, name
