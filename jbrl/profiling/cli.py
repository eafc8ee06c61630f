"""``jbrl profile``: measure model variants on this machine and write profile YAML.

Register in the main command line with ``main_app.command("profile")(profile_command)``;
``app`` runs the same function standalone (``python -m jbrl.profiling.cli --help``).

Examples::

    jbrl profile --models resnet18,wav2vec2-base --batch-sizes 1,4 --threads 1 --repeats 20
    jbrl profile --models resnet50 --operator-map resnet50=ExtractImageFeature -o prof.yaml
    jbrl profile --list
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jbrl.errors import InputError, JbrlError

if TYPE_CHECKING:
    from jbrl.profiling.profiler import ProfileRecord

app = typer.Typer(
    add_completion=False,
    help="Profile real PyTorch model variants (random weights) and write profile YAML.",
)


ModelsOpt = Annotated[
    str, typer.Option("--models", "-m", help="Comma-separated model names (see --list).")
]
BatchSizesOpt = Annotated[str, typer.Option("--batch-sizes", help="Comma-separated batch sizes.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="torch.set_num_threads for the runs.")]
RepeatsOpt = Annotated[int, typer.Option("--repeats", help="Timed runs per (model, batch).")]
WarmupOpt = Annotated[
    int, typer.Option("--warmup", help="Untimed warm-up runs per (model, batch).")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda[:N].")]
OperatorMapOpt = Annotated[
    str,
    typer.Option(
        "--operator-map",
        help="model=Operator[:variant],... (default: each model's operator, variant = name).",
    ),
]
WorkerTypeOpt = Annotated[
    str, typer.Option("--worker-type", help="worker_type of the profiles (default: cpu or gpu).")
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the profiles YAML here.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the raw records as JSON.")]
ListOpt = Annotated[bool, typer.Option("--list", help="List the known models and exit.")]


def _parse_batch_sizes(text: str) -> list[int]:
    """``1,4,8`` -> [1, 4, 8]; anything but positive integers is an :class:`InputError`."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise InputError(
                "expected positive integers such as 1,4,8", field="--batch-sizes", value=text
            )
        out.append(int(part))
    if not out:
        raise InputError("no batch size given", field="--batch-sizes", value=text)
    return out


def profile_command(
    models: ModelsOpt = "",
    batch_sizes: BatchSizesOpt = "1",
    threads: ThreadsOpt = 1,
    repeats: RepeatsOpt = 20,
    warmup: WarmupOpt = 3,
    device: DeviceOpt = "cpu",
    operator_map: OperatorMapOpt = "",
    worker_type: WorkerTypeOpt = "",
    output: OutputOpt = None,
    json_out: JsonOpt = False,
    list_models: ListOpt = False,
) -> None:
    """Measure model variants (warm-up, timed runs -> p50/p90, output KB, load time)."""
    out = Console()
    err = Console(stderr=True)
    try:
        if list_models:
            _print_models(out, json_out)
            return
        from jbrl.profiling.profiler import parse_operator_map, write_profiles

        names = _check_models(models)
        sizes = _parse_batch_sizes(batch_sizes)
        opmap = parse_operator_map(operator_map)
        _check_device(device)
        records = _measure(names, sizes, threads, device, repeats, warmup, err)
        if output is not None:
            cmd = _command_line(sys.argv)
            write_profiles(output, records, opmap, worker_type or None, command=cmd)
        if json_out:
            sys.stdout.write(json.dumps([r.to_dict() for r in records], indent=2) + "\n")
        else:
            out.print(_records_table(records))
            if output is not None:
                out.print(f"wrote {output}")
    except JbrlError as exc:
        text = str(exc)
        if isinstance(exc, InputError):
            from jbrl.cli.common import FLAGS  # jbrl.cli imports this module: import on use

            text = exc.render(FLAGS)
        err.print(f"[red]error:[/red] {escape(text)}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def _check_models(models: str) -> list[str]:
    """The model names of ``--models``; unknown ones fail here, before anything heavy is
    imported or built."""
    from jbrl.profiling.models import MODELS
    from jbrl.profiling.profiler import resolve_models

    names = [n for n in models.split(",") if n.strip()]
    if not names:
        raise InputError(
            f"give at least one model; known models: {', '.join(MODELS)}", field="--models"
        )
    resolve_models(names)
    return names


def _check_device(device: str) -> None:
    from jbrl.profiling.profiler import check_device

    try:
        check_device(device)
    except ImportError as exc:
        raise InputError(
            f"profiling needs torch and transformers ({exc}); pip install 'jbrl[profile]'"
        ) from None


def _measure(
    names: list[str],
    sizes: list[int],
    threads: int,
    device: str,
    repeats: int,
    warmup: int,
    err: Console,
) -> list[ProfileRecord]:
    """:func:`~jbrl.profiling.profiler.profile_models` with a progress bar on ``err``."""
    from jbrl.profiling.profiler import profile_models

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("profiling", total=None)

        def progress(desc: str, done: int, total: int) -> None:
            bar.update(task, description=desc, completed=done, total=total)

        return profile_models(
            names,
            batch_sizes=sizes,
            threads=threads,
            device=device,
            repeats=repeats,
            warmup=warmup,
            progress=progress,
        )


def _records_table(records: list[ProfileRecord]) -> Table:
    table = Table(title=f"jbrl profile ({records[0].hardware})" if records else None)
    for col in ("model", "batch", "threads", "p50 ms", "p90 ms", "out KB", "load s"):
        table.add_column(col, justify="left" if col == "model" else "right", overflow="fold")
    for r in records:
        table.add_row(
            r.model,
            str(r.batch),
            str(r.threads),
            f"{r.p50_ms:.2f}",
            f"{r.p90_ms:.2f}",
            f"{r.output_kb:.1f}",
            f"{r.load_s:.2f}",
        )
    return table


def _command_line(argv: list[str]) -> str:
    """``jbrl profile ARGS`` as typed, whether run as ``jbrl profile`` or standalone."""
    args = argv[1:]
    if "profile" in args:
        args = args[args.index("profile") + 1 :]
    return "jbrl profile " + " ".join(shlex.quote(a) for a in args)


def _print_models(out: Console, as_json: bool) -> None:
    from jbrl.profiling.models import MODELS

    if as_json:  # raw on stdout: never wrapped or styled by the terminal
        sys.stdout.write(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "operator": s.operator,
                        "description": s.description,
                        "input": s.input_desc,
                        "reference": s.reference,
                    }
                    for s in MODELS.values()
                ],
                indent=2,
            )
            + "\n"
        )
        return
    table = Table(title="models known to jbrl profile")
    for col in ("name", "operator", "description", "input"):
        table.add_column(col, overflow="fold")
    for s in MODELS.values():
        table.add_row(s.name, s.operator, s.description, s.input_desc)
    out.print(table)


app.command(name="profile")(profile_command)


def main() -> None:  # pragma: no cover - thin wrapper
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
