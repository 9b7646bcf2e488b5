"""Records every Locust request to a per-process file; loaded next to the user's locustfile.

The harness starts Locust as ``python -m locust -f <locustfile>,<this file> ...``; Locust imports
each file of the list, so the listeners below join the run whatever the user's locustfile is.
The harness never imports this module (importing locust patches the process with gevent). A
user's locustfile that spreads its own requests names the endpoint it used in the request
context (``context={"endpoint": name}``), else a request's endpoint is its URL's host:port.

Record files (CHAOS_HARNESS_RECORD_DIR, one per load-generating process): a local process
writes ``requests-<pid>.tsv``; a distributed worker ships its lines to the master, which writes
``requests-<worker name>.tsv`` (chaos_shipping.py). UTF-8, whole lines, a header
(``#chaos-harness-requests v3 worker=<index> pid=<pid> name=<name> offset_ns=<n> rtt_ns=<n>``;
v2 had no name and clock) then one line per request: ok, start_ns,
latency_ms, name, endpoint, error (exception class, ``HTTP <code>`` or ``timeout``) and
served_by (the CHAOS_HARNESS_ATTRIBUTION_HEADER response header), tab-separated. Exceptions
raised by user code are counted into ``user-errors-<pid>.tsv`` on quit.

Hot path: the request listener appends one tuple to a list; a greenlet writes the list every
0.5 s, and test_stop, quitting and quit flush too. The first request is written as soon as it
completes: the harness takes the load's start from it (`harness.load.first_request_ns`). The
full format and an example locustfile: docs/LOAD.md, The recorder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chaos_settings  # these two beside this file: Locust puts its directory on sys.path
import chaos_shipping as shipping
import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

FLUSH_INTERVAL_S = 0.5
_CACHE_MAX = 10_000
_ERROR_KINDS_MAX = 50
_ERROR_TEXT_MAX = 300
_SERVED_BY_MAX = 200
_CLEAN = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


def error_kind(exc: BaseException) -> str:
    """A short, stable name for what went wrong."""
    original = getattr(exc, "original", None)  # geventhttpclient's RetriesExceeded
    if isinstance(original, BaseException):
        exc = original
    code = getattr(exc, "code", None)
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        return f"HTTP {code}"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and 100 <= status <= 599:
        return f"HTTP {status}"
    if isinstance(exc, (TimeoutError, gevent.Timeout)):
        return "timeout"
    return type(exc).__name__


def _middle(name: Any, endpoint: Any, url: Any) -> str:
    """The name and endpoint fields with their tabs, as one string."""
    if not endpoint:
        endpoint = (urlsplit(str(url)).netloc or url) if url else ""
    return f"\t{str(name).translate(_CLEAN)}\t{str(endpoint).translate(_CLEAN)}\t"


def served_by(response: Any, header: str | None) -> str:
    """The value of `header` in `response` (cleaned, short), or "" (no header asked for, no
    response, or the header absent)."""
    if not header or response is None:
        return ""
    try:
        value = response.headers.get(header)
    except (AttributeError, TypeError):  # no headers: an error stand-in for a response
        return ""
    return "" if value is None else str(value)[:_SERVED_BY_MAX].translate(_CLEAN)


def format_batch(
    batch: list[tuple[Any, ...]], cache: dict[tuple[Any, Any], str], offset_ns: int = 0
) -> str:
    """Record lines for `batch`; `cache` keeps the (name, endpoint) fields already cleaned;
    `offset_ns` moves every start into the master's clock (a shipping worker)."""
    if len(cache) > _CACHE_MAX:
        cache.clear()
    lines = []
    append = lines.append
    for start_s, latency_ms, name, exception, context, url, served in batch:
        endpoint = context.get("endpoint") if context else None
        if endpoint:
            middle = cache.get((name, endpoint))
            if middle is None:
                middle = cache[(name, endpoint)] = _middle(name, endpoint, None)
        else:
            middle = _middle(name, None, url)
        start_ns = int(start_s * 1e9) + offset_ns
        if exception is None:
            append(f"1\t{start_ns}\t{latency_ms:.3f}{middle}\t{served}\n")
        else:
            error = error_kind(exception).translate(_CLEAN)
            append(f"0\t{start_ns}\t{latency_ms:.3f}{middle}{error}\t{served}\n")
    return "".join(lines)


