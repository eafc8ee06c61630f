"""``jbrl control``: the online controller against a simulated or a Ray Serve backend."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from jbrl.cli.common import JsonOpt, ScenarioOpt, err_console, get_scenario, print_json
from jbrl.errors import InputError


class BackendKind(str, Enum):  # noqa: UP042 (matches the other commands' enums)
    sim = "sim"
    ray = "ray"


DEFAULT_PORT = 8470


def control(
    scenario: ScenarioOpt = "vqa",
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="Policy spec: fallback (the controller's MILP safety plan, always available), "
            "milp-reactive:headroom=0.2, milp-hysteresis, jellybean-reactive, autoscaler, "
            "ppo:path=RUN (clairvoyant reference policies cannot run online).",
        ),
    ] = "fallback",
    backend: Annotated[
        BackendKind,
        typer.Option("--backend", help="sim: discrete-event simulator; ray: Ray Serve."),
    ] = BackendKind.sim,
    trace: Annotated[
        Path | None,
        typer.Option("--trace", help="Trace CSV (default: the scenario's nominal rates)."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", help="Control interval (trace seconds).")
    ] = 60.0,
    speedup: Annotated[
        float, typer.Option("--speedup", help="Trace seconds per wall-clock second.")
    ] = 1.0,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration", help="Stop after this many trace seconds (default: the trace's end)."
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="HTTP API address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTP API port (0: any free port).")] = (
        DEFAULT_PORT
    ),
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="JBRL_CONTROL_TOKEN",
            help="Bearer token for the HTTP API (required off loopback; env JBRL_CONTROL_TOKEN).",
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="State file: resume from its plan; written on every change."),
    ] = None,
    faults: Annotated[
        Path | None,
        typer.Option(
            "--faults", help="Fault schedule YAML/JSON (sim backend; seconds from start)."
        ),
    ] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option("--log-dir", help="Run directory (default: runs/control/<time>)."),
    ] = None,
    headroom: Annotated[
        float,
        typer.Option("--headroom", help="Plans need capacity for observed load x (1 + headroom)."),
    ] = 0.1,
    accuracy: Annotated[
        float | None, typer.Option("--accuracy", help="Accuracy target (default: the SLO's).")
    ] = None,
    policy_timeout: Annotated[
        float, typer.Option("--policy-timeout", help="Seconds a policy may take to decide.")
    ] = 10.0,
    seed: Annotated[int, typer.Option("--seed", help="Root seed.")] = 0,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard/--no-tensorboard", help="Also log to TensorBoard.")
    ] = True,
    ray_rate_scale: Annotated[
        float,
        typer.Option(
            "--ray-rate-scale",
            help="Ray: real requests per wall second per trace req/s (keep the CPU load sane).",
        ),
    ] = 0.1,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Ray: model for OPERATOR:VARIANT, VARIANT or OPERATOR, e.g. "
            "--model ExtractImageFeature:resnet152=resnet18 (repeatable).",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Ray: join this cluster instead of starting one."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a policy online: every interval read the backend's metrics, decide, check the plan
    (falling back to the MILP plan when it fails), and apply only the difference.

    Serves GET /healthz, /plan, /metrics (Prometheus) and POST /plan (override) on --host:--port.
    Logs every decision to <log-dir>/decisions.jsonl and TensorBoard. SIGTERM or Ctrl-C stops
    cleanly and writes the final state.
    """
    from jbrl.control import (
        ApiServer,
        Clock,
        Controller,
        ControllerConfig,
        SimBackend,
        is_loopback,
        read_state,
        resolve_policy,
    )
    from jbrl.scenario.traces import load_trace

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
    if duration is None and tr is not None and math.isfinite(tr.duration):
        duration = tr.duration - offset
        if duration <= 0:
            raise InputError(
                f"the trace ends at {tr.duration:g} s and the state resumes at {offset:g} s; "
                "give --duration to run on",
                file=str(state),
                field="time_s",
                value=offset,
            )
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
    )
    pol = resolve_policy(policy, s, seed)
    clock = Clock(speedup, offset)
    initial = tr.rates_at(offset) if tr is not None else s.nominal_rates()
    if backend == BackendKind.sim:
        fault_sched = None
        if faults is not None:
            from jbrl.sim.faults import load_faults

            fault_sched = load_faults(faults, s)
        be: Any = SimBackend(s, clock, tr, fault_sched, seed=seed)
    else:
        from jbrl.control.backends.ray import RayBackend

        be = RayBackend(
            s,
            clock,
            tr,
            rate_scale=ray_rate_scale,
            models=_parse_models(model),
            run_dir=run_dir,
            address=ray_address,
            seed=seed,
        )
    ctl = Controller(s, pol, be, config, policy_name=policy, initial_rates=initial, resume=resume)
    stop = threading.Event()
    _install_signals(stop)
    api = None
    try:
        api = ApiServer(ctl, host, port, token)
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port}: {exc}", field="--port", value=port
        ) from None
    try:
        api.start()
        (run_dir / "api.json").write_text(json.dumps({"url": api.url, "pid": os.getpid()}) + "\n")
        err_console.print(
            f"jbrl control: {backend.value} backend, policy {policy}, API {api.url}, "
            f"logs {run_dir}",
            highlight=False,
        )
        ctl.start()
        summary = ctl.run(stop)
    finally:
        ctl.stopping = True
        if api is not None:
            api.close()
        ctl.close()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    if json_out:
        print_json(summary)
    else:
        _print_summary(summary, run_dir)


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
    c = s.get("counters", {})
    counts = s.get("backend_counts", {})
    slo = s.get("slo_attainment")
    dph = s.get("dollars_per_hour")
    dms = s.get("decision_ms", {})
    lines = [
        f"ran {s.get('duration_s', 0):.0f} trace s: {counts.get('arrived', 0)} requests, "
        f"{counts.get('completed', 0)} completed, {sum((counts.get('dropped') or {}).values())} "
        f"dropped, {counts.get('in_flight', 0)} in flight, {counts.get('lost', 0)} lost",
        f"SLO attainment {'-' if slo is None else f'{slo:.4f}'}, "
        f"{'-' if dph is None else f'{dph:.4f}'} $/hour",
        f"{c.get('decisions', 0)} decisions, {c.get('plan_changes', 0)} plan changes, "
        f"{c.get('fallbacks', 0)} fallbacks, {c.get('overrides', 0)} overrides; decision p50 "
        f"{_ms(dms.get('p50'))}, max {_ms(dms.get('max'))}",
        f"logs and state in {run_dir}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} ms"
