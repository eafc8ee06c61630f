"""``jbrl control``: the online controller against a simulated or a Ray Serve backend."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jbrl import display
from jbrl.cli.common import JsonOpt, ScenarioOpt, err_console, get_scenario, print_json
from jbrl.errors import InputError, Param

if TYPE_CHECKING:
    from jbrl.control import Backend, Controller, ControllerConfig, ControllerState
    from jbrl.scenario.model import Scenario
    from jbrl.scenario.traces import Trace


class BackendKind(str, Enum):  # noqa: UP042 (matches the other commands' enums)
    sim = "sim"
    ray = "ray"


DEFAULT_PORT = 8470

# --------------------------------------------------------------------------- options

PolicyOpt = Annotated[
    str,
    typer.Option(
        "--policy",
        help="Policy spec: fallback (the controller's MILP safety plan, always available), "
        "milp-reactive:headroom=0.2, milp-hysteresis, jellybean-reactive, autoscaler, "
        "ppo:path=RUN (clairvoyant reference policies cannot run online).",
    ),
]
BackendOpt = Annotated[
    BackendKind,
    typer.Option("--backend", help="sim: discrete-event simulator; ray: Ray Serve."),
]
TraceOpt = Annotated[
    Path | None,
    typer.Option("--trace", help="Trace CSV (default: the scenario's nominal rates)."),
]
IntervalOpt = Annotated[float, typer.Option("--interval", help="Control interval (trace seconds).")]
SpeedupOpt = Annotated[
    float, typer.Option("--speedup", help="Trace seconds per wall-clock second.")
]
DurationOpt = Annotated[
    float | None,
    typer.Option(
        "--duration", help="Stop after this many trace seconds (default: the trace's end)."
    ),
]
HostOpt = Annotated[str, typer.Option("--host", help="HTTP API address.")]
PortOpt = Annotated[int, typer.Option("--port", help="HTTP API port (0: any free port).")]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="JBRL_CONTROL_TOKEN",
        help="Bearer token for the HTTP API (required off loopback; env JBRL_CONTROL_TOKEN).",
    ),
]
AllowOriginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-origin",
        help="A browser origin (scheme://host:port) allowed to call the HTTP API, with CORS "
        "(repeatable). Requests from any other origin are refused (403).",
    ),
]
StateOpt = Annotated[
    Path | None,
    typer.Option("--state", help="State file: resume from its plan; written on every change."),
]
FaultsOpt = Annotated[
    Path | None,
    typer.Option("--faults", help="Fault schedule YAML/JSON (sim backend; seconds from start)."),
]
LogDirOpt = Annotated[
    Path | None,
    typer.Option("--log-dir", help="Run directory (default: runs/control/<time>)."),
]
HeadroomOpt = Annotated[
    float,
    typer.Option("--headroom", help="Plans need capacity for observed load x (1 + headroom)."),
]
AccuracyOpt = Annotated[
    float | None, typer.Option("--accuracy", help="Accuracy target (default: the SLO's).")
]
PolicyTimeoutOpt = Annotated[
    float, typer.Option("--policy-timeout", help="Seconds a policy may take to decide.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Root seed.")]
TensorboardOpt = Annotated[
    bool, typer.Option("--tensorboard/--no-tensorboard", help="Also log to TensorBoard.")
]
ShieldOpt = Annotated[
    bool,
    typer.Option(
        "--shield/--no-shield",
        help="SLO shield on every policy decision: a plan predicted to miss the SLO at the "
        "observed load x (1 + headroom) is replaced by the cheapest scale-up that meets it.",
    ),
]
RayRateScaleOpt = Annotated[
    float,
    typer.Option(
        "--ray-rate-scale",
        help="Ray: real requests per wall second per trace req/s (keep the CPU load sane).",
    ),
]
ModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Ray: model for OPERATOR:VARIANT, VARIANT or OPERATOR, e.g. "
        "--model ExtractImageFeature:resnet152=resnet18 (repeatable).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray: join this cluster ('auto', 'ray://HOST:10001', HOST:6379) instead of "
        "starting one; its nodes provide the workers' resources (see --placement).",
    ),
]
PlacementOpt = Annotated[
    Path | None,
    typer.Option(
        "--placement",
        help="Ray: YAML mapping scenario workers to the Ray custom resources of their nodes "
        "(default: worker W on resource jbrl-worker/W, 2 units per worker).",
    ),
]


# --------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class _Backend:
    """What the chosen backend needs beyond the scenario, trace and clock."""

    kind: BackendKind
    seed: int
    faults: Path | None
    rate_scale: float
    models: list[str] | None
    address: str | None
    placement: Path | None = None


def control(
    scenario: ScenarioOpt = "vqa",
    policy: PolicyOpt = "fallback",
    backend: BackendOpt = BackendKind.sim,
    trace: TraceOpt = None,
    interval: IntervalOpt = 60.0,
    speedup: SpeedupOpt = 1.0,
    duration: DurationOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = DEFAULT_PORT,
    token: TokenOpt = None,
    allow_origin: AllowOriginOpt = None,
    state: StateOpt = None,
    faults: FaultsOpt = None,
    log_dir: LogDirOpt = None,
    headroom: HeadroomOpt = 0.1,
    accuracy: AccuracyOpt = None,
    policy_timeout: PolicyTimeoutOpt = 10.0,
    seed: SeedOpt = 0,
    tensorboard: TensorboardOpt = True,
    shield: ShieldOpt = True,
    ray_rate_scale: RayRateScaleOpt = 0.1,
    model: ModelOpt = None,
    ray_address: RayAddressOpt = None,
    placement: PlacementOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a policy online: every interval read the backend's metrics, decide, check the plan
    (falling back to the MILP plan when it fails), and apply only the difference.

    Serves GET /healthz, /plan, /metrics (Prometheus) and POST /plan (override) on --host:--port.
    Logs every decision to <log-dir>/decisions.jsonl and TensorBoard. SIGTERM or Ctrl-C stops
    cleanly and writes the final state.
    """
    from jbrl.control import ControllerConfig, read_state
    from jbrl.scenario.traces import load_trace

    _check_options(host, token, port, speedup, backend, faults)
    if placement is not None and backend != BackendKind.ray:
        raise InputError(
            "a placement file places Ray Serve replicas: it needs --backend ray",
            field="--placement",
            value=str(placement),
        )
    origins = _check_origins(allow_origin or [])
    s = get_scenario(scenario)
    tr = load_trace(trace, s) if trace is not None else None
    resume = read_state(state) if state is not None else None
    if resume is not None and resume.scenario not in (None, s.name):
        raise InputError(
            f"the state file belongs to scenario {resume.scenario!r}, not {s.name!r}",
            file=str(state),
            field="scenario",
            value=resume.scenario,
        )
    offset = resume.time_s if resume is not None else 0.0
    duration = _run_duration(duration, tr, offset, state)
    run_dir = log_dir or Path("runs") / "control" / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = ControllerConfig(
        interval_s=interval,
        headroom=headroom,
        accuracy=accuracy,
        policy_timeout_s=policy_timeout,
        duration_s=duration,
        state_file=state,
        log_dir=run_dir,
        tensorboard=tensorboard,
        shield=shield,
    )
    spec = _Backend(backend, seed, faults, ray_rate_scale, model, ray_address, placement)
    ctl = _make_controller(s, policy, spec, tr, speedup, offset, config, resume, run_dir)
    summary = _serve_and_run(ctl, (host, port, token, origins), run_dir, f"{backend.value} backend")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    if json_out:
        print_json(summary)
    else:
        _print_summary(summary, run_dir)


