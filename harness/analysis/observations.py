"""Requests and probes as sorted arrays, and the share of them each fault is measured on.

A `Stream` is one kind of observation (requests, or probes) placed by completion, sorted, with
cumulative failures so that any window's counts are two binary searches. `RunObservations`
holds the run's requests and probes with their replica as integer codes, so selecting a
fault's share is one vectorised mask.

Attribution (the `view` of a fault): `instance` when the load spread itself over the replicas
(each request's replica is known): the fault is measured on the requests sent to its targets
and their probes; `service` when the requests went through a shared address: on every such
request and on the probes of its targets. Two faults share observations when both are on the
service stream or their targets intersect.

Who served a request through the service: when the workload names its replica in a response
header (`load.attribution_header`), `served_by` is mapped to the instance by
`instance_hostnames` (from the engine's events); a failure without a response, and a value no
instance claims, stay unattributed. The long form: docs/METRICS.md, Observations.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
ViewKind = Literal["instance", "service"]


@dataclass(frozen=True, eq=False)
class Stream:
    """Completion instants (sorted) and outcomes of one kind of observation."""

    end_ns: IntArray
    ok: BoolArray
    cum_failed: IntArray  # cum_failed[i] = failures among the first i observations
    start_ns: IntArray  # when each observation was sent (its completion when unknown)
    latency_ms: FloatArray  # each observation's latency (NaN when unknown)

    @classmethod
    def of(
        cls,
        end_ns: npt.ArrayLike,
        ok: npt.ArrayLike,
        start_ns: npt.ArrayLike | None = None,
        latency_ms: npt.ArrayLike | None = None,
    ) -> Stream:
        ends = np.asarray(end_ns, dtype=np.int64)
        oks = np.asarray(ok, dtype=np.bool_)
        starts = ends if start_ns is None else np.asarray(start_ns, dtype=np.int64)
        if latency_ms is None:
            latency = np.full(ends.shape, np.nan, dtype=np.float64)
        else:
            latency = np.asarray(latency_ms, dtype=np.float64)
        if ends.size > 1 and np.any(ends[1:] < ends[:-1]):
            order = np.argsort(ends, kind="stable")
            ends, oks, starts, latency = ends[order], oks[order], starts[order], latency[order]
        cum = np.concatenate(([0], np.cumsum(~oks, dtype=np.int64)))
        return cls(ends, oks, cum, np.minimum(starts, ends), latency)

    @classmethod
    def empty(cls) -> Stream:
        return cls.of(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.bool_))

    def __len__(self) -> int:
        return int(self.end_ns.size)

    @property
    def last_ns(self) -> int | None:
        return None if self.end_ns.size == 0 else int(self.end_ns[-1])

    def index(self, time_ns: int, *, after: bool) -> int:
        """Position of the first observation completed after (`after`) or at/after time_ns."""
        return int(np.searchsorted(self.end_ns, time_ns, side="right" if after else "left"))

    def closed(self, lo_ns: int, hi_ns: int) -> tuple[int, int]:
        """(observations, failures) completed in [lo_ns, hi_ns]."""
        lo, hi = self.index(lo_ns, after=False), self.index(hi_ns, after=True)
        hi = max(lo, hi)
        return hi - lo, int(self.cum_failed[hi] - self.cum_failed[lo])

    def half_open(self, lo_ns: int, hi_ns: int) -> tuple[int, int]:
        """(observations, failures) completed in [lo_ns, hi_ns)."""
        lo, hi = self.index(lo_ns, after=False), self.index(hi_ns, after=False)
        hi = max(lo, hi)
        return hi - lo, int(self.cum_failed[hi] - self.cum_failed[lo])

    @cached_property
    def _by_sending(self) -> tuple[IntArray, IntArray]:
        """Sending instants sorted, and cumulative failures in that order."""
        order = np.argsort(self.start_ns, kind="stable")
        failed = ~self.ok[order]
        cum: IntArray = np.concatenate(([0], np.cumsum(failed, dtype=np.int64)))
        sent: IntArray = self.start_ns[order]
        return sent, cum

    def windows_sent_from(self, starts_ns: IntArray, length_ns: int) -> tuple[IntArray, IntArray]:
        """Per candidate s: (observations, failures) SENT in [s, s + length], whenever they
        completed: the evidence from after s. One sent before s is left out (a probe hanging
        through the outage is evidence of the outage), and one sent in it that fails later
        (a 2 s timeout) is counted."""
        sent, cum = self._by_sending
        lo = np.searchsorted(sent, starts_ns, side="left")
        hi = np.searchsorted(sent, starts_ns + length_ns, side="right")
        counts: IntArray = (hi - lo).astype(np.int64)
        failed: IntArray = (cum[hi] - cum[lo]).astype(np.int64)
        return counts, failed

    def first_failure(self, lo_ns: int, hi_ns: int) -> int | None:
        """Completion of the first failure completed in [lo_ns, hi_ns], or None."""
        lo, hi = self.index(lo_ns, after=False), self.index(hi_ns, after=True)
        failed = np.flatnonzero(~self.ok[lo:hi])
        return None if failed.size == 0 else int(self.end_ns[lo + failed[0]])

    def last_failure(self) -> int | None:
        failed = np.flatnonzero(~self.ok)
        return None if failed.size == 0 else int(self.end_ns[failed[-1]])

    def successes_from(self, time_ns: int) -> IntArray:
        """Completions of the successes completed at or after time_ns, in order."""
        start = self.index(time_ns, after=False)
        ends: IntArray = self.end_ns[start:][self.ok[start:]]
        return ends

    def successes_between(self, lo: int, hi: int) -> IntArray:
        """Completions of the successes among observations lo..hi-1 (positions), in order."""
        ends: IntArray = self.end_ns[lo:hi][self.ok[lo:hi]]
        return ends


@dataclass(frozen=True, eq=False)
class Coded:
    """A stream with the replica of each observation as a code into `names`.

    Selections are remembered: a run's faults hit the same few replicas again and again, and
    each selection is a pass over every observation."""

    stream: Stream
    codes: npt.NDArray[np.int8] | npt.NDArray[np.int16] | npt.NDArray[np.int64]
    names: tuple[str, ...]
    _selected: dict[tuple[frozenset[str], bool], Stream] = field(default_factory=dict)

    @classmethod
    def of(cls, frame: pd.DataFrame, column: str) -> Coded:
        """From a request or probe table already sorted by `end_ns`."""
        ends = frame["end_ns"].to_numpy(dtype=np.int64)
        ok = frame["ok"].to_numpy(dtype=np.bool_)
        sent = frame["start_ns"].to_numpy(dtype=np.int64) if "start_ns" in frame else ends
        latency = _latencies(frame)
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=True)
        names = tuple("" if pd.isna(u) else str(u) for u in uniques)
        codes = np.asarray(codes, dtype=_code_type(len(names)))
        if ends.size > 1 and np.any(ends[1:] < ends[:-1]):
            order = np.argsort(ends, kind="stable")
            ends, ok, codes, sent = ends[order], ok[order], codes[order], sent[order]
            latency = latency[order]
        return cls(Stream.of(ends, ok, sent, latency), codes, names)

    def present(self) -> set[str]:
        return set(self.names)

    def select(self, names: Iterable[str], *, keep: bool = True) -> Stream:
        """The observations of the replicas in `names` (or, keep=False, of all the others)."""
        key = (frozenset(names), keep)
        found = self._selected.get(key)
        if found is None:
            found = self._select(key[0], keep)
            self._selected[key] = found
        return found

    def _select(self, wanted: frozenset[str], keep: bool) -> Stream:
        chosen = [i for i, n in enumerate(self.names) if n in wanted]
        if len(chosen) == 1:
            mask = self.codes == chosen[0]
        else:
            mask = np.isin(self.codes, np.asarray(chosen, dtype=self.codes.dtype))
        if not keep:
            mask = ~mask
        if mask.all():
            return self.stream
        stream = self.stream
        return Stream.of(
            stream.end_ns[mask], stream.ok[mask], stream.start_ns[mask], stream.latency_ms[mask]
        )


def _latencies(frame: pd.DataFrame) -> FloatArray:
    if "latency_ms" not in frame:
        return np.full(len(frame), np.nan, dtype=np.float64)
    latency: FloatArray = frame["latency_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
    return latency


def _code_type(count: int) -> type[np.int8] | type[np.int16] | type[np.int64]:
    """The smallest integer type for codes in [-1, count): 1 byte per observation when the
    replicas are few (they are), not 8."""
    if count < 127:
        return np.int8
    return np.int16 if count < 32_000 else np.int64


@dataclass(frozen=True, eq=False)
class View:
    """The observations one fault is measured on."""

    kind: ViewKind
    targets: tuple[str, ...]
    requests: Stream
    probes: Stream
    description: str

    def users(self) -> View:
        """What users saw: a service view's requests alone. Its targets' probes reach them
        directly, past the orchestrator's routing, so they say when the instance is back,
        not when users are (routing around a failure is part of the recovery)."""
        if self.kind != "service":
            return self
        return View(self.kind, self.targets, self.requests, Stream.empty(), self.description)

    def targets_only(self) -> View:
        """A service view's probes of its targets alone: when the instance itself is back."""
        return View(self.kind, self.targets, Stream.empty(), self.probes, self.description)

    def shares_with(self, other: View) -> bool:
        """Whether a failure seen by one could be the other's (see the module docstring)."""
        if self.kind == "service" and other.kind == "service":
            return True
        return bool(set(self.targets) & set(other.targets))


