"""Watch a `harness run` from outside, to check its numbers against facts it did not record.

`RunWitness(client, out_dir, instance)` waits for the run directory to appear under `out_dir`
and the instance to be deployed, then holds two independent observers on it:
- a pidfd on the instance's main process (bench.deathwatch): the instant the kernel saw it die;
- a packet capture on the run's bridge (bench.wire): when the instance last answered an HTTP
  request before that death, and first answered one after it (it is serving again).
Neither reads the harness's files, the engine's event stream or the load's request log.

    witness = RunWitness(docker_client, out, "web-2")
    ...  start `harness run --out out` in a subprocess
    witness.attach(timeout_s=90)
    ...  wait for the run to end
    facts = witness.facts()
    witness.close()
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.models.containers import Container

from bench.deathwatch import DeathWatch
from bench.wire import WireCapture
from harness.targets.base import INSTANCE_LABEL, RUN_LABEL


@dataclass(frozen=True)
class Facts:
    """What the witnesses saw of one instance's crash."""

    address: str
    died_at_ns: int | None
    last_answer_before_ns: int | None  # last HTTP response sent before the death
    first_answer_after_ns: int | None  # first HTTP response sent after it: serving again
    responses: int  # HTTP responses the instance sent while watched


class RunWitness:
    def __init__(
        self, client: docker.DockerClient, out_dir: Path, instance: str, port: int = 8080
    ) -> None:
        self.client = client
        self.out_dir = out_dir
        self.instance = instance
        self.port = port
        self.run_id: str | None = None
        self.address: str | None = None
        self._wire: WireCapture | None = None
        self._death: DeathWatch | None = None

    def attach(self, timeout_s: float) -> None:
        """Wait until the instance runs healthy, then start both witnesses on it."""
        deadline = time.monotonic() + timeout_s
        container = None
        while container is None and time.monotonic() < deadline:
            container = self._healthy_container()
            if container is None:
                time.sleep(0.1)
        if container is None:
            raise TimeoutError(f"{self.instance} of a run under {self.out_dir} never got healthy")
        network_name, settings = next(iter(container.attrs["NetworkSettings"]["Networks"].items()))
        self.address = str(settings["IPAddress"])
        self._wire = WireCapture(_bridge(self.client, network_name), self.port).start()
        self._death = DeathWatch(int(container.attrs["State"]["Pid"]))

    def _healthy_container(self) -> Container | None:
        if self.run_id is None:
            runs = sorted(self.out_dir.glob("*/manifest.json"))
            if not runs:
                return None
            self.run_id = runs[0].parent.name
        labels = [f"{RUN_LABEL}={self.run_id}", f"{INSTANCE_LABEL}={self.instance}"]
        found = self.client.containers.list(filters={"label": labels})
        if not found:
            return None
        state = found[0].attrs["State"]
        if state.get("Pid", 0) <= 0 or state.get("Health", {}).get("Status") != "healthy":
            return None
        return found[0]

    def died_at(self, timeout_s: float) -> int | None:
        assert self._death is not None, "attach() first"
        return self._death.wait(timeout_s)

    def facts(self) -> Facts:
        assert self._wire is not None and self._death is not None and self.address is not None
        self._wire.stop()
        died = self._death.died_at_ns
        answers = self._wire.responses(self.address)
        before = [t for t in answers if died is not None and t < died]
        after = [t for t in answers if died is not None and t > died]
        return Facts(
            address=self.address,
            died_at_ns=died,
            last_answer_before_ns=before[-1] if before else None,
            first_answer_after_ns=after[0] if after else None,
            responses=len(answers),
        )

    def close(self) -> None:
        if self._wire is not None:
            self._wire.stop()
        if self._death is not None:
            self._death.close()


def _bridge(client: docker.DockerClient, network_name: str) -> str:
    """The Linux bridge of a Docker bridge network."""
    network = client.networks.get(network_name)
    options = network.attrs.get("Options") or {}
    return str(options.get("com.docker.network.bridge.name") or f"br-{str(network.id)[:12]}")
