"""``jbrl sweep`` configuration: trials from seeds, grid and search; every key and value checked
against the training config when loaded (file, field, value); the trial's training config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jbrl.agents.ppo.sweep_config import SweepConfig, load_sweep_config
from jbrl.cli import main
from jbrl.errors import InputError

TRAIN = {"env": {"scenario": "vqa"}, "eval": {"every_steps": 100}, "bc": None}


def write(tmp_path: Path, **fields: Any) -> Path:
    f = tmp_path / "sweep.yaml"
    f.write_text(yaml.safe_dump({"train": TRAIN, **fields}))
    return f


def test_trials_and_their_configs(tmp_path: Path) -> None:
    scen = tmp_path / "scen.yaml"
    scen.write_text(yaml.safe_dump({"name": "x"}))  # only its path matters here
    train = {**TRAIN, "env": {"scenario": "vqa", "reward": {"slo_miss": 0.001}}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(train))
    f = tmp_path / "s.yaml"
    f.write_text(
        yaml.safe_dump({
            "train": "base.yaml",
            "set": {"total_timesteps": 5000},
            "seeds": [0, 1],
            "grid": {"env.reward.slo_miss": [0.0005, 0.002], "ppo.n_steps": [64, 128, 256]},
            "search": {"ppo.learning_rate": {"loguniform": [1e-5, 1e-3]}},
            "num_samples": 2,
        })
    )  # fmt: skip
    cfg = load_sweep_config(f)
    assert cfg.name == "s" and cfg.trial_count == 2 * 2 * 3 * 2
    # trials are judged with the base's reward weights, whatever weights they train with
    assert cfg.score_weights.slo_miss == 0.001
    params = {"seed": 1, "env.reward.slo_miss": 0.002, "ppo.n_steps": 128,
              "ppo.learning_rate": 3e-4}  # fmt: skip
    trial = cfg.trial_config(params, tmp_path / "trials" / "t0")
    assert trial.seed == 1 and trial.total_timesteps == 5000
    assert trial.env.reward.slo_miss == 0.002 and trial.ppo.n_steps == 128
    assert trial.eval is not None and trial.eval.score == cfg.score_weights
    assert trial.runs_dir == str(tmp_path / "trials" / "t0")


def test_param_space_is_tunes() -> None:
    pytest.importorskip("ray.tune")
    from jbrl.agents.ppo.sweep import param_space

    cfg = SweepConfig(name="x", train=TRAIN, seeds=[0, 1], grid={"ppo.n_steps": [64, 128]},
                      search={"ppo.ent_coef": {"uniform": [0.0, 0.01]},
                              "ppo.n_epochs": {"choice": [2, 4]}})  # fmt: skip
    space = param_space(cfg)
    assert space["seed"] == {"grid_search": [0, 1]}
    assert space["ppo.n_steps"] == {"grid_search": [64, 128]}
    assert {type(space[k]).__name__ for k in ("ppo.ent_coef", "ppo.n_epochs")} == {
        "Float", "Categorical"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"grid": {"ppo.nope": [1]}}, "grid.ppo.nope", "invalid training config"),
        ({"grid": {"ppo.n_steps": ["many"]}}, "grid.ppo.n_steps", "invalid training config"),
        ({"grid": {"ppo.n_steps": []}}, "grid", "at least one value"),
        ({"set": {"n_envs": "x"}}, "set", "invalid training config"),
        ({"search": {"ppo.gamma": {"normal": [0, 1]}}}, "search", "uniform, loguniform"),
        ({"search": {"ppo.gamma": {"uniform": [1, 0]}}}, "search", "low < high"),
        ({"search": {"ppo.learning_rate": {"loguniform": [0, 1]}}}, "search", "low > 0"),
        ({"search": {"ppo.n_epochs": {"choice": [2, "x"]}}}, "search.ppo.n_epochs.choice",
         "invalid training config"),
        ({"seeds": ["a"]}, "seeds[0]", "integer"),
        ({"name": "a b"}, "name", "pattern"),
        ({"train": {**TRAIN, "eval": None}}, "train.eval", "validation traces"),
        ({"train": 3}, "train", "base training config"),
    ],
)  # fmt: skip
def test_bad_sweep_configs(tmp_path: Path, fields: dict, field: str, message: str) -> None:
    f = write(tmp_path, **fields)
    with pytest.raises(InputError, match=message) as err:
        load_sweep_config(f)
    assert err.value.file == str(f)
    assert str(err.value.field).startswith(field)


def test_existing_sweep_needs_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray.tune")
    f = write(tmp_path, name="again", runs_dir=str(tmp_path / "sweeps"))
    (tmp_path / "sweeps" / "again" / "tune").mkdir(parents=True)
    assert main(["sweep", "--config", str(f)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["sweep", "--config", str(tmp_path / "nope.yaml")]) == 2
