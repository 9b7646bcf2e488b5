"""The notebooks run headlessly (nbclient) on results this test makes: a notebook that stops
working fails the suite. Each must also show what it promises (a table, a figure)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.synthetic_run import realistic_run
from tests.test_matrix import synthetic_matrix

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode, kind: str) -> list[object]:
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if kind in output.get("data", {})
    ]


def test_every_notebook_is_tested() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == [
        "compare_matrix.ipynb",
        "explore_run.ipynb",
    ]


def test_explore_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = realistic_run(tmp_path / "run")
    monkeypatch.setenv("CHAOS_RUN_DIR", str(run))
    notebook = execute("explore_run.ipynb")

    text = "".join(str(o) for cell in notebook.cells for o in cell.get("outputs", []))
    assert f"{run.name} synthetic on docker" in text
    assert "restarted the same container in place" in text
    assert len(outputs(notebook, "image/png")) >= 1  # the zoom around f1
    assert len(outputs(notebook, "text/html")) >= 3  # the fault table, the bins, the events


def test_compare_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = synthetic_matrix(tmp_path, {"docker": [1.2, 1.3, 1.4], "swarm": [7.6, 7.7, 7.8]})
    monkeypatch.setenv("CHAOS_MATRIX_DIR", str(root))
    notebook = execute("compare_matrix.ipynb")

    text = "".join(str(o) for cell in notebook.cells for o in cell.get("outputs", []))
    assert "docker recovered fastest from f1 container_kill: median 1.30 s" in text
    assert len(outputs(notebook, "image/png")) == 2  # ttr per target, the median runs
