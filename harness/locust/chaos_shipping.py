"""Records shipped from Locust workers to their master through Locust's own messages.

A worker need not share the master's filesystem (another host, a lab node's namespace): its
recorder formats request lines as the file recorder does and sends them with
``runner.send_message``; the master (``runner.register_message``) appends them to one record
file per worker in its CHAOS_HARNESS_RECORD_DIR, so collection stays one code path.

Order: a worker's messages travel one ZeroMQ DEALER socket and the master handles them in one
greenlet, so they arrive in the order sent; every batch carries a sequence number and a gap is
counted as lost batches (a connection that broke with data in flight). Sent while the master
is unreachable, ZeroMQ queues them (up to its high-water mark) and delivers them on reconnect.

Clock: at connect the worker pings the master (PINGS round trips) and takes the offset of the
one with the smallest round trip, ``master_time - (sent + received) / 2``; it adds the offset
to every start_ns it ships, so the records are in the master's (the harness's) clock.

End: Locust's headless master, at the end of --run-time (or on SIGTERM), fires test_stop before
it sends "quit" to its workers, and stops listening 0.5 s after that. Its test_stop listener
here asks every worker to stop its users and send its last batch ("chaos_done"), and waits for
them (CHAOS_HARNESS_FINAL_WAIT_S, default 10 s; a missing worker is not waited for), so the
last batch is written before the master exits and records equal Locust's totals.

The master also writes ``workers.json`` (each worker's name, index, offset, round trip,
requests, batches lost, whether its last batch came) and ``worker-events.jsonl`` (a worker
seen missing by Locust's heartbeat, healed, or gone), which the harness reads back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import gevent
from gevent.event import Event
from locust.runners import STATE_MISSING

PINGS = 5
PING_TIMEOUT_S = 2.0
WORKERS_FILE = "workers.json"
EVENTS_FILE = "worker-events.jsonl"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
log = logging.getLogger("chaos_harness.shipping")


def safe_name(name: str) -> str:
    """A worker name fit for a file name and a header token."""
    return _UNSAFE.sub("_", name)[:100] or "worker"


def worker_name() -> str:
    """This worker's identity: CHAOS_HARNESS_WORKER_NAME, else the host's name."""
    return safe_name(os.environ.get("CHAOS_HARNESS_WORKER_NAME") or socket.gethostname())


def header_line(index: int, pid: int, name: str, offset_ns: int, rtt_ns: int) -> str:
    """The first line of a record file (format v3: v2 plus the worker's name and clock)."""
    return (
        f"#chaos-harness-requests v3 worker={index} pid={pid} name={name} "
        f"offset_ns={offset_ns} rtt_ns={rtt_ns}\n"
    )


# -- the worker's side ------------------------------------------------------------------------


class Shipper:
    """Sends this worker's formatted record batches to the master, in order."""

    def __init__(self, runner: Any, name: str, formatter: Callable[[list[Any], int], str]) -> None:
        self.runner = runner
        self.name = name
        self.format = formatter  # (batch, offset_ns) -> record lines
        self.pending: list[tuple[Any, ...]] = []
        self.unsent: list[str] = []
        self.seq = 0
        self.offset_ns = 0
        self.rtt_ns = -1
        self.ready = False
        self.done = False
        self.first = True
        self.user_errors: dict[str, int] = {}
        self._pongs: list[tuple[int, int, int]] = []
        self._pong = Event()

    def on_pong(self, msg: Any, **_kwargs: Any) -> None:
        self._pongs.append((int(msg.data["t0"]), int(msg.data["tm"]), time.time_ns()))
        self._pong.set()

    def connect(self) -> None:
        """Measure the clock offset, then introduce this worker; records flow after that."""
        for _ in range(PINGS):
            self._pong.clear()
            self.runner.send_message("chaos_ping", {"t0": time.time_ns()})
            self._pong.wait(PING_TIMEOUT_S)
        if not self._pongs:
            log.warning("the master answered no chaos_ping: records are not shipped")
            return
        t0, tm, t1 = min(self._pongs, key=lambda p: p[2] - p[0])
        self.rtt_ns, self.offset_ns = t1 - t0, tm - (t0 + t1) // 2
        hello = {"name": self.name, "pid": os.getpid(), "host": socket.gethostname()}
        hello |= {"offset_ns": self.offset_ns, "rtt_ns": self.rtt_ns, "pings": len(self._pongs)}
        self.runner.send_message("chaos_hello", hello)
        self.ready = True
        self.flush()

    def on_request(self, record: tuple[Any, ...]) -> None:
        self.pending.append(record)
        if self.first and self.ready:  # at once: the harness stamps the load's start on it
            self.first = False
            self.flush()

    def flush(self, **_kwargs: Any) -> None:
        if not self.ready:
            return
        if self.pending:
            batch, self.pending = self.pending, []
            self.unsent.append(self.format(batch, self.offset_ns))
        while self.unsent:
            try:
                message = {"seq": self.seq, "lines": self.unsent[0]}
                self.runner.send_message("chaos_records", message)
            except Exception as exc:  # RPCError (locust): kept, sent again next flush
                log.warning("cannot ship records yet: %s", exc)
                return
            self.seq += 1
            self.unsent.pop(0)

    def finish(self, **_kwargs: Any) -> None:
        """The last batch and the user errors, once (the master's chaos_stop, or quitting)."""
        if self.done or not self.ready:
            return
        self.flush()
        self.done = True
        data = {"seq": self.seq, "lines": "", "user_errors": self.user_errors}
        try:
            self.runner.send_message("chaos_done", data)
        except Exception as exc:
            log.warning("cannot ship the last records: %s", exc)

    def on_stop_asked(self, **_kwargs: Any) -> None:
        """The master's chaos_stop: stop the users (no request after it), ship the rest."""
        self.runner.stop()
        self.finish()

    def run(self) -> None:
        self.connect()
        while not self.done:
            gevent.sleep(0.5)
            self.flush()


def start_shipping(environment: Any, formatter: Callable[[list[Any], int], str]) -> Shipper:
    """Register the worker's messages and listeners; the shipper runs in its own greenlet."""
    runner = environment.runner
    shipper = Shipper(runner, worker_name(), formatter)
    runner.register_message("chaos_pong", lambda msg, **_: shipper.on_pong(msg))
    runner.register_message("chaos_stop", shipper.on_stop_asked, concurrent=True)
    environment.events.test_stop.add_listener(shipper.flush)
    environment.events.quitting.add_listener(shipper.finish)
    gevent.spawn(shipper.run)
    return shipper


# -- the master's side ------------------------------------------------------------------------


@dataclass
class ShippedWorker:
    """What the master knows of one worker's records (written to workers.json)."""

    name: str
    index: int
    client_id: str
    host: str
    pid: int
    offset_ns: int
    rtt_ns: int
    requests: int = 0
    batches: int = 0
    lost_batches: int = 0
    complete: bool = False
    users: int = 0  # the users Locust gave it, as last reported (its share of the rate)
    next_seq: int = field(default=0, repr=False)


class Receiver:
    """Writes the shipped batches of every worker into the record dir (the master's)."""

    def __init__(self, runner: Any, record_dir: Path, final_wait_s: float) -> None:
        self.runner = runner
        self.record_dir = record_dir
        self.final_wait_s = final_wait_s
        self.workers: dict[str, ShippedWorker] = {}
        self.files: dict[str, IO[str]] = {}
        self.states: dict[str, str] = {}
        self.stopped = False

    def on_ping(self, msg: Any, **_kwargs: Any) -> None:
        data = {"t0": msg.data["t0"], "tm": time.time_ns()}
        self.runner.send_message("chaos_pong", data, client_id=msg.node_id)

    def on_hello(self, msg: Any, **_kwargs: Any) -> None:
        data, node = msg.data, msg.node_id
        name = self._unique(safe_name(str(data.get("name") or node)), node)
        index = int(self.runner.get_worker_index(node))
        worker = ShippedWorker(
            name, index, node, str(data.get("host", "")), int(data.get("pid", 0)),
            int(data["offset_ns"]), int(data["rtt_ns"]),
        )  # fmt: skip
        self.workers[node] = worker
        handle = (self.record_dir / f"requests-{name}.tsv").open("a", encoding="utf-8")
        handle.write(header_line(index, worker.pid, name, worker.offset_ns, worker.rtt_ns))
        handle.flush()
        self.files[node] = handle
        self.event(name, "connected", offset_ns=worker.offset_ns, rtt_ns=worker.rtt_ns)

    def _unique(self, name: str, node: str) -> str:
        taken = {w.name for n, w in self.workers.items() if n != node}
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}-{n}"
        return candidate

    def on_records(self, msg: Any, **_kwargs: Any) -> None:
        worker = self.workers.get(msg.node_id)
        if worker is None:
            log.warning("records from %s before its hello: dropped", msg.node_id)
            return
        seq = int(msg.data["seq"])
        if seq > worker.next_seq:
            worker.lost_batches += seq - worker.next_seq
        worker.next_seq = seq + 1
        lines = str(msg.data["lines"])
        if lines:
            worker.batches += 1
            worker.requests += lines.count("\n")
            handle = self.files[msg.node_id]
            handle.write(lines)
            handle.flush()

    def on_done(self, msg: Any, **_kwargs: Any) -> None:
        worker = self.workers.get(msg.node_id)
        if worker is None:
            return
        if int(msg.data["seq"]) > worker.next_seq:
            worker.lost_batches += int(msg.data["seq"]) - worker.next_seq
        worker.complete = True
        errors = msg.data.get("user_errors") or {}
        if errors:
            lines = "".join(f"{count}\t{key}\n" for key, count in errors.items())
            (self.record_dir / f"user-errors-{worker.name}.tsv").write_text(lines, "utf-8")
        self.write_summary()

    def on_test_stop(self, **_kwargs: Any) -> None:
        """Ask every worker for its last batch and wait for them (not for missing ones)."""
        if self.stopped:
            return
        self.stopped = True
        clients = self.runner.clients
        for node, worker in self.workers.items():
            client = clients.get(node)
            if client is not None:
                worker.users = sum(client.user_classes_count.values())
        for node in self.workers:
            self.runner.send_message("chaos_stop", None, client_id=node)
        deadline = time.monotonic() + self.final_wait_s
        while time.monotonic() < deadline and self._awaited():
            gevent.sleep(0.05)
        for worker in self.workers.values():
            if not worker.complete:
                self.event(worker.name, "incomplete")
        self.write_summary()

    def _awaited(self) -> list[str]:
        clients = self.runner.clients
        return [
            node
            for node, worker in self.workers.items()
            if not worker.complete
            and clients.get(node) is not None
            and clients[node].state != STATE_MISSING
        ]

    def watch(self) -> None:
        """Every second: Locust's view of each worker; a change of state is an event."""
        while True:
            gevent.sleep(1.0)
            self.check_states()

    def check_states(self) -> None:
        clients = self.runner.clients
        for node, worker in self.workers.items():
            client = clients.get(node)
            state = "gone" if client is None else str(client.state)
            before = self.states.get(node)
            self.states[node] = state
            if before is None or before == state:
                continue
            if state == STATE_MISSING:
                self.event(worker.name, "missing")
            elif before == STATE_MISSING:
                self.event(worker.name, "gone" if state == "gone" else "healed")

    def event(self, name: str, what: str, **extra: Any) -> None:
        line = json.dumps({"time_ns": time.time_ns(), "worker": name, "event": what, **extra})
        with (self.record_dir / EVENTS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def write_summary(self) -> None:
        rows = []
        for worker in self.workers.values():
            row = asdict(worker)
            row.pop("next_seq")
            rows.append(row)
        tmp = self.record_dir / (WORKERS_FILE + ".tmp")
        tmp.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        tmp.replace(self.record_dir / WORKERS_FILE)

    def close(self, **_kwargs: Any) -> None:
        self.write_summary()
        for handle in self.files.values():
            handle.close()


def start_receiving(environment: Any, record_dir: Path) -> Receiver:
    """Register the master's messages and listeners."""
    runner = environment.runner
    wait_s = float(os.environ.get("CHAOS_HARNESS_FINAL_WAIT_S", "10") or 10)
    receiver = Receiver(runner, record_dir, wait_s)
    runner.register_message("chaos_ping", receiver.on_ping)
    runner.register_message("chaos_hello", receiver.on_hello)
    runner.register_message("chaos_records", receiver.on_records)
    runner.register_message("chaos_done", receiver.on_done)
    environment.events.test_stop.add_listener(receiver.on_test_stop)
    environment.events.quit.add_listener(receiver.close)
    gevent.spawn(receiver.watch)
    return receiver
