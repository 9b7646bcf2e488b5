"""manifest.json and summary.json as typed, versioned files (harness.results.manifest,
harness.results.summary, harness schema).

tests/data/run-v0 holds the two files of a real quickstart run written before the files carried
a schema_version (Docker, commit c45992f): they must keep reading, and read back as written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from harness.analysis import analyze_run
from harness.cli_schema import schema, schema_json
from harness.errors import AnalysisError
from harness.results.manifest import load_manifest
from harness.results.summary import as_summary, load_summary
from tests.synthetic_run import realistic_run, series, write_run

REPO = Path(__file__).resolve().parents[1]
V0_RUN = Path(__file__).parent / "data" / "run-v0"


def _without_version(data: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in data.items() if k != "schema_version"}


@pytest.mark.parametrize("name", ["summary.json", "manifest.json"])
def test_an_unversioned_file_reads_back_as_written(name: str) -> None:
    loader = load_summary if name == "summary.json" else load_manifest
    record = loader(V0_RUN)
    raw = (V0_RUN / name).read_text(encoding="utf-8")

    assert record.schema_version == 1
    assert record.unknown_fields() == []  # the model names every field the file has
    dumped = json.dumps(_without_version(record.model_dump(mode="json")), indent=2)
    assert dumped == json.dumps(json.loads(raw), indent=2)  # same names, order and values


def test_an_unversioned_run_reads_typed() -> None:
    summary, manifest = load_summary(V0_RUN), load_manifest(V0_RUN)

    assert (summary.status, manifest.status) == ("passed", "completed")
    crash = summary.fault("f1")
    assert crash is not None and crash.kind == "container_kill" and crash.recovered is True
    assert crash.ttr_s == pytest.approx(0.66)
    assert crash.response is not None and crash.response.action == "restarted_in_place"
    assert summary.phases["fault"].latency_ms is not None
    assert manifest.load.routing == "service" and manifest.slo.ttr_s == 10.0
    assert manifest.warmup_s() == 1.0


def test_legacy_statuses_read_in_todays_words(tmp_path: Path) -> None:
    manifest = json.loads((V0_RUN / "manifest.json").read_text())
    summary = json.loads((V0_RUN / "summary.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "status": "interrupted"}))
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "status": "error"}))

    assert load_manifest(tmp_path).status == "aborted"
    assert load_summary(tmp_path).status == "failed"


def test_a_newer_version_is_refused_naming_it(tmp_path: Path) -> None:
    summary = json.loads((V0_RUN / "summary.json").read_text())
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "schema_version": 7}))

    with pytest.raises(AnalysisError, match="schema_version 7 is newer than this harness reads"):
        load_summary(tmp_path)


def test_a_wrong_type_names_the_file_and_field(tmp_path: Path) -> None:
    manifest = json.loads((V0_RUN / "manifest.json").read_text())
    manifest["load"]["users"] = "twenty"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(AnalysisError, match=r"manifest\.json: load\.users"):
        load_manifest(tmp_path)


def test_a_new_summary_is_versioned_and_fully_described(tmp_path: Path) -> None:
    run = realistic_run(tmp_path / "run")
    written = analyze_run(run)
    text = (run / "summary.json").read_text(encoding="utf-8")

    assert next(iter(json.loads(text))) == "schema_version" and written["schema_version"] == 1
    summary = load_summary(run)
    assert summary.unknown_fields() == []
    assert json.loads(text) == summary.as_json() == written


def test_an_old_phase_without_intervals_reads_as_its_span(tmp_path: Path) -> None:
    summary = json.loads((V0_RUN / "summary.json").read_text())
    after = summary["phases"]["after"]
    del after["intervals"]

    phase = as_summary(summary).phases["after"]
    assert phase.intervals == [[after["start_ns"], after["end_ns"]]]


def test_old_dict_access_still_reads_the_json_values() -> None:
    summary = load_summary(V0_RUN)
    raw = json.loads((V0_RUN / "summary.json").read_text())

    assert summary["faults"][0]["ttr_s"] == raw["faults"][0]["ttr_s"]
    assert summary.faults[0]["response"] == raw["faults"][0]["response"]
    assert summary.get("no such field", "absent") == "absent"
    with pytest.raises(KeyError):
        summary["no such field"]


@pytest.mark.parametrize("name", ["summary.json", "manifest.json"])
def test_the_schema_validates_old_and_new_files(tmp_path: Path, name: str) -> None:
    schema_doc = json.loads(schema_json(name))
    run = realistic_run(tmp_path / "run")
    analyze_run(run)
    validator = jsonschema.Draft202012Validator(schema_doc)

    loader = load_summary if name == "summary.json" else load_manifest
    if name == "summary.json":
        validator.validate(json.loads((run / name).read_text()))  # as the analysis wrote it
    for directory in (V0_RUN, run):  # older files (the synthetic manifest too), as read today
        validator.validate(loader(directory).as_json())
    assert not validator.is_valid(json.loads((V0_RUN / name).read_text()))  # no version
    broken = loader(run).as_json()
    broken["run_id"] = 42
    assert not validator.is_valid(broken)


def test_the_schema_command(tmp_path: Path) -> None:
    import typer

    app = typer.Typer()
    app.command()(schema)
    printed = CliRunner().invoke(app, ["--summary"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output)["title"] == "chaos-harness summary.json, schema_version 1"

    out = tmp_path / "manifest.schema.json"
    written = CliRunner().invoke(app, ["--manifest", "--out", str(out)])
    required = json.loads(out.read_text())["required"]
    assert written.exit_code == 0 and {"schema_version", "run_id", "load", "slo"} <= set(required)
    assert "abort" not in required  # written only when the run was aborted
    assert CliRunner().invoke(app, ["--summary", "--manifest"]).exit_code == 2
    scenario = CliRunner().invoke(app, [])  # the default: scenario files, for editors
    assert scenario.exit_code == 0 and "faults" in json.loads(scenario.output)["properties"]


def test_a_manifest_without_settings_gets_the_defaults(tmp_path: Path) -> None:
    run = write_run(tmp_path, series(0.0, 5.0, 0.1))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["analysis"], manifest["slo"] = {}, None
    (run / "manifest.json").write_text(json.dumps(manifest))

    loaded = load_manifest(run)
    assert (loaded.analysis.stable_for_s, loaded.analysis.window_s) == (2.0, 10.0)
    assert loaded.slo.require_recovery is True and loaded.slo.ttr_s is None


def test_results_imports_neither_observe_nor_targets() -> None:
    """The run files sit below the observers and the targets (no import cycle)."""
    code = (
        "import sys, harness.results, harness.results.summary, harness.results.manifest, "
        "harness.results.probes; "
        "print(sorted(m for m in sys.modules if m.startswith(('harness.observe', "
        "'harness.targets', 'harness.analysis'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.docker
def test_a_real_run_writes_files_its_readers_fully_know(tmp_path: Path, demo_image: str) -> None:
    """The runner's manifest and the analysis' summary of a short real run: versioned, every
    field described by the models, valid against the published schemas."""
    import yaml

    data = yaml.safe_load((REPO / "scenarios" / "quickstart.yaml").read_text())
    data["load"]["duration"] = "12s"
    data["faults"][0]["at"] = "6s"
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(scenario), "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert done.returncode in (0, 1), done.stderr[-3000:]

    for name, loader in (("manifest.json", load_manifest), ("summary.json", load_summary)):
        raw = json.loads((run_dir / name).read_text())
        assert raw["schema_version"] == 1
        assert loader(run_dir).unknown_fields() == [], name
        jsonschema.Draft202012Validator(json.loads(schema_json(name))).validate(raw)
    manifest = load_manifest(run_dir)
    assert manifest.status == "completed" and manifest.load.started_at_ns is not None
    assert "abort" not in json.loads((run_dir / "manifest.json").read_text())  # only when aborted


def test_the_oldest_fault_and_latency_fields_are_upgraded() -> None:
    """Before `impact` a fault without failures said so in its reason; before `successful` a
    phase's percentiles were over every request."""
    summary = json.loads((V0_RUN / "summary.json").read_text())
    fault = summary["faults"][0]
    del fault["impact"]
    fault["reason"] = "no user-visible failures"
    del summary["phases"]["after"]["latency_ms"]["successful"]
    second = {**summary["faults"][0], "id": "f2", "reason": None}

    upgraded = as_summary({**summary, "faults": [fault, second]})
    assert [f.impact for f in upgraded.faults] == ["none", "visible"]
    latency = upgraded.phases["after"].latency_ms
    assert latency is not None
    assert latency.successful == summary["phases"]["after"]["requests"]
