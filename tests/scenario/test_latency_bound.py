"""A latency bound only where one is given: JellyBean's inputs have none (capacity-only
planning, no attainment in the simulators), and the importer gives one on request."""

from __future__ import annotations

import json
import math

from jbrl.cli import main
from jbrl.planning.plan import plan_from_dict
from jbrl.scenario import load_scenario
from jbrl.scenario.jellybean import import_jellybean
from jbrl.sim import DesSimulator, FluidSimulator
from tests.conftest import JELLYBEAN_DIR, JELLYBEAN_REFERENCE_PLAN


def test_jellybean_inputs_have_no_bound(jellybean):
    assert jellybean.slo.latency_ms is None and jellybean.slo.bound_s is None
    assert jellybean.slo.attainment == 0.99
    assert "none (capacity-only)" in jellybean.provenance["all"]


def test_import_option_gives_a_bound():
    s = import_jellybean(JELLYBEAN_DIR, latency_ms=1500.0, attainment=0.95)
    assert s.slo.latency_ms == 1500.0 and s.slo.bound_s == 1.5 and s.slo.attainment == 0.95
    assert "1500 ms (given)" in s.provenance["all"]


def test_simulators_report_no_attainment_without_a_bound(jellybean):
    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    for sim in (FluidSimulator(), DesSimulator()):
        sim.reset(jellybean, plan, seed=0)
        m = sim.advance(120.0, {"ReadImage": 10.0, "ReadSpeech": 10.0})
        assert m.completed > 0
        assert math.isnan(m.within_slo) and math.isnan(m.slo_attainment)
        assert m.missed_slo == m.dropped_total
        d = m.to_dict()
        assert d["within_slo"] is None and d["slo_attainment"] is None
        json.dumps(d, allow_nan=False)


def test_simulators_count_within_the_bound_when_given(jellybean_bounded):
    plan = plan_from_dict(JELLYBEAN_REFERENCE_PLAN)
    for sim in (FluidSimulator(), DesSimulator()):
        sim.reset(jellybean_bounded, plan, seed=0)
        m = sim.advance(120.0, {"ReadImage": 10.0, "ReadSpeech": 10.0})
        assert 0.9 < m.slo_attainment <= 1.0
        assert m.missed_slo == max(0.0, m.completed + m.dropped_total - m.within_slo)


def test_cli_import_with_and_without_a_bound(tmp_path, capsys):
    out = tmp_path / "jb.yaml"
    assert main(["scenario", "import-jellybean", str(JELLYBEAN_DIR), "-o", str(out)]) == 0
    assert load_scenario(out).slo.latency_ms is None
    bounded = tmp_path / "jb-bounded.yaml"
    argv = ["scenario", "import-jellybean", str(JELLYBEAN_DIR), "-o", str(bounded)]
    assert main([*argv, "--latency-ms", "2500", "--attainment", "0.95"]) == 0
    s = load_scenario(bounded)
    assert (s.slo.latency_ms, s.slo.attainment) == (2500.0, 0.95)
    capsys.readouterr()
    assert main([*argv, "--latency-ms", "-1"]) == 2
    assert "--latency-ms" in capsys.readouterr().err
    assert main(["scenario", "show", str(out)]) == 0
    assert "no latency bound" in capsys.readouterr().out