def _check_options(
    host: str,
    token: str | None,
    port: int,
    speedup: float,
    backend: BackendKind,
    faults: Path | None,
) -> None:
    """Refuse option combinations that cannot work, before anything starts."""
    from jbrl.control import is_loopback, token_problem

    problem = token_problem(token)
    if problem:
        raise InputError(problem, field="--token", value="<hidden>")
    if not is_loopback(host) and not token:
        raise InputError(
            "binding the HTTP API to a non-loopback address needs a bearer token: pass --token "
            "or set JBRL_CONTROL_TOKEN (or keep the default --host 127.0.0.1)",
            field="--host",
            value=host,
        )
    if not (0 <= port <= 65535):
        raise InputError("must be a port number in [0, 65535]", field="--port", value=port)
    if not (speedup > 0 and math.isfinite(speedup)):
        raise InputError("must be a positive number", field="--speedup", value=speedup)
    if backend == BackendKind.ray:
        from jbrl.control.backends.ray import require_ray

        require_ray()
        if faults is not None:
            raise InputError(
                "fault schedules drive the sim backend; on Ray, crash a worker for real",
                field="--faults",
                value=str(faults),
            )


def _run_duration(
    duration: float | None, trace: Trace | None, offset: float, state: Path | None
) -> float | None:
    """Trace seconds to run: ``--duration``, else what is left of a finite trace."""
    if duration is None and trace is not None and math.isfinite(trace.duration):
        duration = trace.duration - offset
        if duration <= 0:
            raise InputError(
                f"the trace ends at {trace.duration:g} s and the state resumes at {offset:g} s; "
                "give --duration to run on",
                file=str(state),
                field="time_s",
                value=offset,
            )
    return duration


