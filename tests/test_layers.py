"""The layers hold (.importlinter, checked by lint-imports) and no two modules import each other.

The contract's check is run twice: on the code as it is (it must hold), and on a copy of the
code with one upward import added (it must break, naming that import): a contract that reads
nothing, or a checker that finds nothing, would pass the first and fail the second. Cycles are
found on the same import graph (grimp's, which lint-imports builds), deferred and
type-checking imports included: a cycle hidden by a deferred import is still a cycle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

from tests.abort import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
ROOT_PACKAGES = ("harness", "faults")
# Cycles still being removed, each as the set of its modules. A cycle not listed, or larger
# than the one listed, fails the test; remove an entry once its cycle is gone.
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the code under `cwd` (its packages first on the path), no cache."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_layers_hold() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " 0 broken" in done.stdout


def test_an_import_upward_breaks_the_layers(tmp_path: Path) -> None:
    """errors (the bottom layer) importing the CLI (the top): the check fails and names it."""
    for package in ROOT_PACKAGES:
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    errors = tmp_path / "harness" / "errors.py"
    errors.write_text(errors.read_text() + "\nimport harness.cli  # noqa: E402\n")

    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "harness.errors is not allowed to import harness.cli" in done.stdout, done.stdout


def module_cycles(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """Every set of modules that import each other, directly or through others (Tarjan's
    strongly connected components with more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(module: str) -> None:  # recursion: the graph is a few hundred modules deep at most
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_modules_import_each_other() -> None:
    graph = grimp.build_graph(*ROOT_PACKAGES, cache_dir=None)
    unknown = [
        sorted(cycle)
        for cycle in module_cycles(graph)
        if not any(cycle <= known for known in KNOWN_CYCLES)
    ]
    assert unknown == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c", "p.d"):
        graph.add_module(module)
    for importer, imported in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=importer, imported=imported)
    assert module_cycles(graph) == [frozenset({"p.a", "p.b", "p.c"})]
