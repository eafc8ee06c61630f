"""Packaging: every package is listed, envs/agents/configs install under jbrl, data ships."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAPPING = {"jbrl": "jbrl", "envs": "jbrl.envs", "agents": "jbrl.agents", "configs": "jbrl.configs"}


def test_every_package_is_listed():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for top, pkg in MAPPING.items():
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / top).parts
            found.add(".".join((pkg, *rel)))
    for folder in (REPO / "configs").rglob("*"):  # data folders install as packages too
        if folder.is_dir() and folder.name != "__pycache__":
            found.add(".".join(("jbrl.configs", *folder.relative_to(REPO / "configs").parts)))
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"
    assert cfg["package-dir"]["jbrl.envs"] == "envs"


def test_top_level_is_exact():
    allowed = {
        "jbrl",
        "envs",
        "agents",
        "configs",
        "experiments",
        "tests",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        ".ci",
        ".gitignore",
        ".git",
    }
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.split()
    tops = {t.split("/")[0] for t in tracked}
    assert tops <= allowed, f"unexpected top-level entries: {sorted(tops - allowed)}"


@pytest.mark.slow
def test_wheel_contains_namespaced_packages_and_data(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
    )
    wheel = next(tmp_path.glob("jbrl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "jbrl/envs/__init__.py" in names and "jbrl/agents/__init__.py" in names
    assert not any(n.startswith(("envs/", "agents/", "configs/")) for n in names)
    assert any(n.startswith("jbrl/configs/scenarios/") and n.endswith(".yaml") for n in names)


@pytest.mark.slow
def test_build_prints_no_setuptools_warning(tmp_path):
    """Building the wheel (what pip install runs) warns about nothing in this project's
    configuration: no deprecated license table, no unlisted data folders."""
    code = "import sys; from setuptools import build_meta as b; b.build_wheel(sys.argv[1])"
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-c", code, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "Deprecat" not in text and "is absent from the `packages`" not in text, text[-3000:]
