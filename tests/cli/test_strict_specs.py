"""Issue 14: specs that were accepted silently or checked too late are bad input at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import assert_bad_input, run_jbrl

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "configs" / "train" / "ppo_vqa.yaml"


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("plan") / "p.json"
    code, _, err = run_jbrl(["plan", "--scenario", "vqa", "--json", "-o", str(out)])
    assert code == 0, err
    return json.loads(out.read_text())


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda p: p.update(worker_asignment=p.pop("worker_assignment")), "worker_asignment"),
        (lambda p: p.update(rat=1), "rat"),
        (lambda p: next(iter(p["worker_assignment"].values()))[0].update(rat=3.0), "rat"),
        (lambda p: p["routing"][0].update(rte=1.0) if p.get("routing") else p.update(x=1), "field"),
        (lambda p: next(iter(p["worker_assignment"].values()))[0].update(batch=0), "batch"),
    ],
    ids=["top-typo", "top-extra", "share-typo", "flow-extra", "batch-zero"],
)
def test_plan_keys_are_strict(tmp_path: Path, plan: dict, mutate, needle: str) -> None:  # noqa: ANN001
    p = json.loads(json.dumps(plan))
    mutate(p)
    f = tmp_path / "p.json"
    f.write_text(json.dumps(p))
    assert_bad_input(run_jbrl(["cost", "--scenario", "vqa", "--plan", str(f)]), needle)


def test_plan_with_batch_and_planner_keys_is_accepted(tmp_path: Path, plan: dict) -> None:
    p = json.loads(json.dumps(plan))
    for shares in p["worker_assignment"].values():
        for s in shares:
            s["batch"] = 1
    f = tmp_path / "p.json"
    f.write_text(json.dumps(p))
    code, _, err = run_jbrl(["cost", "--scenario", "vqa", "--plan", str(f)])
    assert code == 0, err


def _train_config(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(TRAIN.read_text())
    for dotted, value in changes.items():
        node = data
        *path, last = dotted.split("__")
        for key in path:
            node = node[key]
        node[last] = value
    f = tmp_path / "train.yaml"
    f.write_text(yaml.safe_dump(data))
    return f


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"threads": 0}, "threads"),
        ({"n_envs": 100000}, "envs"),
        ({"total_timesteps": 10**12}, "timesteps"),
        ({"ppo__batch_size": 1}, "batch_size"),
        ({"ppo__learning_rate": -1}, "learning_rate"),
        ({"ppo__net_arch": []}, "net_arch"),
        ({"bc__candidates": ["milp-oracle"]}, "candidates"),
        ({"bc__candidates": ["milp-static"]}, "candidates"),
        ({"bc__teacher": "milp-oracle"}, "teacher"),
        ({"env__episode_steps": 10**7}, "intervals"),
        ({"env__scenario": "no-such-scenario"}, "no-such-scenario"),
        ({"eval__traces": ["nope"]}, "nope"),
    ],
    ids=lambda x: str(x),
)
def test_training_config_is_checked_whole_before_any_work(
    tmp_path: Path, changes: dict, needle: str
) -> None:
    cfg = _train_config(tmp_path, **changes)
    runs = tmp_path / "runs"
    t0 = time.monotonic()
    result = run_jbrl(["train", "--config", str(cfg), "--runs-dir", str(runs), "--no-progress"])
    assert_bad_input(result, needle)
    assert not runs.exists() or not any(runs.iterdir()), "a run folder was made before the check"
    assert time.monotonic() - t0 < 60


def test_binary_training_config(tmp_path: Path) -> None:
    f = tmp_path / "bin.yaml"
    f.write_bytes(bytes(range(256)) * 8)
    assert_bad_input(run_jbrl(["train", "--config", str(f)]), "bin.yaml")


def test_train_check_validates_without_training(tmp_path: Path) -> None:
    code, out, err = run_jbrl(["train", "--config", str(TRAIN), "--check"])
    assert code == 0, err
    assert "valid" in out


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--scenario", "vqa", "--rate", "nan"],
        ["plan", "--scenario", "vqa", "--rate", "1e9"],
        ["trace", "generate", "--kind", "constant", "--duration", "1e308", "-o", "t.csv"],
        [
            "trace",
            "generate",
            "--kind",
            "constant",
            "--duration",
            "3600",
            "--step",
            "1e-6",
            "-o",
            "t.csv",
        ],
        ["--limit", "depth=0", "scenario", "list"],
        ["--limit", "nope=1", "scenario", "list"],
    ],
    ids=["rate-nan", "rate-huge", "trace-duration", "trace-rows", "limit-zero", "limit-name"],
)
def test_command_line_numbers(tmp_path: Path, args: list[str]) -> None:
    assert_bad_input(run_jbrl(args, cwd=tmp_path, timeout=60))
