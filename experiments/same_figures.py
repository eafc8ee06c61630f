"""Capture the figures jbrl prints on fixed inputs, to compare two versions of the code.

A refactoring must not change what the project prints. This script runs ``jbrl plan`` (vqa,
vehicle and JellyBean's published inputs, every solver, and ``--max-rate``), ``jbrl simulate``
(fluid and DES, fixed seed) and ``jbrl evaluate`` (fluid, fixed seed, every policy) and writes
their JSON into one folder, with the keys that measure wall time removed (solve and decision
times, wall seconds), so that two folders can be compared with ``diff -r``::

    python experiments/same_figures.py capture out/before      # on the old commit
    python experiments/same_figures.py capture out/after       # on the new one
    python experiments/same_figures.py compare out/before out/after

``compare`` prints every differing value (path and both numbers) and exits 1 when any differ.
JellyBean's inputs are read from ``../shared/data/jellybean-vqa-medium`` when present.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
JELLYBEAN = ROOT.parent / "shared" / "data" / "jellybean-vqa-medium"
# keys whose values are wall-clock measurements, not figures of the model
VOLATILE = {"solve_time_s", "wall_s", "decision_ms", "decision_mean_ms", "decision_max_ms"}
POLICIES = (
    "ppo,milp-reactive:headroom=0.2,milp-hysteresis,milp-oracle,milp-static,jellybean,"
    "jellybean-reactive,autoscaler"
)


def commands(out: Path) -> dict[str, list[str]]:
    """name -> jbrl arguments; each writes JSON to stdout or to ``out/<name>.json``."""
    cmds: dict[str, list[str]] = {}
    scenarios = {"vqa": "vqa", "vehicle": "vehicle"}
    if JELLYBEAN.is_dir():
        scenarios["jellybean"] = str(JELLYBEAN)
    for name, scen in scenarios.items():
        for solver in ("milp", "jellybean", "cloud-only", "most-accurate"):
            cmds[f"plan-{name}-{solver}"] = [
                "plan",
                "--scenario",
                scen,
                "--solver",
                solver,
                "--json",
            ]
        cmds[f"maxrate-{name}"] = ["plan", "--scenario", scen, "--max-rate", "--json"]
    step = str(ROOT / "configs" / "traces" / "step.csv")
    for sim in ("fluid", "des"):
        for scen in ("vqa", "vehicle"):
            cmds[f"simulate-{scen}-{sim}"] = [
                "simulate", "--scenario", scen, "--policy", "milp-static", "--trace", step,
                "--sim", sim, "--seed", "3", "--json",
            ]  # fmt: skip
    cmds["evaluate-vqa-fluid"] = [
        "evaluate", "--scenario", "vqa", "--trace", "step", "--trace", "flash_crowd",
        "--policies", POLICIES, "--sim", "fluid", "--seeds", "1", "--no-progress", "--json",
    ]  # fmt: skip
    return cmds


def scrub(obj: Any) -> Any:
    """``obj`` without wall-clock keys, floats rounded to 12 significant digits, and paths of
    this checkout made relative (so that two checkouts compare clean)."""
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, str) and obj.startswith(str(ROOT) + "/"):
        return obj[len(str(ROOT)) + 1 :]
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    if isinstance(obj, float):
        return float(f"{obj:.12g}")
    return obj


def capture(out: Path, jbrl: str) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name, args in commands(out).items():
        proc = subprocess.run([jbrl, *args], capture_output=True, text=True, cwd=ROOT)
        file = out / f"{name}.json"
        if file.is_file():  # the command wrote it itself (before issue 16: evaluate --json PATH)
            data = json.loads(file.read_text())
        else:
            try:
                data = json.loads(proc.stdout)
            except json.JSONDecodeError:
                data = {"stdout": proc.stdout, "stderr": proc.stderr[-2000:]}
        data = {"exit_code": proc.returncode, "output": scrub(data)}
        file.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"{name}: exit {proc.returncode}")
        failed += proc.returncode not in (0, 3)
    return 1 if failed else 0


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only in {'after' if k not in a else 'before'}")
            else:
                _diff(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {json.dumps(a)[:120]} -> {json.dumps(b)[:120]}")


def compare(before: Path, after: Path) -> int:
    lines: list[str] = []
    names = sorted({p.name for p in before.glob("*.json")} | {p.name for p in after.glob("*.json")})
    for name in names:
        a, b = before / name, after / name
        if not (a.is_file() and b.is_file()):
            lines.append(f"{name}: missing in {'after' if a.is_file() else 'before'}")
            continue
        _diff(json.loads(a.read_text()), json.loads(b.read_text()), name, lines)
    print("\n".join(lines) if lines else f"identical: {len(names)} files")
    return 1 if lines else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture", help="run the commands, write their scrubbed JSON into OUT")
    c.add_argument("out", type=Path)
    c.add_argument("--jbrl", default=str(Path(sys.executable).parent / "jbrl"))
    d = sub.add_parser("compare", help="compare two capture folders")
    d.add_argument("before", type=Path)
    d.add_argument("after", type=Path)
    args = ap.parse_args()
    if args.cmd == "capture":
        return capture(args.out, args.jbrl)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
