"""The bundled locustfile: GET the scenario's paths, spread round-robin over the replicas.

Loaded by Locust (``python -m locust -f default_locustfile.py,recorder.py``), never imported by
the harness. The Docker engine has no load balancer, so the users balance on the client side:
every request goes to the next endpoint in a round-robin, each user starting at its own offset;
when a replica dies, its share of the requests fails, as users behind client-side balancing see.
Every request carries ``context={"endpoint": <name>}`` so that recorder.py logs the replica.

Settings come from the environment (set by harness/load.py; each described in docs/LOAD.md,
The default locustfile): CHAOS_HARNESS_ENDPOINTS, CHAOS_HARNESS_PATHS, CHAOS_HARNESS_WAIT,
CHAOS_HARNESS_TIMEOUT_S, CHAOS_HARNESS_SEED, CHAOS_HARNESS_RATE, CHAOS_HARNESS_USERS,
CHAOS_HARNESS_CONNECTIONS (keep_alive, a fresh connection after any error; or per_request),
CHAOS_HARNESS_SOURCE_PORTS (rotate, see source_ports.py; or kernel), CHAOS_HARNESS_PROCESSES.

Open loop: each user sends one request every USERS / RATE seconds, at a random phase drawn at
its start, so all users make RATE per second whatever the latency (the harness starts enough
users for its timeout). A turn missed because the previous request was still running is
skipped, not made up: that load never happened, and the achieved rate shows it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import chaos_settings  # these two beside this file: Locust puts its directory on sys.path
import gevent
import source_ports
from locust import FastHttpUser, events, task


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


@dataclass(frozen=True)
class Settings:
    """The settings read from the environment (again at test_start: a remote worker gets the
    master's there, chaos_settings.py)."""

    wait_s: float
    interval_s: float
    headers: dict[str, str] | None
    processes: int
    timeout_s: float

    @classmethod
    def read(cls) -> Settings:
        rate = float(os.environ.get("CHAOS_HARNESS_RATE", "0") or 0)
        users = max(1, int(os.environ.get("CHAOS_HARNESS_USERS", "1") or 1))
        per_request = os.environ.get("CHAOS_HARNESS_CONNECTIONS", "keep_alive") == "per_request"
        return cls(
            wait_s=float(os.environ.get("CHAOS_HARNESS_WAIT", "0") or 0),
            interval_s=users / rate if rate > 0 else 0.0,
            headers={"Connection": "close"} if per_request else None,
            processes=max(1, int(os.environ.get("CHAOS_HARNESS_PROCESSES", "1") or 1)),
            timeout_s=float(os.environ.get("CHAOS_HARNESS_TIMEOUT_S", "2.0") or 2.0),
        )


_FIRST_URL = next(iter(_endpoints(None)), ("", None))[1]
_S = Settings.read()


class ChaosUser(FastHttpUser):
    """GETs a weighted-random path on the next endpoint in round-robin."""

    host = _FIRST_URL
    connection_timeout = _S.timeout_s
    network_timeout = _S.timeout_s
    _sequence = itertools.count()  # each user's round-robin offset

    def on_start(self) -> None:
        targets = _targets(self.host)
        if not targets:
            raise RuntimeError("no endpoints: set CHAOS_HARNESS_ENDPOINTS or --host")
        seq = next(self._sequence)
        worker = getattr(self.environment.runner, "worker_index", 0) or 0
        source_ports.install(worker, _S.processes)
        self._targets = targets
        self._count = len(targets)
        self._next = seq + worker * 7919
        weights = [weight for _, _, weight in _paths()]
        self._weights = weights if len(weights) > 1 else None
        seed = int(os.environ.get("CHAOS_HARNESS_SEED", "0") or 0)
        self._rng = random.Random(seed * 1_000_003 + worker * 65_537 + seq)
        if _S.interval_s > 0:  # open loop: start at a random phase of this user's period
            gevent.sleep(self._rng.uniform(0.0, _S.interval_s))
        self._due = time.monotonic()

    def wait_time(self) -> float:
        """Closed loop: the constant wait. Open loop: the time until this user's next turn."""
        interval = _S.interval_s
        if interval <= 0:
            return _S.wait_s
        now = time.monotonic()
        due = self._due + interval
        if now > due:  # late: skip the turns that passed, send at once for the current one
            due += math.floor((now - due) / interval) * interval
        self._due = due
        return max(0.0, due - now)

    @task
    def get(self) -> None:
        row = self._targets[self._next % self._count]
        self._next += 1
        target = row[0] if self._weights is None else self._rng.choices(row, self._weights)[0]
        self.client.get(target.url, name=target.name, context=target.context, headers=_S.headers)


@events.test_start.add_listener
def _on_test_start(environment: object, **_kwargs: object) -> None:
    """A worker's settings as the master sent them (the same values on this host)."""
    global _S
    chaos_settings.apply(environment)
    _S = Settings.read()
    ChaosUser.connection_timeout = ChaosUser.network_timeout = _S.timeout_s
