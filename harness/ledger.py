"""A campaign's ledger: what was planned and how each run ended (trials.json, matrix.json).

Trials are a matrix of one scenario on one target, so both files hold one model: the plan
(targets, repetitions), whether a signal stopped the campaign, and one entry per planned run.
The campaign rewrites it after every run (atomically), the analysis reads it back through the
run files' one versioned reader (harness.results.records).

The files keep the names and keys their readers know: a trials ledger lists its runs under
`trials` and names its scenario and target at the top; a matrix ledger lists them under `runs`.
Version 1 added `schema_version`; a ledger without it (version 0) is read as well: a trials
ledger's targets and repetitions are then its target and its trials, a pending trial's
scenario and target the ledger's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

from pydantic import AliasChoices, Field

from harness.errors import AnalysisError
from harness.results import write_json
from harness.results.records import Record, read_versioned

LEDGER_VERSION: Final = 1
TRIALS_LEDGER, MATRIX_LEDGER = "trials.json", "matrix.json"
PENDING: Final = "pending"

CampaignKind = Literal["trials", "matrix"]
FILES: Final[dict[str, str]] = {"trials": TRIALS_LEDGER, "matrix": MATRIX_LEDGER}
RUNS_KEY: Final[dict[str, str]] = {"trials": "trials", "matrix": "runs"}


class LedgerEntry(Record):
    """One planned run. outcome: pending, or the campaign's words (completed, aborted,
    failed, not_run); status: its summary's status once analysed."""

    index: int
    scenario: str | None = None
    scenario_file: str | None = None
    target: str | None = None
    repetition: int = 1
    seed: int | None = None
    outcome: str = "not_run"
    status: str | None = None
    run_dir: str | None = None  # relative to the campaign's directory when inside it
    error: str | None = None
    duration_s: float | None = None


class Ledger(Record):
    schema_version: int = LEDGER_VERSION
    kind: CampaignKind
    scenario: str | None = None  # trials: the one scenario and target
    scenario_file: str | None = None
    target: str | None = None
    targets: list[str]
    repeat: int
    planned: int
    interrupted: bool = False
    runs: list[LedgerEntry] = Field(validation_alias=AliasChoices("runs", "trials"))

    def to_json(self) -> dict[str, Any]:
        """The file's object: a trials ledger names its runs `trials`; a matrix's has no
        scenario fields at the top."""
        data = self.model_dump(mode="json")
        runs = data.pop("runs")
        if self.kind == "matrix":
            for name in ("scenario", "scenario_file", "target"):
                data.pop(name)
        return {**data, RUNS_KEY[self.kind]: runs}


def ledger_path(root: Path) -> Path | None:
    """The ledger of a campaign directory (a matrix's, else a trials'), or None."""
    for name in (MATRIX_LEDGER, TRIALS_LEDGER):
        if (Path(root) / name).is_file():
            return Path(root) / name
    return None


def write_ledger(root: Path, ledger: Ledger) -> None:
    """Atomically: a crash leaves the previous ledger or this one, never half of one."""
    write_json(Path(root) / FILES[ledger.kind], ledger.to_json())


def read_ledger(root: Path) -> Ledger:
    """The ledger of a campaign directory, of any version; AnalysisError when missing,
    unreadable, or newer than this harness."""
    path = ledger_path(root)
    if path is None:
        raise AnalysisError(f"{root}: no {MATRIX_LEDGER} nor {TRIALS_LEDGER}: not a campaign")
    kind = "matrix" if path.name == MATRIX_LEDGER else "trials"
    return read_versioned(path, Ledger, LEDGER_VERSION, {0: lambda raw: _from_v0(raw, kind)})


def _from_v0(raw: dict[str, Any], kind: str) -> dict[str, Any]:
    """Version 0 -> 1: the plan's fields a version 0 ledger of this kind left out."""
    runs = [dict(entry) for entry in raw.get(RUNS_KEY[kind]) or [] if isinstance(entry, dict)]
    data = {k: v for k, v in raw.items() if k != RUNS_KEY[kind]}
    data.setdefault("kind", kind)
    if kind == "trials":
        data.setdefault("targets", [raw["target"]] if raw.get("target") else [])
        data.setdefault("repeat", raw.get("planned") or len(runs))
        for entry in runs:
            entry.setdefault("repetition", entry.get("index"))
            for name in ("scenario", "scenario_file", "target"):
                entry.setdefault(name, raw.get(name))
    data.setdefault("planned", len(runs))
    data.setdefault("repeat", 1)
    return {**data, "runs": runs}
