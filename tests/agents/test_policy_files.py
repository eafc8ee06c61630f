"""Issue 14: policy folders are data, checked before use; nothing in them is unpickled.

Each malicious file below would write a marker file if it were unpickled: the tests check that
the command fails with bad input (exit 2) and that the marker never appears.
"""

from __future__ import annotations

import base64
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest

from jbrl.agents.ppo import shipped_policy_dir
from tests.conftest import assert_bad_input, run_jbrl

STEP = Path(__file__).resolve().parents[2] / "configs" / "traces" / "step.csv"


class _Payload:
    """Unpickling this object calls ``open(marker, "w")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped vqa policy folder."""
    d = tmp_path / "policy"
    shutil.copytree(shipped_policy_dir("vqa"), d)
    return d


def _evaluate(policy: str, scenario: str = "vqa") -> tuple[int, str, str]:
    return run_jbrl(
        ["evaluate", "--scenario", scenario, "--trace", str(STEP), "--policies", policy,
         "--sim", "fluid", "--seeds", "1", "--duration", "600", "--no-progress"],
        timeout=120,
    )  # fmt: skip


def test_a_pickle_in_the_folder_is_never_loaded(folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned-by-vecnormalize"
    (folder / "normalization.json").unlink(missing_ok=True)
    (folder / "vecnormalize.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    assert_bad_input(_evaluate(f"ppo:path={folder}"), "vecnormalize.pkl")
    assert not marker.exists()


def test_a_pickled_entry_in_the_model_is_never_loaded(folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned-by-model"
    model = folder / "model.zip"
    with zipfile.ZipFile(model) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    data = json.loads(members["data"])
    blob = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    data["sneaky"] = {":type:": "<class 'object'>", ":serialized:": blob}
    data["policy_class"][":serialized:"] = blob
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(model, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    assert_bad_input(_evaluate(f"ppo:path={folder}"), "sneaky")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("model.zip", b"PK\x03\x04 garbage" * 50),
        ("model.zip", b"not a zip at all"),
        ("config.yaml", b"\x00\xff\xfe" * 100),
        ("config.yaml", b"env: [1, 2, 3]\n"),
        ("config.yaml", b"env: {history: 0}\n"),
        ("normalization.json", b"{}"),
        (
            "normalization.json",
            b'{"format": "jbrl-normalization/1", "obs": {"mean": [1], "var": [1], "count": 1}}',
        ),
        ("ladder.json", b'{"rungs": [{"variants": [], "workers": []}]}'),
        ("ladder.json", b"[" * 100 + b"]" * 100),
    ],
    ids=[
        "zip-garbage",
        "not-zip",
        "config-bytes",
        "config-env-list",
        "config-bad-field",
        "norm-empty",
        "norm-wrong-length",
        "ladder-shape",
        "ladder-deep",
    ],
)
def test_corrupt_policy_files_are_bad_input(folder: Path, name: str, content: bytes) -> None:
    (folder / name).write_bytes(content)
    assert_bad_input(_evaluate(f"ppo:path={folder}"), name)


@pytest.mark.parametrize(
    "missing", ["model.zip", "config.yaml", "normalization.json", "ladder.json"]
)
def test_missing_policy_files(folder: Path, missing: str) -> None:
    (folder / missing).unlink()
    assert_bad_input(_evaluate(f"ppo:path={folder}"), missing)


def test_policy_for_another_scenario_is_refused_before_use(folder: Path) -> None:
    assert_bad_input(_evaluate(f"ppo:path={folder}", scenario="vehicle"))
    # the zero-shot case of issue 13: the vqa policy on the fleet (its table names vqa's plans)
    assert_bad_input(
        _evaluate("ppo:shipped=vqa_v2", scenario="fleet"),
        "combo_ladder.json",
        "trained on scenario 'vqa'",
    )


def test_unknown_policy_parameter_is_not_ignored() -> None:
    assert_bad_input(_evaluate("ppo:pth=/x/model.zip"), "pth")
    assert_bad_input(_evaluate("milp-reactive:headroom=nan"), "headroom")


def test_shipped_folder_holds_no_pickle() -> None:
    root = shipped_policy_dir("vqa").parent
    assert not list(root.rglob("*.pkl"))


def test_a_shipped_policy_by_name() -> None:
    """ppo:shipped=NAME loads another shipped folder than the scenario's default (the same
    folder here: the same decisions); names are plain, and path= and shipped= exclude each
    other."""
    from jbrl.agents.policy import ControlState, get_policy
    from jbrl.scenario import load_scenario

    vqa = load_scenario("vqa")
    a, b = get_policy("ppo", scenario=vqa), get_policy("ppo:shipped=vqa", scenario=vqa)
    assert a.folder == b.folder
    state = ControlState(scenario=vqa, time_s=0.0, interval_s=60.0, current_plan=None)
    assert a.decide(state).to_dict() == b.decide(state).to_dict()
    for bad in ("ppo:shipped=../vqa", "ppo:shipped=vqa:path=/x/model.zip", "ppo:shipped=none"):
        assert_bad_input(_evaluate(bad), "shipped" if "none" not in bad else "none")
