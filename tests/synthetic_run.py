"""Write run directories from hand-made tables, for analysis and report tests.

Times are given in seconds since `BASE_NS` (the load starts at 0 unless told otherwise).
`realistic_run` fabricates a plausible 60 s run (a container kill, then a partition) for the
report and figure tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

BASE_NS = 1_700_000_000_000_000_000


def ns(seconds: float) -> int:
    """Wall-clock nanoseconds of an instant given in seconds since BASE_NS."""
    return BASE_NS + round(seconds * 1e9)


@dataclass(frozen=True)
class Req:
    """One Locust request: started at `start_s`, completed `latency_ms` later."""

    start_s: float
    latency_ms: float
    ok: bool = True
    endpoint: str = "web-1"
    name: str = "/"
    worker: int = 0


@dataclass(frozen=True)
class Probe:
    """One HTTP probe."""

    start_s: float
    latency_ms: float
    ok: bool = True
    instance: str = "web-1"


@dataclass(frozen=True)
class Event:
    """One line of events.jsonl."""

    time_s: float
    source: str
    action: str
    instance: str | None = None
    attributes: Mapping[str, object] = field(default_factory=dict)


def series(
    start_s: float, end_s: float, step_s: float, latency_ms: float = 5.0, ok: bool = True
) -> list[Req]:
    """Requests started every `step_s` in [start_s, end_s)."""
    count = round((end_s - start_s) / step_s)
    return [Req(start_s + i * step_s, latency_ms, ok) for i in range(count)]


def inject(
    time_s: float,
    fault_id: str,
    kind: str = "container_kill",
    targets: tuple[str, ...] = ("web-1",),
    restart_policy_applies: bool | None = True,
    mode: str | None = "host_sigkill",
    mechanism: str | None = "kill -9 from the host",
    heals_during_fault: bool = False,
    **extra: object,
) -> Event:
    """A harness fault_inject event (`extra`: more attributes, e.g. has_duration)."""
    attributes = {
        **extra,
        "fault_id": fault_id,
        "kind": kind,
        "targets": list(targets),
        "mode": mode,
        "mechanism": mechanism,
        "restart_policy_applies": restart_policy_applies,
        "heals_during_fault": heals_during_fault,
    }
    return Event(time_s, "harness", "fault_inject", None, attributes)


def revert(time_s: float, fault_id: str, kind: str = "network_partition") -> Event:
    """A harness fault_revert event."""
    return Event(time_s, "harness", "fault_revert", None, {"fault_id": fault_id, "kind": kind})


def engine(time_s: float, action: str, instance: str, **attributes: object) -> Event:
    """An engine event for one instance."""
    return Event(time_s, "engine", action, instance, attributes)


def write_run(
    run_dir: Path,
    requests: Iterable[Req] = (),
    probes: Iterable[Probe] = (),
    events: Iterable[Event] = (),
    *,
    load_s: tuple[float, float] = (0.0, 60.0),
    slo: Mapping[str, object] | None = None,
    stable_for_s: float = 2.0,
    status: str = "completed",
    endpoints: tuple[str, ...] = ("web-1",),
    analysis: Mapping[str, object] | None = None,
    load: Mapping[str, object] | None = None,
) -> Path:
    """Write manifest.json, requests.parquet, probes.parquet and events.jsonl; return the dir.

    `analysis` and `load` are merged into the manifest's blocks of the same name (the load
    has 20 users spawned at 20/s: a 1 s warm-up, unless told otherwise)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(run_dir.name, load_s, slo, stable_for_s, status, endpoints)
    manifest["analysis"] = {**manifest["analysis"], **(analysis or {})}  # type: ignore[dict-item]
    manifest["load"] = {**manifest["load"], **(load or {})}  # type: ignore[dict-item]
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    _requests_frame(list(requests)).to_parquet(run_dir / "requests.parquet", index=False)
    _probes_frame(list(probes)).to_parquet(run_dir / "probes.parquet", index=False)
    lines = [json.dumps(_event_dict(e)) for e in sorted(events, key=lambda e: e.time_s)]
    (run_dir / "events.jsonl").write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    return run_dir


def _manifest(
    run_id: str,
    load_s: tuple[float, float],
    slo: Mapping[str, object] | None,
    stable_for_s: float,
    status: str,
    endpoints: tuple[str, ...],
) -> dict[str, object]:
    return {
        "run_id": run_id,
        "scenario": "synthetic",
        "target": "docker",
        "seed": 7,
        "started_at_ns": ns(load_s[0] - 5),
        "ended_at_ns": ns(load_s[1] + 3),
        "status": status,
        "error": "interrupted by SIGINT" if status == "interrupted" else None,
        "load": {
            "users": 20,
            "spawn_rate": 20,
            "duration_s": load_s[1] - load_s[0],
            "workers": 0,
            "endpoints": list(endpoints),
            "load_balancing": (
                "client-side round robin over the replica endpoints: each user picks the "
                "next instance, so a dead replica's share of requests fails"
            ),
            "started_at_ns": ns(load_s[0]),
            "ended_at_ns": ns(load_s[1]),
        },
        "analysis": {"stable_for_s": stable_for_s},
        "slo": dict(slo) if slo is not None else None,
        "versions": {"harness": "0.1.0", "docker": "24.0.7"},
        "host": "testhost",
    }


