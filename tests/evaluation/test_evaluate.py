"""Evaluation: a smoke run (short trace, fluid) producing the table, JSON and PNGs; failing
policies are reported; load-time override; the CLI's exit codes."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from jbrl.agents.policy import Policy, register_policy
from jbrl.cli import main
from jbrl.errors import InputError
from jbrl.evaluation.plots import write_plots
from jbrl.evaluation.policies import parse_policies, probe_policy
from jbrl.evaluation.report import markdown_table, render_table
from jbrl.evaluation.runner import evaluate
from jbrl.evaluation.tensorboard import write_tensorboard
from jbrl.evaluation.traces import embedded_traces, resolve_trace
from jbrl.scenario import load_scenario
from jbrl.scenario.derive import with_load_time
from jbrl.scenario.traces import Trace, generate_trace

POLICIES = ["milp-reactive:headroom=0.2", "milp-static", "autoscaler", "boom"]


class BoomPolicy(Policy):
    """Raises at its second decision: the evaluation must report it, not stop."""

    name = "boom"

    def __init__(self) -> None:
        self.calls = 0

    def decide(self, state):
        self.calls += 1
        if state.current_plan is not None:
            raise RuntimeError("boom")
        from jbrl.planning import get_planner

        return get_planner("milp").plan(state.scenario).plan


register_policy("boom", BoomPolicy)


class LookaheadProbe(Policy):
    """Records what each decision was handed as ``state.lookahead``; keeps its first plan."""

    seen: ClassVar[dict[str, list[Trace | None]]] = {}

    def decide(self, state):
        self.seen.setdefault(self.name, []).append(state.lookahead)
        if state.current_plan is not None:
            return state.current_plan
        from jbrl.planning import get_planner

        return get_planner("milp").plan(state.scenario).plan


class CausalProbe(LookaheadProbe):
    name = "probe-causal"
    clairvoyant = False


class ClairvoyantProbe(LookaheadProbe):
    name = "probe-clairvoyant"
    clairvoyant = True


register_policy("probe-causal", CausalProbe)
register_policy("probe-clairvoyant", ClairvoyantProbe)


@pytest.fixture(scope="module")
def vqa():
    return load_scenario("vqa")


@pytest.fixture(scope="module")
def ev(vqa):
    traces = {
        "ramp": generate_trace("step", 480, seed=1, sources=vqa, params={"low": 0.6, "high": 1.3}),
        "flat": generate_trace("constant", 300, sources=vqa, params={"level": 0.8}),
    }
    return evaluate(vqa, traces, POLICIES, sim="fluid", seeds=2, interval=60.0)


def test_smoke_table_json_plots(ev, tmp_path):
    assert len(ev.runs) == len(POLICIES) * 2 * 2
    assert {r.policy for r in ev.rows} == set(POLICIES)
    assert {r.trace for r in ev.summary} == {"all"}
    reactive = ev.row("milp-reactive:headroom=0.2", "ramp")
    assert reactive is not None and reactive.errors == 0
    assert reactive.dollars > 0 and 0 < reactive.slo_attainment <= 1
    assert reactive.decision_mean_ms > 0 and reactive.decision_max_ms >= reactive.decision_mean_ms
    assert reactive.dollars_per_1k > 0 and reactive.accuracy >= 70.0
    flat = ev.row("milp-static", "flat")
    assert flat is not None and flat.reconfigurations == 0
    # JSON: standard (no NaN), with rows, summary and per-interval series
    text = json.dumps(ev.to_dict(), allow_nan=False)
    data = json.loads(text)
    assert data["rows"] and data["summary"] and data["runs"][0]["series"]["capacity"]
    # table renders (rich and Markdown)
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(render_table(ev))
    out = console.export_text()
    assert "milp-reactive:headroom=0.2" in out and "all" in out
    assert "| autoscaler |" in markdown_table(ev)
    paths = write_plots(ev, tmp_path / "plots")
    assert len(paths) == 3 * 2
    assert all(p.suffix == ".png" and p.stat().st_size > 1000 for p in paths)


def test_failing_policy_is_reported(ev):
    boom = [r for r in ev.runs if r.policy == "boom"]
    assert boom and all(r.error and "boom" in r.error for r in boom)
    row = ev.row("boom")
    assert row is not None and row.errors == row.runs
    assert all(r.error is None for r in ev.runs if r.policy != "boom")


def test_tensorboard(ev, tmp_path):
    pytest.importorskip("tensorboard")
    root = write_tensorboard(ev, tmp_path / "tb")
    assert root is not None
    assert any(p.name.startswith("events.out.tfevents") for p in root.rglob("*"))


def test_clairvoyant_only_gets_lookahead(vqa):
    trace = generate_trace("step", 240, sources=vqa, params={"low": 0.6, "high": 1.3})
    LookaheadProbe.seen.clear()
    policies = ["milp-oracle", "milp-reactive:headroom=0", "probe-causal", "probe-clairvoyant"]
    ev = evaluate(vqa, {"c": trace}, policies, seeds=1)
    assert all(r.error is None for r in ev.runs)
    causal, clairvoyant = (
        LookaheadProbe.seen["probe-causal"],
        LookaheadProbe.seen["probe-clairvoyant"],
    )
    assert len(causal) == len(clairvoyant) == 4  # the first decision and one per interval
    assert all(look is None for look in causal), "a causal policy was handed the future"
    assert all(look is not None and look.peak() == trace.peak() for look in clairvoyant)


def test_load_time_override(vqa):
    s = with_load_time(vqa, 30)
    assert s.default_load_s == 30
    assert all(s.load_time(p.operator, p.variant, w.name) == 30 for p in s.profiles[:5]
               for w in s.workers)  # fmt: skip
    with pytest.raises(InputError):
        with_load_time(vqa, -1)


def test_inputs(vqa):
    assert {"diurnal_bursts", "flash_crowd", "step"} <= set(embedded_traces())
    name, tr = resolve_trace("step", vqa)
    assert name == "step" and tr.columns == tuple(s.name for s in vqa.sources)
    with pytest.raises(InputError):
        resolve_trace("no-such-trace", vqa)
    assert parse_policies("a, b:x=1,a") == ["a", "b:x=1"]
    with pytest.raises(InputError):
        parse_policies(" , ")


def test_cli_exit_codes(capsys, tmp_path, vqa):
    code = main(["evaluate", "--policies", "no-such-policy", "--no-progress"])
    assert code == 2
    assert "unknown policy" in capsys.readouterr().err
    code = main(["evaluate", "--policies", "milp-reactive:headroom=x", "--no-progress"])
    assert code == 2
    assert "headroom" in capsys.readouterr().err
    trace = tmp_path / "t.csv"
    generate_trace("step", 240, seed=2, step_s=60, params={"low": 0.7, "high": 1.2}).save(trace)
    out = tmp_path / "ev.json"
    code = main(
        ["evaluate", "--trace", str(trace), "--policies", "milp-static,autoscaler", "--sim",
         "fluid", "--json-out", str(out), "--plots", str(tmp_path / "p"), "--no-progress"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "plots written" in captured.out
    data = json.loads(out.read_text())
    assert {r["policy"] for r in data["summary"]} == {"milp-static", "autoscaler"}
    assert len(list((tmp_path / "p").glob("*.png"))) == 3
    # --json is a flag: JSON alone on stdout; the old "--json PATH" names the new flag
    args = ["evaluate", "--trace", str(trace), "--policies", "milp-static", "--no-progress"]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"][0]["policy"] == "milp-static"
    assert main([*args, "--json", str(out)]) == 2
    assert f"--json-out {out}" in capsys.readouterr().err


def test_probe_policy(vqa, tmp_path):
    assert probe_policy("milp-static", vqa) is None
    assert "unknown policy" in (probe_policy("no-such-policy", vqa) or "")
    assert probe_policy("milp-oracle", vqa)  # clairvoyant: no lookahead in a probe


def _figures(ev) -> dict:
    """``ev.to_dict()`` without the wall-clock measurements."""
    data = ev.to_dict()
    data.pop("wall_s")
    for part in ("rows", "summary"):
        for row in data[part]:
            row.pop("decision_mean_ms"), row.pop("decision_max_ms")
    for run in data["runs"]:
        run.pop("decision_ms"), run["series"].pop("decision_ms")
    return data


@pytest.mark.slow
def test_process_pool_gives_the_same_runs_in_order(vqa):
    traces = {
        "ramp": generate_trace("step", 240, seed=1, sources=vqa, params={"low": 0.6, "high": 1.3}),
        "flat": generate_trace("constant", 180, sources=vqa, params={"level": 0.8}),
    }
    policies = ["milp-reactive:headroom=0.2", "autoscaler"]
    one = evaluate(vqa, traces, policies, seeds=2)
    two = evaluate(vqa, traces, policies, seeds=2, processes=2)
    assert [(r.policy, r.trace, r.seed) for r in two.runs] == [
        (p, t, s) for p in policies for t in traces for s in (0, 1)
    ]
    assert _figures(two) == _figures(one)


def test_policies_errors_name_the_policies_option(capsys):
    assert main(["evaluate", "--policies", "milp-static,nope", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "field '--policies'" in err and "field '--policy'" not in err
