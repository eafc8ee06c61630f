"""What the env takes from the planning layer: the greedy planner (same starting plans as
before it moved), the one rule for interchangeable workers, the MILP start, and the env
docstring's action and observation tables checked against the codec and the encoder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from jbrl.envs import ActionCodec, ServingEnv, ServingSpec
from jbrl.envs.combo_ladder import ComboLadderCodec
from jbrl.envs.ladder import LadderCodec
from jbrl.envs.observation import OBS_HIGH, OBS_LOW
from jbrl.planning import get_planner
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.greedy import greedy_plan
from jbrl.planning.groups import worker_groups
from jbrl.scenario import Scenario, load_scenario, scenario_from_dict
from jbrl.scenario.synth import synth_scenario
from tests.conftest import JELLYBEAN_DIR, tiny_scenario_dict

GOLDEN = Path(__file__).parent / "data" / "greedy_signatures.json"


def scenarios() -> dict[str, tuple[Scenario, float | None]]:
    return {
        "vqa": (load_scenario("vqa"), None),
        "vehicle": (load_scenario("vehicle"), None),
        "tiny": (scenario_from_dict(tiny_scenario_dict(), "<tiny>"), 65.0),
        "synth-diamond": (synth_scenario(shape="diamond", tiers=3, workers=40, seed=1), None),
    }


def test_greedy_planner_gives_the_former_starting_signatures() -> None:
    gold = json.loads(GOLDEN.read_text("utf-8"))
    for name, (scenario, acc) in scenarios().items():
        codec = ActionCodec(ServingSpec(scenario, acc))
        for row in gold[name]:
            sig = codec.greedy_signature(codec.spec.nominal * row["scale"])
            assert (sig.combo, list(sig.assignment)) == (row["combo"], row["assignment"]), (
                name,
                row["scale"],
            )


def test_greedy_plan_is_valid_and_covers_its_target() -> None:
    for name, (scenario, acc) in scenarios().items():
        spec = ServingSpec(scenario, acc)
        target = spec.nominal * 1.2
        plan = greedy_plan(spec, target)
        assert plan is not None and plan.meta["solver"] == "greedy"
        report = evaluate_plan(scenario, plan, spec.rates_dict(target), spec.accuracy)
        assert not report.violations, (name, report.violations)


def test_codec_groups_are_the_planning_groups() -> None:
    """One rule for interchangeable workers: the codec's groups are jbrl.planning.groups'."""
    cases = {name: s for name, (s, _) in scenarios().items()}
    cases["synth-fanout"] = synth_scenario(shape="fanout", variants=4, workers=60, tiers=3, seed=2)
    if JELLYBEAN_DIR.is_dir():
        cases["jellybean"] = load_scenario(JELLYBEAN_DIR)
    for name, scenario in cases.items():
        spec = ServingSpec(scenario, -1e9)
        got = [tuple(spec.workers[w] for w in g) for g in spec.groups]
        assert got == [g.members for g in worker_groups(scenario)], name
    assert max(len(g) for g in ServingSpec(cases["synth-fanout"]).groups) > 1


def test_milp_start_is_the_milp_plan_of_the_first_rates(tiny: Scenario) -> None:
    cfg = {"scenario": "tiny", "accuracy": 65.0, "episode_steps": 8, "history": 3}
    env = ServingEnv({**cfg, "initial_plan": "milp"}, scenario_obj=tiny)
    env.reset(seed=2)
    assert env.trace is not None and env.sig is not None and env.milp_start is not None
    target = env.trace.array_at(0.0) * (1.0 + env.config.initial_headroom)
    grid = np.ceil(target / env.milp_start.step - 1e-9) * env.milp_start.step
    res = get_planner("milp").plan(tiny, rates=env.serving.rates_dict(grid), accuracy=65.0)
    assert env.sig == env.codec.canonical_signature(res.plan)
    assert np.all(env.codec.capacity(env.sig) >= env.serving.demand(target) - 1e-9)
    solves = env.milp_start.solves
    env.reset(seed=2)  # the same starting load: memoized
    assert env.milp_start.solves == solves
    greedy = ServingEnv(cfg, scenario_obj=tiny)
    greedy.reset(seed=2)
    assert greedy.milp_start is None
    assert greedy.sig == greedy.codec.greedy_signature(target)


# --------------------------------------------------------------------------- docstring tables


def _table(section: str, which: int = 0) -> list[tuple[str, str]]:
    """(first cell, size cell) of the ``which``-th table of a ServingEnv docstring section;
    continuation rows (empty size) are skipped."""
    doc = ServingEnv.__doc__ or ""
    body = doc.split(f"## {section}")[1].split("\n    ## ")[0]
    tables = re.findall(r"((?:^ *\|.*\|\n)+)", body, flags=re.M)
    rows = []
    for line in tables[which].splitlines()[2:]:  # skip the header and the rule
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[1]:
            rows.append((cells[0], cells[1]))
    return rows


def _size(expr: str, names: dict[str, int]) -> int:
    assert re.fullmatch(r"[a-z_0-9 +*()]+", expr), expr
    return int(eval(expr, {"__builtins__": {}}, names))  # noqa: S307 - checked characters


@pytest.mark.parametrize("action", ["workers", "ladder", "combo_ladder"])
def test_docstring_tables_match_the_codec_and_encoder(tiny: Scenario, action: str) -> None:
    vqa = load_scenario("vqa")
    for scenario, acc in ((tiny, 65.0), (vqa, None)):
        cfg = {
            "accuracy": acc,
            "action": action,
            "history": 5,
            "forecast": action == "combo_ladder",
        }
        env = ServingEnv(cfg, scenario_obj=scenario)
        spec, codec, enc = env.serving, env.codec, env.encoder
        combo = isinstance(codec, ComboLadderCodec)
        names = {
            "n_combos": len(spec.combos),
            "n_ops": len(spec.ops),
            "n_workers": len(spec.workers),
            "n_src": len(spec.sources),
            "history": enc.history,
            "n_rungs": len(codec.ladder) if isinstance(codec, LadderCodec) else 0,
            "n_ladder_combos": len(codec.table.combos) if combo else 0,
            "n_levels": codec.table.n_levels if combo else 0,
        }
        nvec: list[int] = []
        table = ["workers", "ladder", "combo_ladder"].index(action)
        for dim, size in _table("Action Space", table):
            repeat = names["n_workers"] if "w" in dim else 1
            nvec += [_size(size, names)] * repeat
        assert nvec == codec.nvec.tolist()
        parts = {part: _size(size, names) for part, size in _table("Observation Space")}
        if not combo:  # the level part is combo_ladder's only
            del parts["level"]
        if not enc.forecast:  # and the forecast part the forecast option's
            del parts["forecast"]
        assert parts == enc.sizes
        space = env.observation_space
        assert space.shape == (sum(parts.values()),) and space.dtype == np.float32
        assert float(space.low.min()) == OBS_LOW and float(space.high.max()) == OBS_HIGH
    assert "Box(-1, 8, (n,), float32)" in (ServingEnv.__doc__ or "")