class Recorder:
    """Buffers request records in memory and appends them to this process's file."""

    def __init__(self, path: Path | None, worker: int, header: str | None = None) -> None:
        self.path = path  # None: a distributed worker, which ships its records (`shipper`)
        self.header = header  # the response header naming the replica that served a request
        self.pending: list[tuple[Any, ...]] = []
        self.cache: dict[tuple[Any, Any], str] = {}
        self.first = True
        self.shipper: shipping.Shipper | None = None
        if path is None:
            return
        self.file = path.open("w", encoding="utf-8", newline="")
        name = shipping.worker_name() if os.environ.get("CHAOS_HARNESS_WORKER_NAME") else "local"
        self.file.write(shipping.header_line(worker, os.getpid(), name, 0, 0))
        self.file.flush()

    def format(self, batch: list[tuple[Any, ...]], offset_ns: int) -> str:
        return format_batch(batch, self.cache, offset_ns)

    def on_request(
        self,
        request_type: str = "",
        name: str = "",
        response_time: float = 0.0,
        response_length: int = 0,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        url: str | None = None,
        **_kwargs: Any,
    ) -> None:
        if start_time is None:
            start_time = time.time() - response_time / 1000.0
        served = served_by(response, self.header)
        record = (start_time, response_time, name, exception, context, url, served)
        if self.shipper is not None:
            self.shipper.on_request(record)
            return
        self.pending.append(record)
        if self.first:  # written at once: the harness stamps the load's start on it
            self.first = False
            self.flush()

    def flush(self, **_kwargs: Any) -> None:
        if self.file.closed or not self.pending:
            return
        batch, self.pending = self.pending, []
        self.file.write(format_batch(batch, self.cache))
        self.file.flush()

    def close(self, **_kwargs: Any) -> None:
        self.flush()
        if not self.file.closed:
            self.file.close()

    def run(self) -> None:
        while not self.file.closed:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()


class UserErrors:
    """Counts exceptions raised by user code (not request failures); written once, on quit.

    Locust runs with --exit-code-on-error 0, which hides these from the exit code, so they go to
    ``user-errors-<pid>.tsv``: lines of ``<count> TAB <ExceptionType: message>``.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: a shipping worker (the counts travel with its last batch)
        self.counts: dict[str, int] = {}

    def on_user_error(self, exception: BaseException | None = None, **_kwargs: Any) -> None:
        key = f"{type(exception).__name__}: {exception}"[:_ERROR_TEXT_MAX].translate(_CLEAN)
        if key in self.counts or len(self.counts) < _ERROR_KINDS_MAX:
            self.counts[key] = self.counts.get(key, 0) + 1
        else:
            self.counts["(other)"] = self.counts.get("(other)", 0) + 1

    def write(self, **_kwargs: Any) -> None:
        if self.counts and self.path is not None:
            lines = "".join(f"{count}\t{key}\n" for key, count in self.counts.items())
            self.path.write_text(lines, encoding="utf-8")


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_kwargs: Any) -> None:
    chaos_settings.add_option(parser)  # the run's settings, from the master to its workers


@events.init.add_listener
def _on_init(environment: Any, **_kwargs: Any) -> None:
    record_dir = os.environ.get("CHAOS_HARNESS_RECORD_DIR")
    runner = environment.runner
    if isinstance(runner, MasterRunner):  # its workers make the requests and ship them here
        if record_dir:
            shipping.start_receiving(environment, Path(record_dir))
        return
    header = os.environ.get("CHAOS_HARNESS_ATTRIBUTION_HEADER") or None
    if isinstance(runner, WorkerRunner):  # records travel to the master: no shared filesystem
        environment.events.test_start.add_listener(chaos_settings.apply)
        recorder = Recorder(None, int(getattr(runner, "worker_index", 0) or 0), header)
        recorder.shipper = shipping.start_shipping(environment, recorder.format)
        user_errors = UserErrors(None)
        recorder.shipper.user_errors = user_errors.counts
        environment.events.user_error.add_listener(user_errors.on_user_error)
        environment.events.request.add_listener(recorder.on_request)
        return
    if not record_dir or runner is None:
        return
    path = Path(record_dir) / f"requests-{os.getpid()}.tsv"
    recorder = Recorder(path, 0, header)
    environment.events.request.add_listener(recorder.on_request)
    environment.events.test_stop.add_listener(recorder.flush)
    environment.events.quitting.add_listener(recorder.flush)
    environment.events.quit.add_listener(recorder.close)
    user_errors = UserErrors(Path(record_dir) / f"user-errors-{os.getpid()}.tsv")
    environment.events.user_error.add_listener(user_errors.on_user_error)
    environment.events.quit.add_listener(user_errors.write)
    gevent.spawn(recorder.run)
