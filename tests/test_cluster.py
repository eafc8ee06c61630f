"""Scale-out on a local multi-node Ray cluster (``ray.cluster_utils.Cluster``: a head and two
worker nodes on this machine, one CPU each, everything on 127.0.0.1):

* evaluation runs as Ray tasks on more than one node, with the same figures, table and plots
  as in one process;
* a 2-trial sweep of a tiny training on Ray Tune, interrupted after its first trial and resumed,
  runs to completion and ships the trial that is better on validation;
* the controller on the Ray Serve backend places replicas on both worker nodes (node A by a
  placement file, node B by the ``jbrl-worker/<name>`` convention) and moves one from node A to
  node B on a plan change, losing no request.

The three share one cluster (about 12 s to start); together about two minutes on two cores.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import tiny_scenario_dict

ray = pytest.importorskip("ray")
pytest.importorskip("ray.tune")

pytestmark = pytest.mark.slow

NODE_A = {"node-a": 4.0}  # serves e1 and c1 through the placement file (2 units each)
NODE_B = {"jbrl-worker/e2": 2.0, "jbrl-worker/c2": 2.0}  # by the convention


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head (no scenario worker) and two worker nodes; Ray's files in a short temporary
    directory (``RAY_TMPDIR``), removed afterwards."""
    from ray.cluster_utils import Cluster

    root = tempfile.mkdtemp(prefix="jbrl-cl-", dir="/tmp")
    # every node on 127.0.0.1: tests/conftest.py sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    env = {"RAY_TMPDIR": root}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    c = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        c.node_a = c.add_node(**node, resources=NODE_A)
        c.node_b = c.add_node(**node, resources=NODE_B)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- evaluation


