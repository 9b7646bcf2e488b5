"""What the typed run files share: the base model, the schema version check and the reader.

A file without `schema_version` was written before the files were versioned: it reads as
version 0, which each file's model upgrades to the current one. A version newer than the
reader's is refused with the version named, never half-read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import AnalysisError

Number = int | float  # kept as written: a count stays an int, a measure a float


def absent(value: object) -> bool:
    """A field written only when it has a value (`Field(exclude_if=absent)`): files written
    before the field existed read back byte for byte."""
    return value is None


class Record(BaseModel):
    """A block of a run file. Fields a newer or older writer added are kept, not refused:
    a reader of an older version still reads what it knows."""

    # the published schema is the written file's: every field with a default is always written
    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)

    def as_json(self) -> dict[str, Any]:
        """As the file holds it: plain JSON values, in the file's order."""
        return self.model_dump(mode="json")

    # record["key"]: scripts and notebooks written when the summary was decoded JSON keep
    # working (the value as the file holds it); new code reads attributes
    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields and key not in (self.model_extra or {}):
            raise KeyError(key)
        return self.model_dump(mode="json", include={key})[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def unknown_fields(self) -> list[str]:
        """Dotted names of every field this model does not declare (extras), at any depth."""
        found = [str(name) for name in self.model_extra or {}]
        for name in type(self).model_fields:
            found += [f"{name}.{inner}" for inner in _nested_unknown(getattr(self, name))]
        return found


def _nested_unknown(value: object) -> list[str]:
    if isinstance(value, Record):
        return value.unknown_fields()
    if isinstance(value, list):
        return [f"[{i}].{inner}" for i, item in enumerate(value) for inner in _nested_unknown(item)]
    if isinstance(value, dict):
        return [f"{k}.{inner}" for k, item in value.items() for inner in _nested_unknown(item)]
    return []


Model = TypeVar("Model", bound=BaseModel)


Upgrades = Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]]


def read_versioned(path: Path, model: type[Model], current: int, upgrades: Upgrades) -> Model:
    """The file at `path` as `model`: its version read (absent: 0), upgraded step by step to
    `current`, then validated. AnalysisError names the file for every failure."""
    return parse_versioned(_read_object(path), path.name, model, current, upgrades)


def parse_versioned(
    raw: Mapping[str, Any], name: str, model: type[Model], current: int, upgrades: Upgrades
) -> Model:
    """`raw` (the decoded file `name`) as `model`, as `read_versioned` reads a file."""
    data = dict(raw)
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise AnalysisError(f"{name}: schema_version must be a whole number: {version!r}")
    if version > current:
        raise AnalysisError(
            f"{name}: schema_version {version} is newer than this harness reads "
            f"({current}): upgrade chaos-harness to read it"
        )
    for step in range(version, current):
        data = upgrades[step](data)
    data["schema_version"] = current
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AnalysisError(f"{name}: {_first_error(exc)}") from exc


def _read_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise AnalysisError(f"{path.name} not found in run directory {path.parent}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"{path.name}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise AnalysisError(f"{path.name}: expected a JSON object")
    return data


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top)"
    return f"{where}: {error['msg']}, got {error.get('input')!r}"


def dump_json(record: BaseModel) -> str:
    """The record as the file holds it: indented, strict JSON (NaN is refused), one newline."""
    return json.dumps(record.model_dump(mode="json"), indent=2, allow_nan=False) + "\n"
