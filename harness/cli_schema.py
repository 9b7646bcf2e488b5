"""`harness schema [--summary | --manifest] [--out FILE]`: the JSON Schema of a scenario file
(the default, for an editor's YAML support) or of a run file.

summary.json and manifest.json are written through pydantic models (harness.results.summary,
harness.results.manifest); their schema, with the `schema_version` the file carries, is what a
script or another tool can validate a run directory against. Printed on stdout unless --out.

`schema_json` is the plain function; `schema` is its Typer wrapper, registered in
harness/cli.py with `app.command("schema")(schema)`.

Exit codes: 0 the schema was written; 2 both run files named.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Final

import typer

from harness.results.manifest import MANIFEST_VERSION, Manifest
from harness.results.records import Record
from harness.results.summary import SUMMARY_VERSION, Summary

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
FILES: Final[dict[str, tuple[type[Record], int]]] = {
    "summary.json": (Summary, SUMMARY_VERSION),
    "manifest.json": (Manifest, MANIFEST_VERSION),
}


def schema_json(file: str) -> str:
    """The JSON Schema of `file` (summary.json or manifest.json), indented, one newline."""
    model, version = FILES[file]
    schema = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"chaos-harness/{file}/v{version}",
        **model.model_json_schema(mode="serialization"),  # the file as written
    }
    schema["title"] = f"chaos-harness {file}, schema_version {version}"
    return json.dumps(schema, indent=2) + "\n"


def scenario_schema_json() -> str:
    """The JSON Schema of scenario files, built from the registered targets and faults."""
    from harness.scenario import scenario_model  # the registries load entry points

    return json.dumps(scenario_model().model_json_schema(), indent=2) + "\n"


def schema(
    summary: Annotated[
        bool, typer.Option("--summary", help="The schema of a run's summary.json.")
    ] = False,
    manifest: Annotated[
        bool, typer.Option("--manifest", help="The schema of a run's manifest.json.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write the schema to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of scenario files or of run files.

    Point your editor's YAML support at the scenario schema to get completion and checks while
    you write a scenario; validate a run directory from another tool against the run files'
    schemas (each names the schema_version its files carry).
    """
    if summary and manifest:
        print("error: name one run file: --summary or --manifest", file=sys.stderr)
        raise typer.Exit(2)
    if summary or manifest:
        text = schema_json("summary.json" if summary else "manifest.json")
    else:
        text = scenario_schema_json()
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(out)