def test_evaluation_tasks_on_several_nodes_equal_local(cluster: Any, tmp_path: Path) -> None:
    from jbrl.evaluation.executors import RayTasks
    from jbrl.evaluation.plots import write_plots
    from jbrl.evaluation.report import markdown_table
    from jbrl.evaluation.runner import evaluate
    from jbrl.scenario import load_scenario
    from jbrl.scenario.traces import generate_trace

    vqa = load_scenario("vqa")
    traces = {
        "ramp": generate_trace("step", 600, seed=1, sources=vqa, params={"low": 0.6, "high": 1.3}),
        "flat": generate_trace("constant", 300, sources=vqa, params={"level": 0.8}),
    }
    policies = ["milp-reactive:headroom=0.2", "milp-hysteresis", "autoscaler", "ppo"]
    local = evaluate(vqa, traces, policies, seeds=2)
    with RayTasks(cluster.address) as tasks:
        remote = evaluate(vqa, traces, policies, seeds=2, executor=tasks)
    assert sum(tasks.nodes.values()) == len(policies) * 2 * 2
    assert len(tasks.nodes) >= 2, tasks.nodes  # the runs spread over the cluster
    assert all(r.error is None for r in remote.runs)
    # every figure equal (wall-clock decision times aside), the runs in the same order
    assert remote.to_dict(timings=False) == local.to_dict(timings=False)

    def table(ev: Any) -> list[str]:  # the Markdown table without its decision-time column
        return [line.rsplit("|", 2)[0] for line in markdown_table(ev).splitlines()]

    assert table(remote) == table(local)
    plots = [write_plots(ev, tmp_path / name) for name, ev in (("local", local), ("ray", remote))]
    assert [p.name for p in plots[0]] == [p.name for p in plots[1]] and plots[0]
    for a, b in zip(*plots, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


# --------------------------------------------------------------------------- sweep


def _sweep_file(tmp_path: Path) -> Path:
    """Two trials (seeds 3 and 4) of a tiny training: imitation from MILP-reactive, then a few
    hundred PPO steps, validated every 128 steps on 10-minute validation traces."""
    from jbrl.scenario import scenario_from_dict

    scen = tmp_path / "tiny.yaml"
    tiny = scenario_from_dict(tiny_scenario_dict(), "<tiny>")
    scen.write_text(yaml.safe_dump(tiny.model_dump(by_alias=True, exclude_none=True)))
    train = {
        "n_envs": 1,
        "total_timesteps": 256,
        "checkpoint_every": 128,
        "env": {"scenario": str(scen), "accuracy": 65.0, "episode_steps": 16, "history": 3},
        "ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 2, "net_arch": [32, 32]},
        "bc": {
            "teacher": "milp-reactive:headroom=0.2",
            "episodes": 2,
            "dagger_rounds": 0,
            "epochs": 3,
        },  # fmt: skip
        "eval": {"every_steps": 128, "duration_s": 600},
    }
    sweep = {
        "name": "tiny",
        "train": train,
        "seeds": [3, 4],
        "max_concurrent": 1,
        "runs_dir": str(tmp_path / "sweeps"),
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def _interrupt_after_first_trial(flag: Path) -> Any:
    """A Tune callback that sends this process SIGINT (as Ctrl-C would) when the first trial
    completes, once."""
    from ray.tune import Callback

    class Interrupt(Callback):
        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            if not flag.exists():
                flag.write_text(trial.trial_id)
                os.kill(os.getpid(), signal.SIGINT)

    return Interrupt()


def test_sweep_resumes_and_ships_the_better_trial(cluster: Any, tmp_path: Path) -> None:
    from jbrl.agents.ppo import PpoPolicy
    from jbrl.agents.ppo.callbacks import validation_run
    from jbrl.agents.ppo.config import load_train_config
    from jbrl.agents.ppo.sweep import run_sweep
    from jbrl.agents.ppo.sweep_config import load_sweep_config
    from jbrl.agents.ppo.workbench import Workbench
    from jbrl.envs.workload import eval_traces

    sweep = load_sweep_config(_sweep_file(tmp_path))
    flag = tmp_path / "interrupted"
    first = run_sweep(
        sweep, address=cluster.address, callbacks=[_interrupt_after_first_trial(flag)]
    )
    assert flag.exists() and [t.status for t in first.trials] == ["done"]
    assert not first.complete and first.expected == 2
    done_first = first.trials[0]
    assert done_first.trial == flag.read_text()
    model = Path(str(done_first.run_dir)) / "model.zip"
    stamp = model.stat().st_mtime_ns

    result = run_sweep(sweep, address=cluster.address, resume=True)
    assert [t.status for t in result.trials] == ["done", "done"] and result.complete
    assert {t.params["seed"] for t in result.trials} == {3, 4}
    assert model.stat().st_mtime_ns == stamp  # the finished trial was not trained again
    # every trial is a jbrl train run: its own folder, TensorBoard logs, checkpoints, best/
    for t in result.trials:
        run = Path(str(t.run_dir))
        assert run.parent.parent == result.sweep_dir / "trials"
        assert list(run.glob("events.out.tfevents.*")) and list(run.glob("checkpoints/*.zip"))
        assert (run / "best" / "model.zip").is_file()
    scores = [t.score for t in result.trials]
    assert all(math.isfinite(s) for s in scores) and scores[0] != scores[1]
    assert result.best is not None and result.best.score == min(scores)
    shipped = result.sweep_dir / "best"
    best_run = Path(str(result.best.run_dir)) / "best"
    assert (shipped / "model.zip").read_bytes() == (best_run / "model.zip").read_bytes()
    table = (result.sweep_dir / "results.md").read_text()
    assert table.count("| best |") == 1 and result.best.trial in table
    # the shipped policy, validated again on the validation traces, has the reported score
    config = load_train_config(yaml.safe_load((shipped / "config.yaml").read_text()))
    assert config.eval is not None and config.eval.score == sweep.score_weights
    bench = Workbench.build(config)
    policy = PpoPolicy(path=shipped, scenario=bench.scenario)
    traces = eval_traces(bench.scenario, config.eval.duration_s, config.eval.seed)
    again = [
        validation_run(policy, bench.scenario, tr, config.env, config.eval.seed).score(
            sweep.score_weights
        )
        for tr in traces.values()
    ]
    assert sum(again) / len(again) == pytest.approx(result.best.score, rel=1e-9)
    saved = json.loads((shipped / "validation.json").read_text())
    assert saved["score"] == pytest.approx(result.best.score, rel=1e-12)


# --------------------------------------------------------------------------- control


def _plan(worker: str) -> dict[str, Any]:
    return {
        "model_assignment": {"detect": "small"},
        "worker_assignment": {"detect": [worker], "track": ["c2"]},
    }


def test_controller_places_replicas_on_two_nodes_and_moves_one(
    cluster: Any, tmp_path: Path
) -> None:
    pytest.importorskip("transformers")
    from jbrl.agents.policy import ControlState, Policy
    from jbrl.control import Clock, Controller, ControllerConfig
    from jbrl.control.backends.placement import Placement
    from jbrl.control.backends.ray import RayBackend
    from jbrl.planning.plan import Plan, plan_from_dict
    from jbrl.scenario import scenario_from_dict
    from jbrl.scenario.traces import constant_trace

    switch_at = 8.0  # trace seconds: the detector moves from e1 (node A) to e2 (node B)

    class MoveDetector(Policy):
        name = "move-detector"

        def decide(self, state: ControlState) -> Plan:
            return plan_from_dict(_plan("e1" if state.time_s < switch_at else "e2"))

    d = tiny_scenario_dict()
    d["slo"] = {"min_accuracy": 65.0, "latency_ms": 3000.0, "attainment": 0.99}
    scen = scenario_from_dict(d, "<cluster>")
    placement_file = tmp_path / "placement.yaml"
    placement_file.write_text("workers:\n  e1: node-a\n  c1: node-a\n")
    placement = Placement.load(placement_file, [w.name for w in scen.workers])
    backend = RayBackend(
        scen,
        Clock(1.0),
        constant_trace(scen, math.inf, scale=0.2),  # 2 req/s in scenario units
        rate_scale=0.5,
        models={
            "detect:small": "resnet18",
            "detect:large": "resnet34",
            "track": "tracker-hungarian",
        },
        address=cluster.address,
        placement=placement,
        seed=1,
    )
    cfg = ControllerConfig(interval_s=4.0, headroom=0.3, duration_s=16.0, tensorboard=False,
                           log_dir=tmp_path / "run", policy_timeout_s=30.0)  # fmt: skip
    ctl = Controller(scen, MoveDetector(), backend, cfg, initial_rates={"cam": 2.0})
    nodes: list[dict[str, str]] = []
    loop = threading.Thread(target=ctl.run)
    try:
        loop.start()
        for n_applied in (1, 2):  # after the first plan, then after the move
            deadline = time.monotonic() + 240
            while len(backend.apply_log) < n_applied and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)
            nodes.append(backend.replica_nodes())
        loop.join(timeout=240)
    finally:
        ctl.close()
    a, b = cluster.node_a.node_id, cluster.node_b.node_id
    assert nodes[0] == {"jbrl-detect-small-e1": a, "jbrl-track-default-c2": b}  # two nodes
    assert nodes[1] == {"jbrl-detect-small-e2": b, "jbrl-track-default-c2": b}  # moved to B
    assert [x["deployed"] for x in backend.apply_log] == [
        ["jbrl-detect-small-e1", "jbrl-track-default-c2"],
        ["jbrl-detect-small-e2"],
    ]
    counts = backend.counts()
    assert counts["arrived"] > 10
    assert counts["lost"] == 0 and counts["in_flight"] == 0
    assert counts["dropped"]["failed"] == 0 and counts["completed"] == counts["arrived"]
    assert backend.run_info()["placement"]["file"] == str(placement_file)


def test_a_cluster_without_a_workers_resource_is_bad_input(cluster: Any) -> None:
    """Joining a cluster whose nodes lack a worker's resource stops at once, naming it."""
    pytest.importorskip("ray.serve")
    import ray

    from jbrl.control.backends.placement import Placement
    from jbrl.control.backends.ray_session import RaySession
    from jbrl.errors import InputError

    session = RaySession(Placement.convention(["e1", "e2"]), address=cluster.address)
    with pytest.raises(
        InputError, match=r"'jbrl-worker/e1' for e1 \(needs 2 units, the cluster has 0\)"
    ):
        session.start()
    assert not ray.is_initialized()  # disconnected again