SHORT_CONTAINER_ID = 12  # Docker's default hostname: the container id's first 12 characters


def instance_hostnames(events: pd.DataFrame, instances: Collection[str]) -> dict[str, str]:
    """Hostname (a served_by value) -> instance, from the instances' names and the engine's
    events (pod names, container ids)."""
    names = {name: name for name in instances}
    engine = events[(events["source"] == "engine") & events["instance"].notna()]
    for instance, container, attributes in zip(
        engine["instance"].tolist(),
        engine["container_id"].tolist(),
        engine["attributes"].tolist(),
        strict=True,
    ):
        names.setdefault(str(instance), str(instance))
        pod = attributes.get("pod") if isinstance(attributes, dict) else None
        if pod:
            names[str(pod)] = str(instance)
        if container:
            names[str(container)[:SHORT_CONTAINER_ID]] = str(instance)
    return names


def served_column(requests: pd.DataFrame, hostnames: dict[str, str]) -> pd.Series:
    """Each request's serving instance (null when unknown), from its served_by value."""
    if "served_by" not in requests:
        return pd.Series(pd.NA, index=requests.index, dtype="object")
    values = requests["served_by"].astype("object")
    return values.map(lambda v: hostnames.get(str(v)) if isinstance(v, str) else None)


@dataclass(frozen=True, eq=False)
class RunObservations:
    """Every request and probe of a run, with the replicas whose route is known, and (when the
    workload names its replica in a header) the requests whose server is known."""

    requests: Coded
    probes: Coded
    routed: frozenset[str]  # endpoint names that are instances of the run
    served: Coded | None = None  # requests by the instance that served them (None: unknown)

    @classmethod
    def of(
        cls,
        requests: pd.DataFrame,
        probes: pd.DataFrame,
        instances: Collection[str],
        hostnames: dict[str, str] | None = None,
    ) -> RunObservations:
        coded_requests = Coded.of(requests, "endpoint")
        coded_probes = Coded.of(probes, "instance")
        known = set(instances) | coded_probes.present()
        routed = frozenset(coded_requests.present() & known)
        served = None
        if hostnames is not None and "served_by" in requests:
            server = served_column(requests, hostnames)
            attributed = requests.assign(served_instance=server)[server.notna().to_numpy()]
            served = Coded.of(attributed, "served_instance")
        return cls(coded_requests, coded_probes, routed, served)

    def served_by(self, names: Iterable[str]) -> Stream:
        """The requests the instances in `names` served (by the workload's header); empty
        when no request names its server."""
        return Stream.empty() if self.served is None else self.served.select(names)

    @property
    def all_requests(self) -> Stream:
        return self.requests.stream

    @property
    def all_probes(self) -> Stream:
        return self.probes.stream

    @property
    def data_end_ns(self) -> int | None:
        """The last completion of any request or probe."""
        ends = [x for x in (self.all_requests.last_ns, self.all_probes.last_ns) if x is not None]
        return max(ends) if ends else None

    def service_requests(self) -> Stream:
        """Requests whose replica is unknown (they went through a shared address)."""
        if not self.routed:
            return self.all_requests
        return self.requests.select(self.routed, keep=False)

    def view(self, targets: tuple[str, ...]) -> View:
        """The observations a fault on `targets` is measured on (module docstring)."""
        probes = self.probes.select(targets)
        names = ", ".join(targets) or "no instance"
        routed = [t for t in targets if t in self.routed]
        service = self.service_requests() if not routed else Stream.empty()
        if routed or len(service) == 0:
            requests = self.requests.select(targets)
            text = f"requests sent to {names} and probes of {names}"
            return View("instance", targets, requests, probes, text)
        text = f"requests through the service address (replica unknown) and probes of {names}"
        return View("service", targets, service, probes, text)