def _requests_frame(requests: list[Req]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "start_ns": pd.array([ns(r.start_s) for r in requests], dtype="int64"),
            "latency_ms": pd.array([r.latency_ms for r in requests], dtype="float64"),
            "ok": pd.array([r.ok for r in requests], dtype="bool"),
            "name": pd.array([r.name for r in requests], dtype="str"),
            "error": pd.array([None if r.ok else "ConnectionError" for r in requests], "str"),
            "endpoint": pd.array([r.endpoint for r in requests], dtype="str"),
            "worker": pd.array([r.worker for r in requests], dtype="int64"),
        }
    )


def _probes_frame(probes: list[Probe]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "start_ns": pd.array([ns(p.start_s) for p in probes], dtype="int64"),
            "latency_ms": pd.array([p.latency_ms for p in probes], dtype="float64"),
            "ok": pd.array([p.ok for p in probes], dtype="bool"),
            "instance": pd.array([p.instance for p in probes], dtype="str"),
            "error": pd.array([None if p.ok else "timeout" for p in probes], dtype="str"),
        }
    )


def _event_dict(event: Event) -> dict[str, object]:
    return {
        "time_ns": ns(event.time_s),
        "source": event.source,
        "action": event.action,
        "instance": event.instance,
        "container_id": None if event.instance is None else f"c0ffee-{event.instance}",
        "attributes": dict(event.attributes),
    }


# -- a plausible run --------------------------------------------------------------------------

REPLICAS = ("web-1", "web-2", "web-3")
KILL_AT, RESTART_AT, HEALTHY_AT = 20.0, 20.8, 21.9
PARTITION_AT, PARTITION_END = 40.0, 45.0
TIMEOUT_MS = 2000.0


def _outcome(endpoint: str, start_s: float, rng: np.random.Generator) -> tuple[float, bool]:
    """Latency and outcome of a request to `endpoint` started at `start_s`."""
    if endpoint == "web-2" and KILL_AT <= start_s < RESTART_AT:
        return float(rng.uniform(0.3, 2.0)), False  # connection refused
    if endpoint == "web-2" and RESTART_AT <= start_s < RESTART_AT + 0.3:
        return 1000.0 + float(rng.uniform(2, 10)), True  # SYN retried after 1 s
    if endpoint == "web-3" and PARTITION_AT <= start_s < PARTITION_END:
        return TIMEOUT_MS, False
    base = 4.0 if start_s < KILL_AT else 4.6  # two of three replicas carry the load briefly
    return float(rng.lognormal(np.log(base), 0.35)), True


def _random_requests(rng: np.random.Generator, duration_s: float, rps: float) -> list[Req]:
    starts = np.sort(rng.uniform(0.0, duration_s, int(duration_s * rps)))
    result = []
    for i, start in enumerate(starts.tolist()):
        endpoint = REPLICAS[i % len(REPLICAS)]
        latency, ok = _outcome(endpoint, start, rng)
        if start * 1000 + latency <= duration_s * 1000 + TIMEOUT_MS:
            result.append(Req(start, latency, ok, endpoint, "/work" if i % 4 else "/", i % 2))
    return result


def _random_probes(rng: np.random.Generator, duration_s: float) -> list[Probe]:
    probes = []
    for step in range(int(duration_s * 10)):
        for instance in REPLICAS:
            latency, ok = _outcome(instance, step / 10, rng)
            probes.append(Probe(step / 10, min(latency, 500.0), ok, instance))
    return probes


def _realistic_events() -> list[Event]:
    deploy = [engine(-4.0 + 0.1 * i, "start", name) for i, name in enumerate(REPLICAS)]
    healthy = [engine(-2.0, "health_status", name, health="healthy") for name in REPLICAS]
    return [
        *deploy,
        *healthy,
        Event(0.0, "harness", "load_start"),
        inject(KILL_AT, "f1", targets=("web-2",)),
        engine(KILL_AT + 0.004, "die", "web-2", exitCode="137"),
        engine(RESTART_AT, "start", "web-2"),
        engine(HEALTHY_AT, "health_status", "web-2", health="healthy"),
        inject(
            PARTITION_AT,
            "f2",
            kind="network_partition",
            targets=("web-3",),
            restart_policy_applies=None,
            mode="drop",
            mechanism="iptables DROP in the container's netns",
        ),
        revert(PARTITION_END, "f2"),
        Event(60.0, "harness", "load_stop"),
    ]


def realistic_run(run_dir: Path, seed: int = 1, rps: float = 150.0) -> Path:
    """A 60 s run: web-2 killed at 20 s (back at 20.8 s), web-3 partitioned 40-45 s."""
    rng = np.random.default_rng(seed)
    slo = {
        "ttr_s": 8,
        "availability": 0.9,
        "error_rate": {"fault": 0.2, "after": 0.01},
        "p95_ms": {"baseline": 50},
    }
    return write_run(
        run_dir,
        _random_requests(rng, 60.0, rps),
        _random_probes(rng, 60.0),
        _realistic_events(),
        slo=slo,
        endpoints=REPLICAS,
    )
