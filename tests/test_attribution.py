"""Success attribution through the service: the demo workload names the replica that served a
request in X-Served-By, the recorder keeps that value per request (served_by), and the analysis
attributes successes to their instance; failures without a response stay unattributed.

The real run: three demo replicas on Docker behind the harness's service address, loaded by the
bundled locustfile, one replica stopped halfway; the header values are held against the
replicas' hostnames as `docker inspect` gives them. The mapping and the per-fault figures are
checked on constructed inputs, their expected values worked out by hand.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import docker
import numpy as np
import pandas as pd
import pytest

from harness.analysis.observations import RunObservations, instance_hostnames, served_column
from harness.analysis.response import served_through_service
from harness.load import LoadPath, LoadPlan, LoadRun, collect_requests
from harness.scenario import LoadSpec
from harness.workload import DEMO_ATTRIBUTION_HEADER
from tests.conftest import DeployFactory

# --- constructed inputs -----------------------------------------------------------------------


def _events(rows: list[tuple[str | None, str | None, dict[str, object]]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time_ns": list(range(len(rows))),
            "source": ["engine"] * len(rows),
            "action": ["start"] * len(rows),
            "instance": [r[0] for r in rows],
            "container_id": [r[1] for r in rows],
            "attributes": [r[2] for r in rows],
        }
    )


def test_hostnames_name_instances_by_their_name_pod_or_short_container_id() -> None:
    events = _events(
        [
            ("web-1", "0123456789abcdef0123", {}),  # Docker: hostname = the instance name
            ("web-2", "fedcba9876543210fedc", {"pod": "web-7d9c-x2x"}),  # a Kubernetes pod
            ("web-2", None, {"pod": "web-7d9c-q8q"}),  # its replacement, in the same slot
            (None, None, {"pod": "stray"}),  # no instance: names nobody
        ]
    )
    names = instance_hostnames(events, ["web-1", "web-2", "web-3"])
    assert names["web-3"] == "web-3"
    assert names["0123456789ab"] == "web-1"
    assert names["web-7d9c-x2x"] == names["web-7d9c-q8q"] == "web-2"
    assert "stray" not in names
    requests = pd.DataFrame({"served_by": ["web-1", "web-7d9c-q8q", None, "elsewhere"]})
    served = served_column(requests, names)
    assert served.iloc[:2].tolist() == ["web-1", "web-2"] and served.iloc[2:].isna().all()


def test_served_through_service_counts_each_targets_successes_and_its_return() -> None:
    # t0 = 1000; the outage began at 1100 (the first failure); the window ends at 2000.
    # web-3 served 500 (before t0), 1050 (sent 1010, in window), then nothing until the
    # request sent at 1500, done at 1520; web-1 served throughout; one failure has no server.
    requests = pd.DataFrame(
        {
            "start_ns": [490, 1010, 1100, 1200, 1500, 1600, 2500],
            "end_ns": [500, 1050, 1190, 1210, 1520, 1610, 2510],
            "ok": [True, True, False, True, True, True, True],
            "endpoint": ["service"] * 7,
            "served_by": ["web-3", "web-3", None, "web-1", "web-3", "web-1", "web-3"],
        }
    )
    probes = pd.DataFrame({"end_ns": [], "ok": [], "instance": []})
    observations = RunObservations.of(
        requests, probes, ["web-1", "web-3"], {"web-1": "web-1", "web-3": "web-3"}
    )
    served = served_through_service(observations, ["web-3", "web-1"], 1000, 1100, 2000)
    assert served is not None
    web3, web1 = (s.to_dict() for s in served)
    # web-3: 1050 and 1520 completed in [1000, 2000]; its first success sent at or after 1100
    # is the one sent at 1500 (done 1520): 520 ns after t0
    assert web3 == {
        "instance": "web-3",
        "served_in_window": 2,
        "first_served_at_ns": 1520,
        "first_served_after_s": round(520 / 1e9, 3),
    }
    assert web1["served_in_window"] == 2 and web1["first_served_at_ns"] == 1210
    # without a header nothing is attributed
    plain = RunObservations.of(requests.drop(columns="served_by"), probes, ["web-1"])
    assert served_through_service(plain, ["web-1"], 1000, 1100, 2000) is None


def test_the_demo_names_its_header_a_users_image_names_none() -> None:
    assert LoadSpec().attribution_header_for("demo") == DEMO_ATTRIBUTION_HEADER
    assert LoadSpec().attribution_header_for("nginx:1.27") is None
    assert LoadSpec(attribution_header="X-Pod").attribution_header_for("demo") == "X-Pod"


# --- a real run on Docker ---------------------------------------------------------------------


@pytest.mark.docker
def test_served_by_is_the_replicas_hostname_and_failures_stay_unattributed(
    deploy: DeployFactory, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    target = deploy(replicas=3)
    instances = target.instances()
    hostnames = {
        i.name: docker_client.api.inspect_container(i.container_id)["Config"]["Hostname"]
        for i in instances
    }
    url = target.service_url()
    plan = LoadPlan(
        users=3,
        spawn_rate=100,
        duration_s=6,
        endpoints=[("service", url)],
        host=url,
        record_dir=tmp_path / "load",
        paths=[LoadPath("/cgi-bin/work?ms=1", name="/work", weight=3), LoadPath("/", weight=1)],
        timeout_s=1.0,
        attribution_header=DEMO_ATTRIBUTION_HEADER,
    )
    stopped = instances[-1]
    killed_at: list[int] = []

    def kill() -> None:
        docker_client.containers.get(stopped.container_id).kill()
        killed_at.append(time.time_ns())

    stopper = threading.Timer(3.5, kill)
    with LoadRun(plan) as run:
        stopper.start()
        run.wait(timeout=60)
    stopper.join()
    requests = collect_requests(plan.record_dir)

    work = requests[(requests["name"] == "/work") & requests["ok"]]
    assert len(work) > 30
    assert set(work["served_by"]) == set(hostnames.values())  # every replica, nothing else
    # the static page carries no header (busybox httpd adds none to a file): unattributed
    assert requests.loc[requests["name"] == "/", "served_by"].isna().all()
    # the stopped replica's share failed without a response: nobody is named
    failed = requests[~requests["ok"]]
    assert len(failed) > 0 and failed["served_by"].isna().all()

    by_host = {host: name for name, host in hostnames.items()}
    requests["end_ns"] = requests["start_ns"] + (requests["latency_ms"] * 1e6).astype("int64")
    probes = pd.DataFrame({"end_ns": [], "ok": [], "instance": []})
    observations = RunObservations.of(requests, probes, list(hostnames), by_host)
    for name, host in hostnames.items():
        expected = int(((requests["served_by"] == host) & requests["ok"]).sum())
        assert int(np.sum(observations.served_by([name]).ok)) == expected
    # the killed replica served nothing sent after it was killed
    served = observations.served_by([stopped.name])
    assert len(served) > 0 and not np.any(served.start_ns > killed_at[0])
