"""The benchmark scripts' ``--help`` explains every option (the settings' field docstrings)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from tests.conftest import EXPERIMENTS, experiment_module


@pytest.mark.parametrize("script", ["evaluate_policies.py", "evaluate_vqa.py", "cost_floor.py"])
def test_help_names_what_each_option_does(script: str) -> None:
    module = experiment_module(script.removesuffix(".py"))
    helps = experiment_module("_results").field_help(module.Args)
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
