"""List-then-watch loops over the official client, one thread per kind of object, feeding the
trackers of harness.targets.kubernetes.events; and the EventStream that merges them.

Not `kubernetes.watch.Watch` (client v37): after a 410 Gone it retries once with the same
expired resourceVersion, then raises, and it keeps no state to diff a relist against. So each
loop does what client-go's reflector does:
1. list (raw JSON, parsed with the model's lenient `from_dict`) and hand the whole list to the
   tracker's `resync`, which reports what changed since the last view, removals included;
2. watch from the list's resourceVersion (bookmarks, a server-side timeout, a client read
   timeout above it), each change to the tracker;
3. when the server ends the watch, watch again from the last resourceVersion; on 410 Gone,
   list again; when the API cannot be reached, wait a second and try again, until closed.
close() shuts the open response's socket down, which wakes the blocked thread at once.

A watch that keeps failing is never counted silently: a refusal (401, 403) at once, any other
failure once it has lasted `FAILING_AFTER_S`, puts `watch_failing` in the stream, and
`watch_resumed` (with the gap) when it works again. The long form: docs/TARGETS.md, Kubernetes
watches.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException, OpenApiException
from kubernetes.watch.watch import iter_resp_lines

from harness.targets.base import STREAM_CLOSED, EngineEvent, queued_events
from harness.targets.kubernetes.views import raw_resource_version

WATCH_TIMEOUT_S = 60  # the server ends each watch after this; it is then resumed
CONNECT_TIMEOUT_S = 5.0
READ_SLACK_S = 15.0  # the client gives up reading this long after the server should have ended
LIST_TIMEOUT_S = 30.0
RETRY_S = 1.0
HTTP_GONE = 410
REFUSED = frozenset({401, 403})
FAILING_AFTER_S = 10.0

V = TypeVar("V")
V_contra = TypeVar("V_contra", contravariant=True)


class Tracker(Protocol[V_contra]):
    def update(self, view: V_contra, received_ns: int) -> list[EngineEvent]: ...

    def deleted(self, view: V_contra, received_ns: int) -> list[EngineEvent]: ...

    def resync(self, views: Sequence[V_contra], received_ns: int) -> list[EngineEvent]: ...


@dataclass(frozen=True)
class Resource(Generic[V]):
    """One kind of object to follow: the client's list function (bound to its namespace and
    selectors) and how a raw JSON object becomes a view (None: not one of ours)."""

    name: str
    list_call: Callable[..., Any]
    parse: Callable[[Mapping[str, Any]], V | None]


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def raw_list(list_call: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """One list call's raw JSON (the client's function with `_preload_content=False`)."""
    response = list_call(
        _preload_content=False, _request_timeout=(CONNECT_TIMEOUT_S, LIST_TIMEOUT_S), **kwargs
    )
    try:
        data = json.loads(response.data)
    finally:
        response.release_conn()
    if not isinstance(data, dict):
        raise ValueError("the API answered a list with something else than an object")
    return data


class Watcher(Generic[V]):
    """Follows one resource on a thread; every change goes through the tracker to `put`."""

    def __init__(
        self,
        resource: Resource[V],
        tracker: Tracker[V],
        put: Callable[[EngineEvent], None],
        since_ns: int,
    ) -> None:
        self.resource = resource
        self.tracker = tracker
        self._put = put
        self._since_ns = since_ns
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None
        self.errors = 0
        self.last_error = ""
        self._failing_since_ns: int | None = None
        self._failing_said = False
        self._thread = threading.Thread(
            target=self._run, name=f"kube-watch-{resource.name}", daemon=True
        )

    def start(self) -> Watcher[V]:
        self._thread.start()
        return self

    def _run(self) -> None:
        version: str | None = None
        while not self._closed.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._watch(version)
            except Gone:
                version = None
            except ApiException as exc:
                if exc.status == HTTP_GONE:
                    version = None
                else:
                    self._failed(exc)
            except (OpenApiException, urllib3.exceptions.HTTPError) as exc:
                self._failed(exc)
            except (OSError, ValueError) as exc:  # a socket shut down by close(), bad JSON
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if self._closed.is_set():
            return
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        now = time.time_ns()
        if self._failing_since_ns is None:
            self._failing_since_ns = now
        refused = isinstance(exc, ApiException) and exc.status in REFUSED
        lasting = (now - self._failing_since_ns) / 1e9 >= FAILING_AFTER_S
        if not self._failing_said and (refused or lasting):
            self._failing_said = True
            self._put(self._health_event("watch_failing", now, error=self.last_error))
        self._closed.wait(RETRY_S)

    def _working(self, received_ns: int) -> None:
        """The API answered this watch again: close the gap it said was open."""
        since = self._failing_since_ns
        if since is not None and self._failing_said:
            gap_s = f"{(received_ns - since) / 1e9:.3f}"
            self._put(self._health_event("watch_resumed", received_ns, gap_s=gap_s))
        self._failing_since_ns, self._failing_said = None, False

    def _health_event(self, action: str, at_ns: int, **extra: str) -> EngineEvent:
        attributes = {"resource": self.resource.name, **extra}
        if self._failing_since_ns is not None:
            attributes["since_ns"] = str(self._failing_since_ns)
        return EngineEvent(
            time_ns=at_ns, action=action, instance=None, container_id=None, attributes=attributes
        )

    def _list(self) -> str:
        data = raw_list(self.resource.list_call)
        received_ns = time.time_ns()
        self._working(received_ns)
        views = [v for v in map(self.resource.parse, data.get("items") or []) if v is not None]
        self._emit(self.tracker.resync(views, received_ns))
        return raw_resource_version(data)

    def _watch(self, version: str) -> str:
        response = self.resource.list_call(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_S,
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT_S, WATCH_TIMEOUT_S + READ_SLACK_S),
        )
        self._working(time.time_ns())
        with self._lock:
            self._response = response
        if self._closed.is_set():
            self._shutdown()
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                version = self._handle(line, time.time_ns()) or version
        finally:
            with self._lock:
                self._response = None
            with contextlib.suppress(Exception):
                response.release_conn()
        return version

    def _handle(self, line: str, received_ns: int) -> str | None:
        """One watch event; the resourceVersion it brings (None for none)."""
        if not line.strip():
            return None
        event = json.loads(line)
        kind = event.get("type")
        raw = event.get("object") or {}
        if kind == "ERROR":
            if raw.get("code") == HTTP_GONE:
                raise Gone()
            raise ApiException(status=raw.get("code"), reason=str(raw.get("message")))
        version = raw_resource_version(raw) or None
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return version  # BOOKMARK: only the version moves
        view = self.resource.parse(raw)
        if view is None:
            return version
        if kind == "DELETED":
            self._emit(self.tracker.deleted(view, received_ns))
        else:
            self._emit(self.tracker.update(view, received_ns))
        return version

    def _emit(self, events: Sequence[EngineEvent]) -> None:
        for event in sorted(events, key=lambda e: e.time_ns):
            if event.time_ns >= self._since_ns:
                self._put(event)

    def _shutdown(self) -> None:
        with self._lock:
            response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed or released: nothing to wake
                response.shutdown()

    def close(self) -> None:
        self._closed.set()
        self._shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


class KubeEventStream:
    """Every watcher's events in one blocking iterator; close() ends it from another thread.

    Events arrive roughly, not strictly, in time order (each watch is its own connection); the
    analysis sorts by time_ns.
    """

    def __init__(self, since_ns: int) -> None:
        self.since_ns = since_ns
        self._queue: queue.Queue[object] = queue.Queue()
        self._watchers: list[Watcher[Any]] = []
        self._lock = threading.Lock()
        self._closed = False

    def follow(self, resource: Resource[V], tracker: Tracker[V]) -> Watcher[V]:
        watcher = Watcher(resource, tracker, self._queue.put, self.since_ns)
        with self._lock:
            if self._closed:
                return watcher
            self._watchers.append(watcher)
        return watcher.start()

    @property
    def watchers(self) -> list[Watcher[Any]]:
        with self._lock:
            return list(self._watchers)

    def __iter__(self) -> Iterator[EngineEvent]:
        return queued_events(self._queue)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.close()
        self._queue.put(STREAM_CLOSED)
