"""Choose the instances a fault hits: by name, label, service, count or percent (seeded)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from harness.errors import FaultError
from harness.scenario import SelectorSpec
from harness.targets.base import RUN_LABEL, Instance


def select_instances(
    instances: Sequence[Instance], selector: SelectorSpec, run_id: str, rng: random.Random
) -> list[Instance]:
    """The chosen instances, sorted by name; never one without this run's label."""
    pool = sorted((i for i in instances if i.labels.get(RUN_LABEL) == run_id), key=lambda i: i.name)
    if selector.service is not None:
        pool = [i for i in pool if i.service == selector.service]
    if selector.labels:
        wanted = selector.labels.items()
        pool = [i for i in pool if all(i.labels.get(k) == v for k, v in wanted)]
    if selector.names is not None:
        missing = sorted(set(selector.names) - {i.name for i in pool})
        if missing:
            known = ", ".join(i.name for i in pool) or "none"
            raise FaultError(f"no instance named {', '.join(missing)} (instances: {known})")
        return [i for i in pool if i.name in selector.names]
    if not pool:
        raise FaultError("the selector matches no instance of this run")
    if selector.percent is not None:
        count = max(1, math.floor(len(pool) * selector.percent / 100))
    else:
        count = min(selector.count or 1, len(pool))
    return sorted(rng.sample(pool, count), key=lambda i: i.name)
