"""Shared plumbing of the faults that act on whole instances through the engine's API."""

from __future__ import annotations

from collections.abc import Sequence

from faults.base import FaultContext, RevertRecord
from harness.targets.base import Instance


def engine_record(
    fault_id: str, kind: str, instances: Sequence[Instance], **data: object
) -> RevertRecord:
    return RevertRecord(
        fault_id=fault_id,
        kind=kind,
        targets=tuple(i.name for i in instances),
        mechanism="engine API",
        data={"container_ids": {i.name: i.container_id for i in instances}, **data},
    )


def recorded_instances(ctx: FaultContext, record: RevertRecord) -> list[Instance]:
    """The record's instances that still exist as the same containers."""
    ids = dict(record.data.get("container_ids", {}))
    return [
        i
        for i in ctx.target.instances()
        if i.name in record.targets and ids.get(i.name) in (None, i.container_id)
    ]
