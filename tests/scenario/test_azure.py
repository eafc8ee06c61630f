"""The Azure Functions 2019 importer, on small files the tests write in that format
(HashOwner, HashApp, HashFunction, Trigger, then 1440 minute columns): selection by function,
app or unique prefix, sums, day concatenation, scaling, per-source columns, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jbrl.cli import app, main
from jbrl.errors import InputError
from jbrl.scenario import load_scenario
from jbrl.scenario.azure import MINUTES, Selection, azure_trace, parse_scale
from jbrl.scenario.traces import load_trace

HEADER = ["HashOwner", "HashApp", "HashFunction", "Trigger", *map(str, range(1, MINUTES + 1))]
APP_A = "a" * 64
APP_B = "b" * 64
F1 = "1" * 60 + "f001"
F2 = "2" * 60 + "f002"
F3 = "3" * 60 + "f003"


def write_day(path: Path, rows: dict[tuple[str, str], np.ndarray]) -> Path:
    lines = [",".join(HEADER)]
    for (app_id, fn), counts in rows.items():
        lines.append(",".join(["o" * 64, app_id, fn, "http", *(str(int(c)) for c in counts)]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def days(tmp_path: Path) -> list[Path]:
    minute = np.arange(MINUTES)
    f1 = 10 + (minute % 60 == 0) * 50  # a spike every hour
    f2 = np.full(MINUTES, 4)
    f3 = (minute // 720) * 6  # nothing in the morning, 6/min after noon
    d1 = write_day(tmp_path / "d01.csv", {(APP_A, F1): f1, (APP_A, F2): f2, (APP_B, F3): f3})
    d2 = write_day(tmp_path / "d02.csv", {(APP_A, F1): 2 * f1, (APP_B, F3): f3})
    return [d1, d2]


def test_one_function_per_minute_scaled_to_its_mean(days):
    tr = azure_trace(days[:1], selection=Selection(functions=(F1,)), scale="mean")
    assert tr.is_scale and len(tr) == MINUTES and tr.duration == MINUTES * 60
    x = tr.values[:, 0]
    assert x.mean() == pytest.approx(1.0, abs=1e-5)
    assert x[0] / x[1] == pytest.approx(60 / 10)  # the spike minute vs a quiet one


def test_an_app_sums_its_functions_and_days_concatenate(days):
    tr = azure_trace(days, selection=Selection(apps=(APP_A,)), scale="1")
    # scale r=1: multiplier = invocations per second; day 1 minute 1: (10 + 4) / 60
    assert tr.values[1, 0] == pytest.approx(14 / 60, abs=1e-6)
    # day 2: F1 doubled, F2 absent that day (zero)
    assert tr.values[MINUTES + 1, 0] == pytest.approx(20 / 60, abs=1e-6)
    assert len(tr) == 2 * MINUTES


def test_prefix_peak_scaling_and_sum_of_functions(days):
    tr = azure_trace(days[:1], selection=Selection(functions=(F1[:10], F3)), scale="peak=2")
    assert tr.values.max() == pytest.approx(2.0)
    total = np.array([10 + 50 * (m % 60 == 0) + 6 * (m // 720) for m in range(MINUTES)])
    np.testing.assert_allclose(tr.values[:, 0], 2 * total / total.max(), atol=1e-6)


def test_per_source_columns_follow_their_own_selection(days, tmp_path):
    sc = load_scenario("vqa")  # sources ReadImage, ReadSpeech
    tr = azure_trace(
        days[:1],
        sources={"ReadImage": Selection(either=(APP_A,)), "ReadSpeech": Selection(either=(F3,))},
        scenario=sc,
    )
    assert tr.columns == ("ReadImage", "ReadSpeech")
    nominal = sc.source_map["ReadImage"].rate
    assert tr.values[:, 0].mean() == pytest.approx(nominal, rel=1e-5)
    assert tr.values[0, 1] == 0.0 and tr.values[-1, 1] > 0  # F3 starts at noon
    same = azure_trace(days[:1], selection=Selection(apps=(APP_A,)), scenario=sc)
    np.testing.assert_allclose(same.values[:, 0], same.values[:, 1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"selection": Selection(functions=("f" * 64,))}, "no row"),
        ({"selection": Selection(functions=("short",))}, "at least 8"),
        ({"selection": Selection(apps=(APP_A,)), "scale": "median"}, "mean, peak"),
        ({"selection": Selection(apps=(APP_A,)), "scale": "-2"}, "mean, peak"),
    ],
)
def test_selection_and_scale_errors(days, kwargs, match):
    with pytest.raises(InputError, match=match):
        azure_trace(days, **kwargs)


def test_ambiguous_prefix(tmp_path):
    day = write_day(
        tmp_path / "d.csv",
        {
            (APP_A, "abcdefgh" + "1" * 56): np.ones(MINUTES),
            (APP_B, "abcdefgh" + "2" * 56): np.ones(MINUTES),
        },
    )
    with pytest.raises(InputError, match="ambiguous"):
        azure_trace([day], selection=Selection(functions=("abcdefgh",)))


def test_zero_invocations_cannot_be_scaled_to_a_mean(tmp_path):
    day = write_day(tmp_path / "d.csv", {(APP_A, F1): np.zeros(MINUTES)})
    with pytest.raises(InputError, match="no invocations"):
        azure_trace([day], selection=Selection(functions=(F1,)))


def test_malformed_files_name_file_line_and_value(tmp_path, days):
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match="header") as info:
        azure_trace([bad_header], selection=Selection(apps=(APP_A,)))
    assert info.value.file == str(bad_header)
    short = tmp_path / "s.csv"
    short.write_text(
        ",".join(HEADER) + "\n" + ",".join([APP_A, APP_A, F1, "http", "1", "2"]) + "\n"
    )
    with pytest.raises(InputError, match="fields") as info:
        azure_trace([short], selection=Selection(apps=(APP_A,)))
    assert info.value.field == "line 2"
    text = days[0].read_text().splitlines()
    row = text[1].split(",")
    row[10] = "x"
    nan = tmp_path / "n.csv"
    nan.write_text("\n".join([text[0], ",".join(row)]) + "\n")
    with pytest.raises(InputError, match="not a number") as info:
        azure_trace([nan], selection=Selection(apps=(APP_A,)))
    assert info.value.value == "x"
    with pytest.raises(InputError, match="no such file"):
        azure_trace([tmp_path / "missing.csv"], selection=Selection(apps=(APP_A,)))


def test_parse_scale():
    assert parse_scale("mean") == ("mean", 1.0)
    assert parse_scale("peak=1.8") == ("peak", 1.8)
    assert parse_scale("0.5") == ("per_rps", 0.5)


def test_cli_import_then_show_and_stats(days, tmp_path):
    out = tmp_path / "t.csv"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "trace",
            "import-azure",
            *map(str, days),
            "--app",
            APP_A[:12],
            "--scale",
            "mean",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    tr = load_trace(out)
    assert len(tr) == 2 * MINUTES and tr.values.mean() == pytest.approx(1.0, abs=1e-4)
    res = runner.invoke(app, ["trace", "stats", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert '"peak_to_mean"' in res.output


@pytest.mark.parametrize(
    "args",
    [
        ["--scale", "mean"],  # no selection
        ["--app", APP_A, "--scale", "nope"],
        ["--source", "ReadImage=" + APP_A],  # --source without --scenario
        ["--source", "Camera=" + APP_A, "--scenario", "vqa"],
    ],
)
def test_cli_bad_input_exits_2(days, tmp_path, args, capsys):
    code = main(["trace", "import-azure", str(days[0]), "-o", str(tmp_path / "x.csv"), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "error" in err and "Traceback" not in err
