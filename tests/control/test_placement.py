"""Which Ray resource places each scenario worker's replicas: the convention, the placement
file (errors name file, field and value), and what a cluster lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from jbrl.cli import main
from jbrl.control.backends.placement import Placement, worker_resource
from jbrl.errors import InputError

WORKERS = ["e1", "e2", "c1", "c2"]


def test_convention_and_needed_units() -> None:
    p = Placement.convention(WORKERS)
    assert p.resource("e2") == worker_resource("e2") == "jbrl-worker/e2"
    assert p.needed() == {f"jbrl-worker/{w}": 2.0 for w in WORKERS}


def test_placement_file_maps_some_workers(tmp_path: Path) -> None:
    f = tmp_path / "placement.yaml"
    f.write_text("workers:\n  e1: edge-node-a\n  e2: edge-node-a\n")
    p = Placement.load(f, WORKERS)
    assert p.resources == {"e1": "edge-node-a", "e2": "edge-node-a",
                           "c1": "jbrl-worker/c1", "c2": "jbrl-worker/c2"}  # fmt: skip
    assert p.needed()["edge-node-a"] == 4.0  # two workers on one node, two units each
    have = {"edge-node-a": 3.0, "jbrl-worker/c1": 2.0, "jbrl-worker/c2": 8.0, "CPU": 4.0}
    assert p.missing(have) == {"edge-node-a": (4.0, 3.0)}
    assert p.missing({**have, "edge-node-a": 4.0}) == {}
    assert p.to_dict()["file"] == str(f)


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("workers:\n  nope: node-a\n", "workers.nope", "not a worker of the scenario"),
        ("workers:\n  e1: 3\n", "workers.e1", "Ray resource name"),
        ("workers:\n  e1: '  '\n", "workers.e1", "Ray resource name"),
        ("workers: [e1]\n", "workers", "must map worker names"),
        ("nodes: {}\n", None, "one key, 'workers'"),
        ("workers: {e1: [\n", None, "cannot read YAML"),
    ],
)
def test_bad_placement_files(tmp_path: Path, text: str, field: str | None, message: str) -> None:
    f = tmp_path / "placement.yaml"
    f.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        Placement.load(f, WORKERS)
    assert err.value.file == str(f) and err.value.field == field
    with pytest.raises(InputError, match="no such file"):
        Placement.load(tmp_path / "missing.yaml", WORKERS)


def test_placement_needs_the_ray_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "placement.yaml"
    f.write_text("workers: {}\n")
    code = main(["control", "--backend", "sim", "--placement", str(f), "--duration", "10"])
    assert code == 2
    assert "--backend ray" in capsys.readouterr().err
