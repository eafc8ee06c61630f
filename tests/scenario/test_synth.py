"""Synthetic scenarios: valid, seeded, monotone accuracy, repeated worker types."""

from __future__ import annotations

import itertools

import pytest
import yaml

from jbrl.cli import main
from jbrl.cli.common import FLAGS
from jbrl.errors import InputError
from jbrl.planning.groups import worker_groups
from jbrl.scenario import load_scenario, scenario_to_yaml
from jbrl.scenario.synth import synth_scenario, synth_scenario_dict


@pytest.mark.parametrize("shape", ["chain", "diamond", "fanout"])
@pytest.mark.parametrize(
    "k,v,n,t", [(1, 1, 1, 1), (3, 2, 5, 2), (6, 3, 50, 3), (10, 5, 200, 4), (2, 4, 3, 3)]
)
def test_valid_for_every_shape_and_size(shape, k, v, n, t):
    s = synth_scenario(operators=k, variants=v, workers=n, tiers=t, shape=shape, seed=1)
    assert len(s.operators) == k and len(s.workers) == n and len(s.tiers) == t
    assert s.topo_order and len(s.sources) == 1
    combos = list(s.variant_combinations())
    assert combos and s.best_accuracy() >= s.slo.min_accuracy
    for o in s.operators:  # every variant can run somewhere
        for var in o.variants:
            assert any(s.capacity(o.name, var, w.name) > 0 for w in s.workers)


def test_same_seed_same_scenario_other_seed_differs():
    a = scenario_to_yaml(synth_scenario(operators=5, variants=3, workers=30, seed=7))
    b = scenario_to_yaml(synth_scenario(operators=5, variants=3, workers=30, seed=7))
    c = scenario_to_yaml(synth_scenario(operators=5, variants=3, workers=30, seed=8))
    assert a == b and a != c


def test_accuracy_table_complete_and_monotone():
    s = synth_scenario(operators=6, variants=3, workers=20, tiers=2, shape="diamond", seed=3)
    ops = s.accuracy.operators
    assert len(s.accuracy.table) == 3 ** len(ops)
    acc = {tuple(r.variants[o] for o in ops): r.accuracy for r in s.accuracy.table}
    names = [s.operator_map[o].variants for o in ops]
    for combo in itertools.product(*names):
        for i, var in enumerate(combo):
            j = names[i].index(var)
            if j + 1 < len(names[i]):
                bigger = combo[:i] + (names[i][j + 1],) + combo[i + 1 :]
                assert acc[bigger] >= acc[combo]


def test_max_combinations_bounds_table():
    s = synth_scenario(operators=10, variants=5, workers=20, seed=0)
    assert len(s.accuracy.table) <= 1024
    assert len(s.accuracy.operators) == 4  # 5**4 = 625 <= 1024 < 5**5
    s = synth_scenario(operators=10, variants=5, workers=20, seed=0, max_combinations=30)
    assert len(s.accuracy.table) == 25


def test_variants_bigger_are_slower():
    s = synth_scenario(operators=3, variants=4, workers=20, tiers=2, seed=9)
    for o in s.operators:
        for w in s.workers:
            caps = [s.capacity(o.name, v, w.name) for v in o.variants]
            present = [c for c in caps if c > 0]
            assert present == sorted(present, reverse=True)


def test_worker_types_repeat():
    s = synth_scenario(operators=3, variants=2, workers=1000, tiers=3, seed=0)
    assert len(worker_groups(s)) <= 6
    assert len({w.type for w in s.workers}) <= 6


def test_bad_arguments():
    with pytest.raises(InputError):
        synth_scenario_dict(operators=0)
    with pytest.raises(InputError):
        synth_scenario_dict(shape="star")


def test_bad_arguments_name_the_argument_not_a_flag():
    """The library names its argument; the command line shows it as the flag."""
    with pytest.raises(InputError) as info:
        synth_scenario_dict(max_combinations=0)
    assert "field 'max_combinations'" in str(info.value)
    assert "field '--max-combinations'" in info.value.render(FLAGS)


def test_cli_writes_loadable_yaml(tmp_path, capsys):
    out = tmp_path / "s.yaml"
    argv = ["scenario", "synth", "--operators", "4", "--variants", "3", "--workers", "25"]
    argv += ["--tiers", "3", "--shape", "fanout", "--seed", "5", "-o", str(out)]
    assert main(argv) == 0
    s = load_scenario(out)
    assert len(s.workers) == 25
    assert main(["scenario", "validate", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["name"].startswith("synth-fanout")
    capsys.readouterr()
    assert main(["scenario", "synth", "--workers", "3", "--seed", "5"]) == 0
    assert "synth-chain" in capsys.readouterr().out
    assert main(["scenario", "synth", "--shape", "star"]) == 2