def _make_controller(
    s: Scenario,
    policy: str,
    spec: _Backend,
    trace: Trace | None,
    speedup: float,
    offset: float,
    config: ControllerConfig,
    resume: ControllerState | None,
    run_dir: Path,
) -> Controller:
    """The policy, the clock, the backend and the controller over them."""
    from jbrl.control import Clock, Controller, SimBackend, resolve_policy

    pol = resolve_policy(policy, s, spec.seed)
    clock = Clock(speedup, offset)
    initial = trace.rates_at(offset) if trace is not None else s.nominal_rates()
    be: Backend
    if spec.kind == BackendKind.sim:
        fault_sched = None
        if spec.faults is not None:
            from jbrl.sim.faults import load_faults

            fault_sched = load_faults(spec.faults, s)
        be = SimBackend(s, clock, trace, fault_sched, seed=spec.seed)
    else:
        from jbrl.control.backends.placement import Placement
        from jbrl.control.backends.ray import RayBackend
        from jbrl.raycluster import ray_address

        workers = [w.name for w in s.workers]
        be = RayBackend(
            s,
            clock,
            trace,
            rate_scale=spec.rate_scale,
            models=_parse_models(spec.models),
            run_dir=run_dir,
            address=ray_address(spec.address, Param.RAY_ADDRESS),
            seed=spec.seed,
            placement=Placement.load(spec.placement, workers) if spec.placement else None,
        )
    return Controller(s, pol, be, config, policy_name=policy, initial_rates=initial, resume=resume)


def _check_origins(origins: list[str]) -> tuple[str, ...]:
    """``--allow-origin`` values: ``scheme://host[:port]`` each."""
    for o in origins:
        scheme, sep, rest = o.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest.rstrip("/"):
            raise InputError(
                "must be an origin: http(s)://host[:port]", field="--allow-origin", value=o
            )
    return tuple(origins)


def _serve_and_run(
    ctl: Controller,
    listen: tuple[str, int, str | None, tuple[str, ...]],
    run_dir: Path,
    what: str,
) -> dict[str, Any]:
    """Serve the HTTP API (host, port, token, allowed origins), run the controller until it
    ends or a signal stops it, close both; the run's summary. The API answers 503 until the
    controller has deployed its first plan."""
    from jbrl.control import ApiServer

    host, port, token, origins = listen
    stop = threading.Event()
    _install_signals(stop)
    api = None
    try:
        api = ApiServer(ctl, host, port, token, allow_origins=origins)
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port}: {exc}", field="--port", value=port
        ) from None
    try:
        api.start()
        info = run_dir / "api.json"
        tmp = run_dir / f".api.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"url": api.url, "pid": os.getpid()}) + "\n")
        os.replace(tmp, info)  # readers never see half a file
        err_console.print(
            f"jbrl control: {what}, policy {ctl.policy_name}, API {api.url}, logs {run_dir}",
            highlight=False,
            soft_wrap=True,  # one line: the URL and the path stay whole
        )
        ctl.start()
        return ctl.run(stop)
    finally:
        ctl.stopping = True
        if api is not None:
            api.close()
        ctl.close()


def _install_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def _parse_models(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(
                "must be OPERATOR:VARIANT=MODEL, VARIANT=MODEL or OPERATOR=MODEL",
                field="--model",
                value=item,
            )
        out[key.strip()] = value.strip()
    return out


def _print_summary(s: dict[str, Any], run_dir: Path) -> None:
    """The summary on stdout: the same counts as summary.json, /metrics and the decision log
    (the backend's as of its last report); decisions of this run, then (after a --state
    resume) since the first start."""
    counts = s.get("backend_counts", {})
    slo = s.get("slo_attainment")
    dph = s.get("dollars_per_hour")
    dms = s.get("decision_ms", {})
    lines = [
        f"ran {s.get('duration_s', 0):.0f} trace s: {s.get('arrivals', 0):.0f} requests, "
        f"{s.get('completed', 0):.0f} completed, {s.get('dropped', 0):.0f} dropped, "
        f"{counts.get('in_flight', 0)} in flight, {counts.get('lost', 0)} lost",
        f"SLO attainment {display.pct(slo)}, {display.dollars(dph)} $/hour",
        f"this run: {_counter_line(s.get('counters', {}))}; decision p50 "
        f"{_ms(dms.get('p50'))}, max {_ms(dms.get('max'))}",
    ]
    if s.get("resumed"):
        lines.append(f"since the first start: {_counter_line(s.get('counters_cumulative', {}))}")
    lines.append(f"logs and state in {run_dir}")
    sys.stdout.write("\n".join(lines) + "\n")


def _counter_line(c: dict[str, Any]) -> str:
    return (
        f"{c.get('decisions', 0)} decisions, {c.get('plan_changes', 0)} plan changes, "
        f"{c.get('fallbacks', 0)} fallbacks, {c.get('overrides', 0)} overrides"
    )


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} ms"
