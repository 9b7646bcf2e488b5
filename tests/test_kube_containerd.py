"""Container exits from a lab node's containerd (`ctr events` lines, as containerd 1.6 prints
them), and a die stamped with the exit instead of the API's second (pure)."""

from __future__ import annotations

import json

from harness.targets.kubernetes.containerd import parse_exit
from harness.targets.kubernetes.events import EXIT_RESOLUTION_NS, stamp

S = 1_000_000_000


def _line(topic: str, event: dict[str, object], namespace: str = "k8s.io") -> str:
    return f"2027-01-15 08:00:00.4 +0000 UTC {namespace} {topic} {json.dumps(event)}"


def test_the_init_process_exit_is_the_containers_end() -> None:
    line = _line(
        "/tasks/exit",
        {
            "container_id": "c1",
            "id": "c1",
            "pid": 42,
            "exit_status": 137,
            "exited_at": "2027-01-15T08:00:00.123456789Z",
        },
    )
    # 2027-01-15T08:00:00Z is 1_800_000_000 s since the epoch
    assert parse_exit(line) == ("c1", 1_800_000_000 * S + 123_456_789)


def test_an_exec_exit_other_topics_and_namespaces_are_not() -> None:
    exec_exit = {"container_id": "c1", "id": "probe-7", "exited_at": "2027-01-15T08:00:01Z"}
    assert parse_exit(_line("/tasks/exit", exec_exit)) is None
    start = {"container_id": "c1", "pid": 43}
    assert parse_exit(_line("/tasks/start", start)) is None
    own = {"container_id": "c1", "id": "c1", "exited_at": "2027-01-15T08:00:01Z"}
    assert parse_exit(_line("/tasks/exit", own, namespace="moby")) is None
    assert parse_exit("not an event") is None


def test_a_die_takes_the_runtimes_exit_over_the_apis_second() -> None:
    api_ns = 1_800_000_000 * S  # finishedAt, whole seconds
    exit_ns = api_ns + 123_456_789  # containerd's exited_at
    received = api_ns + 1_300_000_000  # the kubelet's PLEG saw it and the watch brought it
    at = stamp(received, api_ns, host_ns=exit_ns, host_resolution_ns=EXIT_RESOLUTION_NS)
    assert at.time_ns == exit_ns  # resolution 1 ns: the exit itself, the latest it can be
    assert at.attributes["time_source"] == "host"
