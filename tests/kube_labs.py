"""The Kubernetes lab for a test module: the one that is up, or one made (and taken down) here."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from harness.labs.kubernetes import lab as kube_lab


def module_lab(nodes: int, exact: bool = False) -> Iterator[kube_lab.KubeLabInfo]:
    """For a module-scoped fixture: the lab that is up (skip if `exact` and its node count is
    not `nodes`), else a lab of `nodes` brought up now and down after the module."""
    info = kube_lab.current()
    if info is not None:
        if exact and len(info.nodes) != nodes:
            pytest.skip(f"a lab of {len(info.nodes)} node(s) is up; these tests need {nodes}")
        yield info
        return
    made = kube_lab.KubeLab()
    info = made.up(nodes=nodes, progress=lambda line: print(line, file=sys.stderr))
    try:
        yield info
    finally:
        made.down()
