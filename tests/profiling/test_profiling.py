"""jbrl.profiling: real measurements of random-weight models, YAML output, clear errors."""

from __future__ import annotations

import os

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from jbrl.errors import InputError  # noqa: E402
from jbrl.profiling import (  # noqa: E402
    MODELS,
    parse_operator_map,
    profile_models,
    profiles_yaml,
    records_to_profiles,
)
from jbrl.profiling.cli import app  # noqa: E402
from jbrl.scenario.model import Profile  # noqa: E402


@pytest.fixture(scope="module")
def resnet18_records():
    return profile_models(["resnet18"], batch_sizes=(1,), threads=1, repeats=3, warmup=1)


def test_profiling_resnet18_really_runs(resnet18_records):
    (rec,) = resnet18_records
    assert rec.model == "resnet18" and rec.operator == "ExtractImageFeature"
    assert rec.batch == 1 and rec.threads == 1 and rec.device == "cpu"
    assert 0 < rec.p50_ms <= rec.p90_ms
    assert rec.min_ms <= rec.p50_ms <= rec.max_ms
    # 512 x 7 x 7 float32 grid features per image
    assert rec.output_kb == pytest.approx(512 * 7 * 7 * 4 / 1024)
    assert rec.load_s > 0
    assert rec.params_m == pytest.approx(11.18, abs=0.01)
    assert rec.repeats == 3 and rec.warmup == 1
    assert torch.get_num_threads() >= 1


def test_yaml_output_validates_as_profiles(resnet18_records):
    doc = yaml.safe_load(profiles_yaml(resnet18_records, command="test"))
    assert set(doc) == {"profiles"}
    profiles = [Profile.model_validate(p) for p in doc["profiles"]]
    (p,) = profiles
    assert (p.operator, p.variant, p.worker_type) == ("ExtractImageFeature", "resnet18", "cpu")
    assert 0 < p.p50_ms <= p.p90_ms
    assert p.load_s is not None and p.output_kb is not None
    assert "jbrl profile" in (p.provenance or "")
    assert "1 thread" in (p.provenance or "")
    assert "torch" in (p.provenance or "")


def test_operator_map_and_batches():
    records = profile_models(
        ["tracker-hungarian"], batch_sizes=(1, 2), repeats=3, warmup=1, threads=1
    )
    assert [r.batch for r in records] == [1, 2]
    opmap = parse_operator_map("tracker-hungarian=Track:hungarian")
    (entry,) = records_to_profiles(records, opmap, worker_type="edge-cpu")
    p = Profile.model_validate(entry)
    assert (p.operator, p.variant, p.worker_type) == ("Track", "hungarian", "edge-cpu")
    assert [b.batch for b in p.batches] == [1, 2]
    assert all(0 < b.p50_ms <= b.p90_ms for b in p.batches)
    # 8 detections -> 8 int64 track ids per frame
    assert p.output_kb == pytest.approx(8 * 8 / 1024)


def test_progress_callback_reaches_total():
    seen: list[tuple[int, int]] = []
    profile_models(
        ["tracker-hungarian"],
        repeats=2,
        warmup=1,
        progress=lambda desc, done, total: seen.append((done, total)),
    )
    assert seen and seen[-1][0] == seen[-1][1]


def test_unknown_model_is_an_input_error():
    with pytest.raises(InputError, match="unknown model"):
        profile_models(["resnet9000"])


def test_unavailable_device_is_an_input_error():
    with pytest.raises(InputError):
        profile_models(["tracker-hungarian"], device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            profile_models(["tracker-hungarian"], device="cuda")


def test_bad_operator_map():
    with pytest.raises(InputError):
        parse_operator_map("resnet18")


@pytest.mark.parametrize(
    "args",
    [
        ["--models", "resnet9000"],
        ["--models", "resnet18", "--device", "tpu"],
        ["--models", "resnet18", "--batch-sizes", "0"],
        ["--models", ""],
    ],
)
def test_cli_bad_input_exits_2_without_traceback(args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "error" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_cuda_unavailable_exits_2():
    result = CliRunner().invoke(app, ["--models", "resnet18", "--device", "cuda"])
    assert result.exit_code == 2
    assert "CUDA is not available" in result.output


def test_cli_writes_valid_yaml(tmp_path):
    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(
        app,
        [
            "--models",
            "tracker-hungarian",
            "--repeats",
            "3",
            "--warmup",
            "1",
            "--operator-map",
            "tracker-hungarian=Tracker",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(out.read_text())
    (p,) = [Profile.model_validate(x) for x in doc["profiles"]]
    assert p.operator == "Tracker" and p.variant == "hungarian"  # the alias resolves


def test_cli_list_and_json():
    result = CliRunner().invoke(app, ["--list", "--json"])
    assert result.exit_code == 0
    assert "wav2vec2-large" in result.output


def test_registry_matches_published_parameter_counts():
    """Built on the meta device (no memory, no init): the architectures are the real ones."""
    for spec in MODELS.values():
        if not spec.neural or spec.params_published_m is None:
            continue
        spec.preload()
        with torch.device("meta"):
            model = spec.build("meta")
        n = sum(p.numel() for p in model.parameters()) / 1e6
        assert n == pytest.approx(spec.params_published_m, rel=spec.params_rel_tol), spec.name


@pytest.mark.slow
def test_every_model_runs_once():
    records = profile_models(list(MODELS), repeats=1, warmup=0, threads=1)
    assert {r.model for r in records} == set(MODELS)
    for r in records:
        assert 0 < r.p50_ms <= r.p90_ms
        assert r.output_kb > 0


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--models", "resnet9000"], "--models"),
        (["--models", "resnet18", "--device", "tpu"], "--device"),
        (["--models", "resnet18", "--repeats", "0"], "--repeats"),
    ],
)
def test_cli_errors_name_the_flag(args, flag):
    """The library names arguments (errors.Param); the command line shows them as flags."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"field '{flag}'" in result.output


def test_cpu_clock_measures_the_compute_thread():
    (rec,) = profile_models(["hungarian"], repeats=3, warmup=1, clock="cpu")
    assert rec.clock == "cpu" and 0 < rec.p50_ms <= rec.p90_ms
    (entry,) = records_to_profiles([rec])
    assert "thread_time" in entry["provenance"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"clock": "sundial"}, "must be one of"), ({"clock": "cpu", "threads": 2}, "threads 1")],
)
def test_bad_clock_is_an_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        profile_models(["hungarian"], repeats=1, **kwargs)
