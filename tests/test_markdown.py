"""--markdown: summaries for a pull-request comment or a CI job summary.

Tables are checked the way a Markdown renderer reads them: every row has as many cells as its
header, once escaped pipes are taken into account, so a reason quoting `a | b` cannot break a
table.
"""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from harness.analysis import analyze_run
from harness.analysis.aggregate import load_trials
from harness.analysis.compare import compare_runs, load_runs
from harness.analysis.matrix import load_matrix
from harness.analysis.thresholds import parse_thresholds, regression_checks
from harness.cli import app
from harness.reporting.markdown import (
    compare_markdown,
    matrix_markdown,
    run_markdown,
    trials_markdown,
)
from tests.synthetic_run import realistic_run
from tests.test_compare import make_run, make_runs
from tests.test_matrix import synthetic_matrix
from tests.test_trials import completed, no_impact_run, write_ledger

UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def tables(text: str) -> list[list[list[str]]]:
    """Every table of the text, as rows of cells (the separator row left out)."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in UNESCAPED_PIPE.split(line)[1:-1]]
            if not all(re.fullmatch(r"-+", c) for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def well_formed(text: str) -> list[list[list[str]]]:
    found = tables(text)
    for table in found:
        assert all(len(row) == len(table[0]) for row in table), table
    return found


def test_run_summary(tmp_path: Path) -> None:
    summary = analyze_run(realistic_run(tmp_path / "run"))
    summary["slo"]["checks"][0]["reason"] = "a | b\nsecond line"  # type: ignore[index]
    summary["slo"]["checks"][0]["verdict"] = "fail"  # type: ignore[index]
    text = run_markdown(summary)

    assert text.splitlines()[0].startswith("### ❌ chaos-harness: synthetic on docker:")
    faults, slo = well_formed(text)
    assert [row[0] for row in faults[1:]] == ["f1 container_kill", "f2 network_partition"]
    assert faults[1][2].startswith("recovered in ")
    assert len(slo) == 1 + len(summary["slo"]["checks"])  # type: ignore[index]
    assert "a \\| b second line" in text


def test_trials_summary_lists_what_was_left_out(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / f"run-{i}", ttr) for i, ttr in enumerate([1.0, 3.0], start=1)]
    runs.append(no_impact_run(tmp_path / "run-3"))
    entries = [completed(i, r) for i, r in enumerate(runs, start=1)]
    entries.append({"index": 4, "outcome": "aborted", "run_dir": None, "error": "SIGINT"})
    write_ledger(tmp_path, entries)
    text = trials_markdown(load_trials(tmp_path))

    assert "3 of 4 trials summed up." in text
    assert "users recovered in a median of 2.000 s (range 1.000–3.000 s)" in text
    assert "1 of 3 had no visible impact (counted apart, not as 0 s)" in text
    assert "- trial 4: aborted: SIGINT" in text
    (table,) = well_formed(text)
    assert table[1][:3] == ["f1 container_kill", "time to recover", "2.000 s"]


def test_comparison_with_regression_checks(tmp_path: Path) -> None:
    before = make_runs(tmp_path / "b", "before", [2.0, 2.1, 2.2, 2.3, 2.4])
    after = make_runs(tmp_path / "a", "after", [1.0, 1.1, 1.2, 1.3, 1.4])
    comparison = compare_runs(load_runs([*before, *after], "target"), "target")
    checks = regression_checks(comparison, parse_thresholds(["ttr_s=10%"]), "before")
    text = compare_markdown(comparison, checks)

    assert text.splitlines()[0] == "### ✅ chaos-harness comparison: before vs after: no regression"
    (table,) = well_formed(text)
    assert table[1][0] == "✅ ttr_s[f1]" and table[1][-1] == "better"


def test_matrix_summary(tmp_path: Path) -> None:
    root = synthetic_matrix(tmp_path, {"docker": [1.2, 1.3, 1.4], "swarm": [7.6, 7.7, 7.8]})
    text = matrix_markdown(load_matrix(root))
    (table,) = well_formed(text)
    assert [row[1] for row in table[1:]] == ["docker", "swarm"]
    assert "1 left out" in text


def test_cli_writes_markdown_for_compare(tmp_path: Path) -> None:
    runs = [
        *make_runs(tmp_path / "b", "before", [2.0, 2.1, 2.2]),
        *make_runs(tmp_path / "a", "after", [1.0, 1.1, 1.2]),
    ]
    out = tmp_path / "summary.md"
    result = CliRunner().invoke(
        app,
        ["compare", *map(str, runs), "--out", str(tmp_path / "cmp"), "--markdown", str(out),
         "--threshold", "ttr_s=10%"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("### ✅ chaos-harness comparison: before vs after")
