"""Which run and which harness process own a host object: the labels and comments they carry.

Containers, services, namespaces and iptables jumps are labelled with the run id and their
owner, "<pid>:<start ticks>" of the harness process; cleanup leaves the objects of a live owner
alone, so it never pulls the rug from under a run in progress.
"""

from __future__ import annotations

import os

from harness.hostsys import process_start_ticks

RUN_LABEL = "chaos-harness.run-id"
OWNER_LABEL = "chaos-harness.owner"


def owner_label_value() -> str:
    """This process as an owner: its PID and start time (a recycled PID will not match)."""
    return f"{os.getpid()}:{process_start_ticks(os.getpid())}"


def owner_alive(value: str | None) -> bool:
    """Whether the owner named by an OWNER_LABEL value is still the same live process."""
    pid, _, ticks = (value or "").partition(":")
    if not pid.isdigit() or not ticks.isdigit():
        return False
    return process_start_ticks(int(pid)) == int(ticks)
