"""harness.load against real Locust processes and real HTTP servers on loopback."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from harness.errors import LoadError
from harness.load import (
    REQUEST_COLUMNS,
    LoadPath,
    LoadPlan,
    LoadRun,
    collect_requests,
    first_request_ns,
    free_port,
    locust_commands,
    locust_version,
    plan_env,
    write_requests_parquet,
)

BUSYBOX = "/bin/busybox"
REPO = Path(__file__).resolve().parent.parent

Server = Callable[[], str]


def _wait_listening(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 5.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"http server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"http server on port {port} did not start")


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[Server]:
    """Factory: start an HTTP server on a free loopback port, return its URL; killed by PID."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello\n")
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        port = free_port()
        if os.path.exists(BUSYBOX):
            argv = [BUSYBOX, "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(www)]
        else:
            argv = [sys.executable, "-m", "http.server", "-b", "127.0.0.1", str(port)]
        proc = subprocess.Popen(argv, cwd=www, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        _wait_listening(port, proc)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener completes the handshake but never answers (requests time out)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    yield sock.getsockname()[1]
    sock.close()


def _plan(record_dir: Path, endpoints: list[tuple[str, str]], **kw: object) -> LoadPlan:
    settings: dict[str, object] = {"users": 5, "spawn_rate": 100, "duration_s": 3}
    settings.update(kw)
    return LoadPlan(endpoints=endpoints, record_dir=record_dir, **settings)  # type: ignore[arg-type]


def _run_to_end(plan: LoadPlan, timeout_s: float = 30) -> LoadRun:
    with LoadRun(plan) as run:
        assert run.wait(timeout=timeout_s), "locust did not finish in time"
    return run


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- real Locust runs ---------------------------------------------------------------------


def test_local_run_records_every_request(tmp_path: Path, http_server: Server) -> None:
    endpoints = [("web-1", http_server()), ("web-2", http_server())]
    plan = _plan(tmp_path / "load", endpoints)
    run = _run_to_end(plan)

    requests = collect_requests(plan.record_dir)
    totals = run.locust_totals()
    assert totals is not None and totals.requests > 100
    assert len(requests) == totals.requests  # nothing lost, nothing invented
    assert run.poll_progress().requests == totals.requests
    assert requests["ok"].all() and requests["error"].isna().all()
    counts = requests["endpoint"].value_counts()
    assert set(counts.index) == {"web-1", "web-2"}
    assert abs(counts["web-1"] - counts["web-2"]) <= plan.users  # round-robin per user
    assert run.started_at_ns is not None and run.ended_at_ns is not None
    assert requests["start_ns"].min() >= run.started_at_ns
    ends = requests["start_ns"] + (requests["latency_ms"] * 1e6).astype("int64")
    assert ends.max() <= run.ended_at_ns
    assert (requests["latency_ms"] > 0).all()
    assert requests["start_ns"].is_monotonic_increasing
    assert set(requests["worker"]) == {0}
    assert set(requests["name"]) == {"/"}


def test_the_load_starts_at_its_first_request_not_at_the_spawn(
    tmp_path: Path, http_server: Server
) -> None:
    # 2 users against a loopback server, each request a few ms: the first request sent is the
    # earliest start of the whole run
    plan = _plan(tmp_path / "load", [("web-1", http_server())], users=2, duration_s=2)
    with LoadRun(plan) as run:
        first = run.wait_first_request(timeout_s=30)
    assert first is not None and run.started_at_ns is not None
    requests = collect_requests(plan.record_dir)
    assert first == int(requests["start_ns"].min())
    # Locust imports and starts for a while before it sends anything (about 1 s measured
    # here, idle; 2-4 s on a busy machine): the spawn instant is not the load's start
    assert first - run.started_at_ns > 200_000_000


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive (unlike the demo's busybox httpd, which closes every one)."""

    protocol_version = "HTTP/1.1"
    # one handler per accepted connection: counted as accepted, not as distinct client
    # addresses (the client reuses a source port once the server's side has closed it)
    connections: ClassVar[list[tuple[str, int]]] = []

    def setup(self) -> None:
        super().setup()
        self.connections.append(self.client_address)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *_args: object) -> None:
        return


@pytest.mark.parametrize("policy", ["keep_alive", "per_request"])
def test_the_connection_policy_is_the_one_asked_for(tmp_path: Path, policy: str) -> None:
    handler = type("Handler", (_CountingHandler,), {"connections": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        plan = _plan(tmp_path / "load", [("web-1", url)], users=2, duration_s=2)
        plan = LoadPlan(**{**plan.__dict__, "connections": policy})
        _run_to_end(plan)
    finally:
        server.shutdown()
        server.server_close()
    requests = collect_requests(plan.record_dir)
    assert len(requests) > 5 and requests["ok"].all()
    # keep_alive: each of the 2 users keeps its one connection for the whole run;
    # per_request: one connection per request, plus at most one per user whose last request
    # the stop cut short (accepted, never recorded)
    accepted = len(handler.connections)
    if policy == "keep_alive":
        assert accepted == 2
    else:
        assert len(requests) <= accepted <= len(requests) + 2


def test_first_request_is_the_earliest_start_recorded_by_any_process(tmp_path: Path) -> None:
    header = "#chaos-harness-requests v1 worker={} pid=1\n"
    (tmp_path / "requests-1.tsv").write_text(
        header.format(0) + "1\t5000\t1.0\t/\tservice\t\n1\t4000\t9.0\t/\tservice\t\n"
    )
    (tmp_path / "requests-2.tsv").write_text(header.format(1) + "0\t4500\t2.0\t/\tservice\tx\n")
    (tmp_path / "requests-3.tsv").write_text(header.format(2) + "1\t1000\t1.")  # not whole yet
    # starts 5000, 4000 (process 1, completed in that order) and 4500 (process 2); process 3's
    # 1000 is on a line not yet whole: the earliest is 4000, though recorded second
    assert first_request_ns(tmp_path) == 4000
    assert first_request_ns(tmp_path / "none") is None


def test_requests_parquet_round_trip(tmp_path: Path, http_server: Server) -> None:
    plan = _plan(tmp_path / "load", [("web-1", http_server())], users=2, duration_s=1)
    _run_to_end(plan)
    requests = collect_requests(plan.record_dir)
    path = tmp_path / "requests.parquet"
    write_requests_parquet(requests, path)
    back = pd.read_parquet(path)
    assert tuple(back.columns) == REQUEST_COLUMNS
    assert len(back) == len(requests) > 0
    assert str(back["start_ns"].dtype) == "int64"
    assert str(back["latency_ms"].dtype) == "float64"
    assert str(back["ok"].dtype) == "bool"
    assert str(back["worker"].dtype) == "int64"
    assert back["error"].isna().all()


def test_distributed_workers_sum_to_master_total(tmp_path: Path, http_server: Server) -> None:
    endpoints = [("web-1", http_server()), ("web-2", http_server())]
    plan = _plan(tmp_path / "load", endpoints, users=6, workers=2)
    run = _run_to_end(plan)

    assert len(run.pids) == 3  # master + 2 workers
    requests = collect_requests(plan.record_dir)
    per_worker = requests.groupby("worker").size()
    assert set(per_worker.index) == {0, 1}
    assert (per_worker > 0).all()
    assert len(list(plan.record_dir.glob("requests-*.tsv"))) == 2  # the master records nothing
    totals = run.locust_totals()
    assert totals is not None
    assert int(per_worker.sum()) == totals.requests
    assert set(requests["endpoint"]) == {"web-1", "web-2"}


def test_dead_endpoints_fail_and_the_run_ends_on_time(
    tmp_path: Path, http_server: Server, silent_port: int
) -> None:
    endpoints = [
        ("live", http_server()),
        ("refused", f"http://127.0.0.1:{free_port()}"),
        ("silent", f"http://127.0.0.1:{silent_port}"),
    ]
    plan = _plan(tmp_path / "load", endpoints, users=3, timeout_s=0.5)
    started = time.monotonic()
    run = _run_to_end(plan)
    assert time.monotonic() - started < plan.duration_s + 4  # no user hung on a dead endpoint

    requests = collect_requests(plan.record_dir)
    by_endpoint = {name: group for name, group in requests.groupby("endpoint")}
    assert by_endpoint["live"]["ok"].all()
    refused = by_endpoint["refused"]
    assert len(refused) > 0 and not refused["ok"].any()
    assert set(refused["error"]) == {"ConnectionRefusedError"}
    silent = by_endpoint["silent"]
    assert len(silent) > 0 and set(silent["error"]) == {"timeout"}
    assert silent["latency_ms"].between(450, 1500).all()
    totals = run.locust_totals()
    assert totals is not None
    assert totals.failures == int((~requests["ok"]).sum())


def test_stop_mid_run_leaves_no_process(tmp_path: Path, http_server: Server) -> None:
    plan = _plan(tmp_path / "load", [("web-1", http_server())], users=2, duration_s=60, workers=1)
    run = LoadRun(plan, grace_s=5)
    with run:
        assert run.wait_first_request(timeout_s=30) is not None
        assert run.poll_progress().requests > 0
        started = time.monotonic()
        run.stop()
        assert time.monotonic() - started < 5
        assert not run.running()
    assert all(_gone(pid) for pid in run.pids)
    totals = run.locust_totals()  # a SIGTERM stop is graceful: final stats and records agree
    assert totals is not None
    assert len(collect_requests(plan.record_dir)) == totals.requests


USER_LOCUSTFILE = """
import json, os
from locust import HttpUser, constant, task

ENDPOINTS = [(e["name"], e["url"]) for e in json.loads(os.environ["CHAOS_HARNESS_ENDPOINTS"])]

class MyUser(HttpUser):
    host = ENDPOINTS[0][1]
    wait_time = constant(0.01)

    @task(3)
    def index(self):
        self.client.get("/index.html", name="index")  # no context: endpoint = host:port

    @task
    def missing(self):
        self.client.get("/missing", name="missing")
        raise ValueError("task bug")
"""


def test_own_locustfile_is_recorded_too(tmp_path: Path, http_server: Server) -> None:
    url = http_server()
    locustfile = tmp_path / "my_locustfile.py"
    locustfile.write_text(USER_LOCUSTFILE)
    plan = _plan(tmp_path / "load", [("web-1", url)], users=2, duration_s=3, locustfile=locustfile)
    run = _run_to_end(plan)  # exits 0 although requests failed and a task raised

    requests = collect_requests(plan.record_dir)
    totals = run.locust_totals()
    assert totals is not None and len(requests) == totals.requests > 0
    assert set(requests["endpoint"]) == {url.removeprefix("http://")}
    missing = requests[requests["name"] == "missing"]
    assert len(missing) > 0 and set(missing["error"]) == {"HTTP 404"}
    assert requests.loc[requests["name"] == "index", "ok"].all()
    assert requests["start_ns"].min() >= (run.started_at_ns or 0)
    errors = run.user_errors()
    assert list(errors) == ["ValueError: task bug"] and errors["ValueError: task bug"] > 0


def test_a_crashing_locustfile_raises_with_its_log(tmp_path: Path) -> None:
    locustfile = tmp_path / "broken_locustfile.py"
    locustfile.write_text("raise RuntimeError('boom in the locustfile')\n")
    plan = _plan(tmp_path / "load", [("web-1", "http://127.0.0.1:9")], locustfile=locustfile)
    run = LoadRun(plan)
    with pytest.raises(LoadError, match="boom in the locustfile"), run:
        run.wait(timeout=20)
    assert all(_gone(pid) for pid in run.pids)


# Locust's own example as Debian's python3-locust ships it (make setup unpacks it)
LOCUST_EXAMPLES = REPO / "build" / "locust-examples"
LOCUST_EXAMPLE = LOCUST_EXAMPLES / "semaphore_wait.py"


def _packaged_md5(name: str) -> str:
    """The file's md5 as the Debian package lists it: evidence that it is unchanged."""
    for line in (LOCUST_EXAMPLES / "DEBIAN.md5sums").read_text().splitlines():
        digest, _, path = line.partition("  ")
        if path.endswith(f"/examples/{name}"):
            return digest
    raise AssertionError(f"{name} is not in the package's md5sums")


def test_locusts_own_example_unchanged_loads_the_host_it_is_given(
    tmp_path: Path, http_server: Server
) -> None:
    # the example sets host = "http://127.0.0.1:8089" (nothing listens there); Locust's runner
    # sets user_class.host = environment.host when --host is given, so --host wins
    assert hashlib.md5(LOCUST_EXAMPLE.read_bytes()).hexdigest() == _packaged_md5(
        LOCUST_EXAMPLE.name
    )
    assert 'host = "http://127.0.0.1:8089"' in LOCUST_EXAMPLE.read_text()
    url = http_server()
    # its users wait 2-5 s before and between requests: 40 users for 6 s make some 50 requests
    plan = _plan(
        tmp_path / "load",
        [],
        users=40,
        spawn_rate=40,
        duration_s=6,
        locustfile=LOCUST_EXAMPLE,
        host=url,
    )
    _run_to_end(plan)

    requests = collect_requests(plan.record_dir)
    assert len(requests) > 20
    assert set(requests["endpoint"]) == {url.removeprefix("http://")}  # not 127.0.0.1:8089
    assert requests["ok"].all()


def test_open_loop_keeps_its_arrival_rate_while_half_the_requests_hang(
    tmp_path: Path, http_server: Server, silent_port: int
) -> None:
    # every other request goes to a listener that never answers (0.5 s timeout). Closed-loop
    # users would spend most of their time waiting there; 40/s with 60 users keeps its schedule
    endpoints = [("live", http_server()), ("silent", f"http://127.0.0.1:{silent_port}")]
    plan = _plan(
        tmp_path / "load",
        endpoints,
        users=60,
        spawn_rate=60,
        duration_s=6,
        timeout_s=0.5,
        rate_per_s=40.0,
    )
    run = _run_to_end(plan)

    requests = collect_requests(plan.record_dir)
    assert run.started_at_ns is not None
    since = (requests["start_ns"] - run.started_at_ns) / 1e9
    steady = requests[(since >= 2.0) & (since < 5.0)]  # after the users started, before the end
    assert len(steady) / 3.0 == pytest.approx(40.0, rel=0.15)
    assert set(steady.loc[~steady["ok"], "endpoint"]) == {"silent"}
    assert steady["ok"].mean() == pytest.approx(0.5, abs=0.1)
    # arrivals are spread over each second, not sent in bursts by users released together
    per_tenth = steady.groupby((since[steady.index] * 10).astype(int)).size()
    assert per_tenth.max() <= 12


# -- no Locust process --------------------------------------------------------------------


def test_plan_validation_lists_every_problem(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as info:
        LoadPlan(users=0, spawn_rate=0, duration_s=5, endpoints=[], record_dir=tmp_path)
    message = str(info.value)
    assert "users must be >= 1, got 0" in message
    assert "spawn_rate must be > 0" in message
    assert "endpoints must not be empty" in message


def test_commands_and_environment(tmp_path: Path) -> None:
    plan = LoadPlan(
        users=4,
        spawn_rate=2,
        duration_s=2.5,
        workers=2,
        endpoints=[("a", "http://10.0.0.1:80")],
        paths=[LoadPath("/health", weight=2)],
        record_dir=tmp_path,
        extra_env={"EXTRA": "1"},
        host="http://10.0.0.254:80",
        rate_per_s=25.0,
    )
    commands = dict(locust_commands(plan, "python", 5557))
    assert list(commands) == ["master", "worker-0", "worker-1"]
    master = commands["master"]
    assert master[master.index("--run-time") + 1] == "3s"
    assert master[master.index("--exit-code-on-error") + 1] == "0"
    assert master[master.index("--master-bind-port") + 1] == "5557"
    assert "--worker" in commands["worker-1"]
    # the master gets the service address as Locust's --host; its workers get it from the
    # master's spawn messages (a worker on another machine is started without it)
    master = commands["master"]
    assert master[master.index("--host") + 1] == "http://10.0.0.254:80"
    assert "--host" not in commands["worker-0"]
    env = plan_env(plan, {"LOCUST_HOST": "http://elsewhere", "PATH": "/bin"})
    assert (env["CHAOS_HARNESS_RATE"], env["CHAOS_HARNESS_USERS"]) == ("25.0", "4")
    assert "LOCUST_HOST" not in env and env["PATH"] == "/bin" and env["EXTRA"] == "1"
    assert '"path": "/health"' in env["CHAOS_HARNESS_PATHS"]


def test_collect_and_progress_read_complete_lines_only(tmp_path: Path) -> None:
    record = tmp_path / "requests-1.tsv"
    record.write_text(
        "#chaos-harness-requests v1 worker=3 pid=1\n"
        "1\t2000\t1.500\tNA\tweb-1\t\n"
        "0\t1000\t2.000\t/\tweb-2\tHTTP 503\n"
        "0\t3000\t2.0"  # cut short by a kill
    )
    requests = collect_requests(tmp_path)
    assert list(requests["start_ns"]) == [1000, 2000]
    assert list(requests["error"].isna()) == [False, True]
    assert requests["name"].iloc[1] == "NA"  # not read as a missing value
    assert set(requests["worker"]) == {3}
    plan = _plan(tmp_path, [("web-1", "http://127.0.0.1:9")])
    run = LoadRun(plan)
    first = run.poll_progress()
    assert (first.requests, first.failures) == (2, 1)
    with record.open("a") as handle:
        handle.write("00\t/\tweb-2\ttimeout\n")  # completes the cut line
    second = run.poll_progress()
    assert (second.requests, second.failures) == (3, 2)


def test_empty_record_dir_gives_typed_empty_frame(tmp_path: Path) -> None:
    requests = collect_requests(tmp_path)
    assert tuple(requests.columns) == REQUEST_COLUMNS and len(requests) == 0
    assert str(requests["start_ns"].dtype) == "int64"


def test_stale_record_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "requests-9.tsv").write_text("#chaos-harness-requests v1 worker=0 pid=9\n")
    run = LoadRun(_plan(tmp_path, [("web-1", "http://127.0.0.1:9")]))
    with pytest.raises(LoadError, match="already holds request logs"):
        run.start()
    assert run.pids == ()


def test_locust_version_without_importing_locust() -> None:
    code = "import sys, harness.load as l; print(l.locust_version(), 'locust' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == locust_version() and out[0][0].isdigit()
    assert out[1] == "False"
