"""The bundled locustfile: GET the scenario's paths, spread round-robin over the replicas.

Loaded by Locust (``python -m locust -f default_locustfile.py,recorder.py``), never imported by
the harness. The Docker engine has no load balancer, so the users balance on the client side:
every request goes to the next endpoint in a round-robin, each user starting at its own offset.
When a replica dies, its share of the requests fails; that is what users behind client-side
balancing see.

Settings come from the environment (the harness sets them; see harness/load.py):

    CHAOS_HARNESS_ENDPOINTS  JSON [{"name": "web-1", "url": "http://172.30.5.2:8080"}, ...];
                             unset or empty: the --host URL is the only endpoint
    CHAOS_HARNESS_PATHS      JSON [{"path": "/", "name": "/", "weight": 1}, ...];
                             default [{"path": "/", "weight": 1}]
    CHAOS_HARNESS_WAIT       seconds between a user's requests, constant; default 0 (closed loop)
    CHAOS_HARNESS_TIMEOUT_S  connection and network timeout in seconds; default 2.0
    CHAOS_HARNESS_SEED       seed of the per-user weighted path choice; default 0

Every request carries ``context={"endpoint": <name>}`` so that recorder.py logs which replica
served it.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from dataclasses import dataclass
from urllib.parse import urlsplit

from locust import FastHttpUser, constant, task


@dataclass(frozen=True)
class Target:
    """One (endpoint, path) pair, prepared once so the task does no string work."""

    url: str
    name: str
    context: dict[str, str]


def _endpoints(host: str | None) -> list[tuple[str, str]]:
    raw = os.environ.get("CHAOS_HARNESS_ENDPOINTS", "")
    items = json.loads(raw) if raw.strip() else []
    pairs = [(str(item["name"]), str(item["url"]).rstrip("/")) for item in items]
    if not pairs and host:
        pairs = [(urlsplit(host).netloc or host, host.rstrip("/"))]
    return pairs


def _paths() -> list[tuple[str, str, float]]:
    raw = os.environ.get("CHAOS_HARNESS_PATHS", "")
    items = json.loads(raw) if raw.strip() else [{"path": "/", "weight": 1}]
    paths = []
    for item in items:
        path = str(item["path"])
        if not path.startswith("/"):
            path = "/" + path
        paths.append((path, str(item.get("name") or path), float(item.get("weight", 1))))
    return paths


def _targets(host: str | None) -> list[list[Target]]:
    """targets[e][p]: the request for endpoint e and path p."""
    return [
        [Target(url + path, name, {"endpoint": ep}) for path, name, _ in _paths()]
        for ep, url in _endpoints(host)
    ]


_FIRST_URL = next(iter(_endpoints(None)), ("", None))[1]


class ChaosUser(FastHttpUser):
    """GETs a weighted-random path on the next endpoint in round-robin."""

    host = _FIRST_URL
    wait_time = constant(float(os.environ.get("CHAOS_HARNESS_WAIT", "0") or 0))
    connection_timeout = float(os.environ.get("CHAOS_HARNESS_TIMEOUT_S", "2.0") or 2.0)
    network_timeout = connection_timeout
    _sequence = itertools.count()  # each user's round-robin offset

    def on_start(self) -> None:
        targets = _targets(self.host)
        if not targets:
            raise RuntimeError("no endpoints: set CHAOS_HARNESS_ENDPOINTS or --host")
        seq = next(self._sequence)
        worker = getattr(self.environment.runner, "worker_index", 0) or 0
        self._targets = targets
        self._count = len(targets)
        self._next = seq + worker * 7919
        weights = [weight for _, _, weight in _paths()]
        self._weights = weights if len(weights) > 1 else None
        seed = int(os.environ.get("CHAOS_HARNESS_SEED", "0") or 0)
        self._rng = random.Random(seed * 1_000_003 + worker * 65_537 + seq)

    @task
    def get(self) -> None:
        row = self._targets[self._next % self._count]
        self._next += 1
        target = row[0] if self._weights is None else self._rng.choices(row, self._weights)[0]
        self.client.get(target.url, name=target.name, context=target.context)
