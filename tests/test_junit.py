"""--junit: one test case per SLO check and per regression check, valid against a JUnit schema
(tests/junit_schema.py: pytest's own, from its source distribution on PyPI)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from harness.analysis import analyze_run
from harness.analysis.aggregate import load_trials
from harness.analysis.compare import compare_runs, load_runs
from harness.analysis.matrix import load_matrix
from harness.analysis.thresholds import parse_thresholds, regression_checks
from harness.reporting.junit import (
    matrix_junit,
    regression_suites,
    run_junit,
    trials_junit,
    write_junit,
)
from tests.junit_schema import junit_schema
from tests.synthetic_run import realistic_run
from tests.test_compare import make_run, make_runs
from tests.test_matrix import synthetic_matrix
from tests.test_trials import completed, write_ledger


@pytest.fixture(scope="session")
def schema(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> xmlschema.XMLSchema:
    return junit_schema(pytestconfig, tmp_path_factory)


def cases(path: Path) -> dict[str, ET.Element]:
    return {
        f"{c.get('classname')}::{c.get('name')}": c
        for c in ET.parse(path).getroot().iter("testcase")
    }


def test_run_slo_checks_are_test_cases(tmp_path: Path, schema: xmlschema.XMLSchema) -> None:
    run = realistic_run(tmp_path / "run")
    summary = analyze_run(run)
    path = write_junit(run_junit(summary), tmp_path / "junit.xml")

    schema.validate(str(path))
    found = cases(path)
    checks = summary["slo"]["checks"]  # type: ignore[index]
    assert len(found) == len(checks)
    root = ET.parse(path).getroot()
    failed = [c for c in checks if c["verdict"] != "pass"]
    assert root.get("failures") == str(len(failed))
    for check in checks:
        case = found[f"chaos.synthetic.docker::{check['name']}"]
        failure = case.find("failure")
        if check["verdict"] == "pass":
            assert failure is None
            assert f"{check['value']:.6g}" in (case.findtext("system-out") or "")
        else:
            assert failure is not None
            message = failure.get("message") or ""
            if check["limit"] is not None:
                assert f"{check['value']:.6g}" in message and f"{check['limit']:.6g}" in message


def test_a_failed_check_names_value_and_limit(tmp_path: Path, schema: xmlschema.XMLSchema) -> None:
    run = realistic_run(tmp_path / "run")
    summary = analyze_run(run)
    summary["slo"]["checks"].append(  # type: ignore[index]
        {"name": "ttr_s[f9]", "limit": 1.0, "value": 2.5, "verdict": "fail", "reason": None}
    )
    path = write_junit(run_junit(summary), tmp_path / "junit.xml")
    schema.validate(str(path))
    failure = cases(path)["chaos.synthetic.docker::ttr_s[f9]"].find("failure")
    assert failure is not None
    assert failure.get("message") == "ttr_s[f9]: 2.5 s, limit at most 1 s"
    assert failure.get("type") == "slo"


def test_no_data_fails_unless_allowed(tmp_path: Path, schema: xmlschema.XMLSchema) -> None:
    summary = analyze_run(realistic_run(tmp_path / "run"))
    check = {"name": "p95_ms[recovery]", "limit": 50.0, "value": None, "verdict": "no_data",
             "reason": "phase recovery is empty"}  # fmt: skip
    summary["slo"]["checks"] = [check]  # type: ignore[index]
    strict = write_junit(run_junit(summary), tmp_path / "strict.xml")
    summary["slo"]["allow_no_data"] = True  # type: ignore[index]
    allowed = write_junit(run_junit(summary), tmp_path / "allowed.xml")
    for path in (strict, allowed):
        schema.validate(str(path))
    name = "chaos.synthetic.docker::p95_ms[recovery]"
    assert cases(strict)[name].find("failure") is not None
    assert cases(allowed)[name].find("skipped") is not None


def test_trials_and_matrix_files_validate(tmp_path: Path, schema: xmlschema.XMLSchema) -> None:
    trials = tmp_path / "trials"
    runs = [make_run(trials / f"run-{i}", ttr) for i, ttr in enumerate([1.0, 2.0], start=1)]
    write_ledger(
        trials,
        [completed(1, runs[0]), completed(2, runs[1]),
         {"index": 3, "outcome": "failed", "run_dir": None, "error": "engine down"}],
    )  # fmt: skip
    path = write_junit(trials_junit(load_trials(trials)), tmp_path / "trials.xml")
    schema.validate(str(path))
    root = ET.parse(path).getroot()
    assert [s.get("name", "").split(" (")[0] for s in root] == [
        "synthetic on docker, trial 1",
        "synthetic on docker, trial 2",
        "synthetic on docker, trial 3",
    ]
    assert root.get("errors") == "1"
    error = root[2].find("testcase/error")
    assert error is not None and error.get("message") == "failed: engine down"

    matrix = synthetic_matrix(tmp_path / "matrix", {"docker": [1.0], "swarm": [7.0]})
    path = write_junit(matrix_junit(load_matrix(matrix)), tmp_path / "matrix.xml")
    schema.validate(str(path))
    assert len(ET.parse(path).getroot()) == 3  # two runs and the failed podman one


def test_regression_checks_are_test_cases(tmp_path: Path, schema: xmlschema.XMLSchema) -> None:
    before = make_runs(tmp_path / "b", "before", [1.0, 1.1, 1.2, 1.3, 1.4])
    after = make_runs(tmp_path / "a", "after", [2.0, 2.1, 2.2, 2.3, 2.4])
    comparison = compare_runs(load_runs([*before, *after], "target"), "target")
    checks = regression_checks(comparison, parse_thresholds(["ttr_s=10%", "ttd_s=50%"]), "before")
    path = write_junit(regression_suites(checks), tmp_path / "regressions.xml")

    schema.validate(str(path))
    found = cases(path)
    failure = found["chaos.regression::ttr_s[f1]"].find("failure")
    assert failure is not None and failure.get("type") == "regression"
    message = failure.get("message") or ""
    assert message.startswith("ttr_s[f1]: worse: 1.2 s -> 2.2 s (+1 s, +83.3 %)")
    assert "threshold 10 % (0.12 s)" in message
    assert found["chaos.regression::ttd_s[f1]"].find("failure") is None
