"""Report the longest functions and modules of the library (jbrl/, envs/, agents/).

The house style keeps functions short enough to read at once (never over 100 lines) and
modules to one job (never over 600 lines). CI runs this script; it prints the longest of each
and exits 1 when a limit is exceeded::

    python experiments/check_structure.py [--functions 100] [--modules 600] [--top 5]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("jbrl", "envs", "agents")


def measure(root: Path = ROOT) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(lines, 'path:qualified.name') of every function, and (lines, path) of every module."""
    functions: list[tuple[int, str]] = []
    modules: list[tuple[int, str]] = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            text = path.read_text("utf-8")
            modules.append((len(text.splitlines()), rel))
            _walk(ast.parse(text), rel, "", functions)
    return functions, modules


def _walk(node: ast.AST, rel: str, prefix: str, out: list[tuple[int, str]]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                assert child.end_lineno is not None
                out.append((child.end_lineno - child.lineno + 1, f"{rel}:{name}"))
            _walk(child, rel, name + ".", out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--functions", type=int, default=100, help="longest function allowed")
    ap.add_argument("--modules", type=int, default=600, help="longest module allowed")
    ap.add_argument("--top", type=int, default=5, help="how many of the longest to list")
    args = ap.parse_args()
    functions, modules = measure()
    functions.sort(reverse=True)
    modules.sort(reverse=True)
    print(f"functions: {len(functions)}, longest (limit {args.functions} lines):")
    for n, name in functions[: args.top]:
        print(f"  {n:5d}  {name}")
    print(f"modules: {len(modules)}, longest (limit {args.modules} lines):")
    for n, name in modules[: args.top]:
        print(f"  {n:5d}  {name}")
    over = [f for f in functions if f[0] > args.functions] + [
        m for m in modules if m[0] > args.modules
    ]
    if over:
        print(f"over the limits: {', '.join(f'{name} ({n})' for n, name in over)}")
        return 1
    print("within the limits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
