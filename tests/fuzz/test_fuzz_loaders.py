"""Fuzz every file loader through the command line, in process (issue 14).

Each example writes a hostile variant of a valid input (structural mutations of the document,
or mangled bytes) and runs the ``jbrl`` command that reads it: the command must end with exit
0, 2 or 3 and never let an exception escape (a traceback). The examples per loader are few, so
the suite stays fast; ``experiments/fuzz_campaign.py`` runs >= 10,000 inputs as subprocesses
with time and memory limits.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jbrl.cli import main
from jbrl.control import read_state
from jbrl.errors import JbrlError
from tests.conftest import JELLYBEAN_DIR
from tests.fuzz.strategies import VALUES, mangled_text, mutated

REPO = Path(__file__).resolve().parents[2]
VQA = yaml.safe_load((REPO / "configs" / "scenarios" / "vqa.yaml").read_text())
TRAIN = yaml.safe_load((REPO / "configs" / "train" / "ppo_vqa.yaml").read_text())
FAULTS = {
    "faults": [
        {"kind": "crash", "worker": "cloud-gpu-1", "at": 60, "until": 120},
        {"kind": "slow_link", "from": "edge", "to": "cloud", "at": 30, "until": 90, "factor": 4},
    ]
}
STATE = {
    "version": 1,
    "scenario": "vqa",
    "time_s": 120.0,
    "seq": 3,
    "final": False,
    "counters": {"decisions": 3},
    "plan": {"worker_assignment": {"VQA": [{"worker": "cloud-cpu-1"}]}},
}
EXPLORE = int(os.environ.get("JBRL_FUZZ_EXAMPLES", "0"))  # a longer, random search when set
FUZZ = settings(
    max_examples=EXPLORE or 25,
    deadline=None,
    derandomize=not EXPLORE,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def run(args: list[str]) -> int:
    """``jbrl ARGS`` in process: its exit code; an escaping exception fails the test."""
    code = main(args)
    assert code in (0, 2, 3), f"exit {code} for {args}"
    return code


def dump(doc: Any, path: Path, as_json: bool) -> Path:
    """``doc`` as JSON or YAML (values YAML cannot write go in as JSON, which YAML reads)."""
    try:
        text = json.dumps(doc) if as_json else yaml.safe_dump(doc)
    except (TypeError, ValueError):
        text = json.dumps(doc, default=str)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "plan.json"
    assert main(["plan", "--scenario", "vqa", "--json", "-o", str(out)]) == 0
    return out


@FUZZ
@given(doc=mutated(VQA), as_json=st.booleans())
def test_scenario_files(tmp_path: Path, doc: Any, as_json: bool) -> None:
    f = dump(doc, tmp_path / ("s.json" if as_json else "s.yaml"), as_json)
    run(["scenario", "validate", str(f)])


@FUZZ
@given(raw=mangled_text(yaml.safe_dump(VQA)))
def test_scenario_bytes(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "s.yaml").write_bytes(raw)
    run(["scenario", "validate", str(tmp_path / "s.yaml")])


JB_FILES = sorted(p.name for p in JELLYBEAN_DIR.glob("*") if p.suffix in (".csv", ".json", ".yaml"))


@FUZZ
@given(name=st.sampled_from(JB_FILES), data=st.data())
def test_jellybean_directories(tmp_path: Path, name: str, data: st.DataObject) -> None:
    d = tmp_path / "jb"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(JELLYBEAN_DIR, d)
    text = (d / name).read_text()
    if name.endswith(".json") and data.draw(st.booleans()):
        doc = data.draw(mutated(json.loads(text)))
        dump(doc, d / name, as_json=True)
    elif name.endswith(".yaml") and data.draw(st.booleans()):
        dump(data.draw(mutated(yaml.safe_load(text))), d / name, as_json=False)
    elif data.draw(st.booleans()):
        (d / name).write_bytes(data.draw(mangled_text(text)))
    else:
        (d / name).unlink()
    run(["scenario", "validate", str(d)])


CELLS = st.one_of(
    st.sampled_from(["0", "1", "17.8", "-1", "nan", "inf", "1e308", "1e9", "", "x", "1e5"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**12), 10**12).map(str),
)


@st.composite
def trace_text(draw: st.DrawFn) -> str:
    header = draw(
        st.sampled_from(
            [
                "time_s,scale",
                "time_s,ReadImage,ReadSpeech",
                "time_s,ReadImage",
                "t,scale",
                "time_s,scale,scale",
                "time_s",
            ]
        )
    )
    width = len(header.split(","))
    lines = []
    if draw(st.booleans()):
        lines.append(f"# duration_s: {draw(CELLS)}")
    lines.append(header)
    for _ in range(draw(st.integers(0, 6))):
        n = width if draw(st.integers(0, 5)) else draw(st.integers(1, 4))
        lines.append(",".join(draw(CELLS) for _ in range(n)))
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=trace_text())
def test_trace_files(tmp_path: Path, text: str) -> None:
    (tmp_path / "t.csv").write_text(text)
    run(["trace", "show", str(tmp_path / "t.csv"), "--scenario", "vqa"])


@FUZZ
@given(doc=mutated(FAULTS), as_json=st.booleans())
def test_fault_files(tmp_path: Path, plan_file: Path, doc: Any, as_json: bool) -> None:
    f = dump(doc, tmp_path / ("f.json" if as_json else "f.yaml"), as_json)
    trace = REPO / "configs" / "traces" / "step.csv"
    run(["simulate", "--scenario", "vqa", "--plan", str(plan_file), "--trace", str(trace),
         "--sim", "fluid", "--duration", "300", "--faults", str(f), "--json"])  # fmt: skip


@FUZZ
@given(data=st.data())
def test_plan_files(tmp_path: Path, plan_file: Path, data: st.DataObject) -> None:
    doc = data.draw(mutated(json.loads(plan_file.read_text())))
    f = dump(doc, tmp_path / "p.json", as_json=True)
    run(["cost", "--scenario", "vqa", "--plan", str(f)])


@FUZZ
@given(doc=mutated(TRAIN, max_mutations=2))
def test_training_and_env_configs(tmp_path: Path, doc: Any) -> None:
    f = dump(doc, tmp_path / "train.yaml", as_json=False)
    run(["train", "--config", str(f), "--check", "--runs-dir", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()


@FUZZ
@given(doc=mutated(STATE) | VALUES)
def test_state_files(tmp_path: Path, doc: Any) -> None:
    f = dump(doc, tmp_path / "state.json", as_json=True)
    with contextlib.suppress(JbrlError):
        read_state(f)


@settings(FUZZ, max_examples=max(8, EXPLORE // 10))
@given(name=st.sampled_from(["model.zip", "normalization.json", "config.yaml", "ladder.json"]),
       data=st.data())  # fmt: skip
def test_policy_folders(tmp_path: Path, name: str, data: st.DataObject) -> None:
    from jbrl.agents.ppo import PpoPolicy, shipped_policy_dir
    from jbrl.scenario import load_scenario

    d = tmp_path / "policy"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(shipped_policy_dir("vqa"), d)
    f = d / name
    if name == "model.zip":
        raw = bytearray(f.read_bytes())
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i : i + 16] = data.draw(st.binary(min_size=1, max_size=16))
        f.write_bytes(bytes(raw))
    elif name.endswith(".json"):
        dump(data.draw(mutated(json.loads(f.read_text()))), f, as_json=True)
    else:
        dump(data.draw(mutated(yaml.safe_load(f.read_text()))), f, as_json=False)
    with contextlib.suppress(JbrlError):
        PpoPolicy(path=d, scenario=load_scenario("vqa"))
