"""Abort stress: `harness run` killed at random instants, then the machine checked for leftovers.

    python -m bench.abort_stress [--runs 50] [--seed N] [--targets docker,podman,swarm,lab,kube]
                                 [--lab-ups 4] [--lab-kinds swarm,kubernetes] [--out DIR]

Runs: each picks a scenario from a catalogue that covers every fault kind, sixteen (Docker: all
eleven container, network, process and resource kinds; Podman and a single-node Swarm: a share
of them; the Swarm lab: node_down, node_partition, node_drain, manager_quorum_loss; the
Kubernetes lab, `kube`: pod_delete, container_kill, network_partition, bandwidth, cpu_stress,
and node_down, node_partition, node_drain on nodes 2 and 3, never node 1, where the load enters
by its NodePort), a signal (SIGINT, SIGTERM or SIGKILL) and an instant between the start and
the expected end of the run, all from one seeded random generator (the seed is printed); every
case at least once when the runs allow (fewer runs go to the targets in turn). `--targets`
defaults to all five, `kube` only when a Kubernetes build is cached (`harness lab build --kind
kubernetes`). The stress brings up the labs its runs need (a 3-node Swarm lab; a 3-node
Kubernetes lab with a 20 s node grace period) and takes them down at the end; a lab of that
kind already up is someone else's: its runs are skipped. Between runs on a lab, the stress
waits until the lab is healthy again. After the kill:
- SIGINT, SIGTERM: the harness must exit 128 + signal by itself, its run `aborted` with the
  signal; nothing else is done before the machine is checked (its own cleanup must suffice);
- SIGKILL: each fault still in place must be reverted by its lease at its deadline (checked in
  the undo log and the events, `by: lease`); then `harness cleanup` (the run's containers are
  still there: nobody tore them down), and the run must say `aborted`.
- killed before it wrote its manifest (phase `preflight`: no run directory; `before its
  manifest`: a SIGKILL in the few ms between making the directory and writing the manifest
  leaves it empty): it made nothing to undo, so nothing may be left (no process of its
  session, none naming its results, nothing of its run id), `harness cleanup` must exit 0
  with nothing to do for it, and a SIGINT or SIGTERM must end it by the signal, untraced.
Then the machine is asked (bench.leftovers): containers, networks, volumes and services of the
run on the host's engine, the Swarm lab's nodes and Podman's store; the run's bridges; rules of
the run in every iptables table of the host and of every named network namespace; its
processes (Locust, reapers, latency proxies, stress-ng: by run id or run directory in their
command line, environment or working directory); Podman services; a lab whose nodes are not
all ready, active, linked and running; and two bystander containers made without the run label
(same ids, restart counts, start times, PIDs, rules, no qdisc). A run on the Kubernetes lab
also: its namespace and any object labelled with the run, in any namespace (the lab's API
server, through the official client); then, given up to a minute for Kubernetes' own cleanup,
kube-proxy's rules for its Service, containers of pods the API server no longer has, and
rules of the run or harness qdiscs in every pod's network namespace (entered by its
processes: containerd keeps them in the node's mount namespace); and a lab whose control
plane, containerd, kubelet or kube-proxy is not running, or a node NotReady, cordoned or with
its link down.

Lab ups (`--lab-ups` per kind): `harness lab up` killed at a random instant with a random
signal; then `harness lab down` and `harness cleanup` must leave nothing of the lab
(namespaces, links, processes, mounts, rules, cgroups, files), and a second `harness lab up`
must work. A lab of that kind already up (someone else's) is left alone: that kind is skipped.
`--lab-kinds` defaults to both, `kubernetes` only when its build is cached, as for `kube`.

Prints the counts: runs, kills per signal and per phase, leftovers on the machine and wrong
behaviour (an exit code, a manifest, a traceback, a lease that did not act), the target being
zero for both, and each one found. Exit code 1 when there is any.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import yaml

from bench.leftovers import (
    Bystanders,
    RunSightings,
    kube_lab_health,
    kube_lagging,
    kube_leftovers,
    lab_health,
    processes_mentioning,
    run_leftovers,
    session_processes,
)
from harness.hostsys import process_start_ticks
from harness.journal import Journal
from harness.lease import GRACE_NS
from harness.results import RunDir, read_json_lines

REPO = Path(__file__).resolve().parent.parent
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
LAB_NODES, LAB_MANAGERS, LAB_HEARTBEAT = 3, 3, "2s"
LAB = {"nodes": LAB_NODES, "managers": LAB_MANAGERS, "heartbeat": LAB_HEARTBEAT}
# the Kubernetes lab: a node whose kubelet stays away is marked lost within 20 s (Kubernetes'
# default: 50 s), so a revert that never came shows as NotReady within the health wait; the
# node faults last 8 s, below it, so a node reverted in time is never marked lost
KUBE_NODES = 3
KUBE_ARGS = ("kube-controller-manager:--node-monitor-grace-period=20s",)
NODE_FAULTS = frozenset({"node_down", "node_partition", "node_drain", "manager_quorum_loss"})
TARGETS = ("docker", "podman", "swarm", "lab", "kube")
# the phases of a run killed before it wrote anything: no run directory, or one without manifest
PREFLIGHT, BEFORE_MANIFEST = "preflight", "before its manifest"


# --- the catalogue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One scenario of the catalogue: a fault kind on a target."""

    target: str  # docker, podman, swarm, lab (the Swarm lab), kube (the Kubernetes lab)
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    one_off: bool = False

    @property
    def name(self) -> str:
        return f"{self.kind} on {self.target}"

    @property
    def on_lab(self) -> bool:
        """A run on a lab the stress brings up (whose health it waits for)."""
        return self.target in ("lab", "kube")

    def scenario(self) -> dict[str, Any]:
        lab = self.on_lab
        at, duration, load = (5, 8, 22) if lab else (3, 6, 14)
        fault: dict[str, Any] = {"kind": self.kind, "at": f"{at}s", **self.params}
        if not self.one_off:
            fault["duration"] = f"{duration}s"
        if self.kind not in NODE_FAULTS and "select" not in self.params:
            fault["select"] = {"count": 1}
        target: Any = {"lab": "swarm", "kube": "kubernetes"}.get(self.target, self.target)
        if self.target == "lab":
            target = {"kind": "swarm", "lab": LAB, "swarm": {"restart_delay": "1s"}}
        return {
            "name": f"abort-{self.kind.replace('_', '-')}",
            "target": target,
            "workload": {
                "image": "demo",
                # on Kubernetes a pod on each of the three nodes: every node fault moves one
                "replicas": 3 if self.target == "kube" else 2,
                "resources": {"cpus": 0.25, "memory": "64Mi"},
            },
            "load": {"users": 4, "spawn_rate": 4, "duration": f"{load}s"},
            "probes": {"interval": "200ms"},
            "faults": [fault],
            "slo": {},
        }

    def expected_s(self) -> float:
        """Start to exit of an undisturbed run, roughly (the kill instant is drawn below it)."""
        return 38.0 if self.on_lab else 24.0


CONTAINER_FAULTS = [
    Case("docker", "container_kill", one_off=True),
    Case("docker", "container_stop", {"timeout": "1s"}),
    Case("docker", "container_pause"),
    Case("docker", "container_restart", {"timeout": "1s"}, one_off=True),
    Case("docker", "cpu_stress", {"workers": 1}),
    Case("docker", "memory_stress", {"percent": 50}),
    Case("docker", "disk_fill", {"size": "16Mi"}),
    Case("docker", "network_partition", {"from": "all"}),
    Case("docker", "packet_loss", {"percent": 30}),
    Case("docker", "bandwidth", {"rate": "1mbit"}),
    Case("docker", "latency", {"delay": "50ms"}),
]
CATALOGUE: dict[str, list[Case]] = {
    "docker": CONTAINER_FAULTS,
    "podman": [
        Case("podman", "container_kill", one_off=True),
        Case("podman", "container_pause"),
        Case("podman", "network_partition", {"from": "load"}),
        Case("podman", "cpu_stress", {"workers": 1}),
        Case("podman", "disk_fill", {"size": "16Mi"}),
        Case("podman", "latency", {"delay": "50ms"}),
    ],
    "swarm": [
        Case("swarm", "container_kill", one_off=True),
        Case("swarm", "packet_loss", {"percent": 30}),
        Case("swarm", "memory_stress", {"percent": 50}),
        Case("swarm", "bandwidth", {"rate": "1mbit"}),
    ],
    "lab": [
        Case("lab", "node_down", {"mode": "daemon"}),
        Case("lab", "node_partition", {"mode": "link"}),
        Case("lab", "node_drain"),
        Case("lab", "manager_quorum_loss", {"mode": "daemon"}),
    ],
    # Kubernetes refuses container_stop, _pause, _restart and manager_quorum_loss (validate)
    "kube": [
        Case("kube", "pod_delete", {"grace_period": "0s"}, one_off=True),
        Case("kube", "pod_delete", {"grace_period": "2s"}, one_off=True),
        Case("kube", "container_kill", one_off=True),
        Case("kube", "network_partition", {"from": "all"}),
        Case("kube", "bandwidth", {"rate": "1mbit"}),
        Case("kube", "cpu_stress", {"workers": 1}),
        # named nodes: never n1, whose NodePort the load enters by
        Case("kube", "node_down", {"mode": "daemon", "node": "n3"}),
        Case("kube", "node_partition", {"mode": "link", "node": "n2"}),
        Case("kube", "node_drain", {"node": "n3"}),
    ],
}


def plan(
    runs: int,
    targets: list[str],
    rng: random.Random,
    signals: tuple[int, ...] | None = None,
    kinds: tuple[str, ...] | None = None,
    window: tuple[float, float] | None = None,
) -> list[tuple[Case, int, float]]:
    """`runs` (case, signal, kill instant) triples; every case of the chosen targets (and
    kinds) at least once when `runs` allows, the rest drawn at random; fewer runs than cases
    are shared out among the targets in turn. `signals`: used in turn instead of drawn."""
    per_target = [[c for c in CATALOGUE[t] if kinds is None or c.kind in kinds] for t in targets]
    cases = [c for group in per_target for c in group]
    # in turn: 12 runs over five targets are 3, 3, 2, 2, 2, not the first target's 11 and one
    in_turn = [c for row in itertools.zip_longest(*per_target) for c in row if c is not None]
    first = cases if runs >= len(cases) else in_turn[:runs]
    chosen = first + [rng.choice(cases) for _ in range(max(0, runs - len(cases)))]
    rng.shuffle(chosen)
    return [
        (
            case,
            signals[i % len(signals)] if signals else rng.choice(SIGNALS),
            rng.uniform(*(window or (0.3, case.expected_s()))),
        )
        for i, case in enumerate(chosen)
    ]


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    signum: int
    at_s: float
    phase: str
    run_id: str | None
    leftovers: list[str]  # on the machine: objects, rules, processes, a lab not healthy
    problems: list[str] = field(default_factory=list)  # behaviour: exit code, manifest, lease
    lease_reverts: int = 0


def _harness(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def _harness_done(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def manifest_of(run_dir: Path) -> dict[str, Any] | None:
    """The run's manifest, or None when there is none (yet): a harness killed between making
    the run directory and writing its manifest leaves a directory without one."""
    try:
        data = json.loads(RunDir(run_dir).manifest.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def phase_of(out: Path) -> str:
    """Where a run is now, from its directory: preflight (none yet), before its manifest,
    deploy, load, fault, teardown, done."""
    dirs = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    if not dirs:
        return PREFLIGHT
    run = RunDir(dirs[0])
    manifest = manifest_of(run.path)
    if manifest is None:
        return BEFORE_MANIFEST
    if manifest.get("status") != "running":
        return "done"
    events = [e for e in read_json_lines(run.events) if e.get("source") == "harness"]
    actions = [e.get("action") for e in events]
    if "load_stop" in actions:
        return "teardown"
    lasting = [
        e
        for e in events
        if e.get("action") == "fault_inject" and e["attributes"].get("has_duration")
    ]
    if len(lasting) > actions.count("fault_revert"):
        return "fault"
    if "load_start" in actions:
        return "load"
    return "deploy"


class Run:
    """One `harness run`, watched while it goes, killed at its instant, then checked."""

    def __init__(self, case: Case, signum: int, at_s: float, work: Path) -> None:
        self.case, self.signum, self.at_s = case, signum, at_s
        self.out = work / "runs"
        self.scenario = work / "scenario.yaml"
        self.scenario.write_text(yaml.safe_dump(case.scenario()))
        self.sightings = RunSightings()
        self.notes: list[str] = []

    def run_dir(self) -> Path | None:
        dirs = [p for p in self.out.iterdir() if p.is_dir()] if self.out.exists() else []
        return dirs[0] if dirs else None

    def go(self, client: docker.DockerClient) -> Outcome:
        wait_lab_healthy(self.case.target)  # a node fault of the run before is back
        process = _harness("run", str(self.scenario), "--out", str(self.out))
        phase = self._kill_at_instant(process, client)
        try:
            _stdout, stderr = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            process.kill()
            _stdout, stderr = process.communicate()
            self.notes.append("the harness did not exit within 240 s of the signal")
        return self.check(phase, process.pid, process.returncode, stderr, client)

    def _kill_at_instant(self, process: subprocess.Popen[str], client: docker.DockerClient) -> str:
        """Watch the run until its instant, then send the signal; the phase it fell in."""
        started = time.monotonic()
        while time.monotonic() - started < self.at_s:
            if process.poll() is not None:
                return "finished before the kill"
            self._look(client)
            time.sleep(min(0.25, max(0.0, self.at_s - (time.monotonic() - started))))
        if process.poll() is not None:
            return "finished before the kill"
        phase = phase_of(self.out)
        os.kill(process.pid, self.signum)
        return phase

    def check(
        self, phase: str, pid: int, code: int | None, stderr: str, client: docker.DockerClient
    ) -> Outcome:
        """How the killed harness (`pid`, exit `code`) behaved and what its run left."""
        problems = list(self.notes)
        run_dir = self.run_dir()
        lease_reverts = 0
        if phase == "finished before the kill":
            pass
        elif run_dir is None or manifest_of(run_dir) is None:
            phase = PREFLIGHT if run_dir is None else BEFORE_MANIFEST
            found, after = self._before_anything(pid, code, stderr, run_dir, client)
            return self._outcome(phase, run_dir, found, problems + after)
        elif self.signum == signal.SIGKILL:
            lease_reverts, after = self._after_sigkill(run_dir)
            problems += after
        elif phase == "done":
            problems += self._after_the_end(run_dir)  # the CLI was analysing: still completed
        else:
            problems += self._after_own_cleanup(code, stderr, run_dir, phase)
        found = self._machine_leftovers(run_dir, client)
        found += wait_lab_healthy(self.case.target)
        if self.case.target == "kube" and run_dir is not None:
            found += wait_kube_settled(run_dir.name)
        return self._outcome(phase, run_dir, found, problems, lease_reverts)

    def _outcome(
        self,
        phase: str,
        run_dir: Path | None,
        leftovers: list[str],
        problems: list[str],
        lease_reverts: int = 0,
    ) -> Outcome:
        run_id = run_dir.name if run_dir else None
        return Outcome(
            self.case, self.signum, self.at_s, phase, run_id, leftovers, problems, lease_reverts
        )

    def _machine_leftovers(self, run_dir: Path | None, client: docker.DockerClient) -> list[str]:
        """What the machine still holds of the run (its engines, rules, processes, lab)."""
        if run_dir is None:
            return []
        self.sightings.look(client, run_dir.name, run_dir)
        found = run_leftovers(run_dir.name, run_dir, self.sightings, client)
        if self.case.target == "kube":
            found += kube_leftovers(run_dir.name)
        return found

    def _before_anything(
        self,
        pid: int,
        code: int | None,
        stderr: str,
        run_dir: Path | None,
        client: docker.DockerClient,
    ) -> tuple[list[str], list[str]]:
        """A harness killed before it wrote its manifest (no run directory, or one without a
        manifest) made nothing that needs undoing: the machine holds nothing of it (nothing
        in its session, nothing naming its results or run), and `harness cleanup` finds
        nothing of it to do. SIGINT and SIGTERM are deferred while the directory is made, so
        only a SIGKILL may leave a directory without a manifest. (leftovers, problems)"""
        problems = []
        if self.signum != signal.SIGKILL:
            if run_dir is not None:
                problems.append(f"a run directory without a manifest after {_name(self.signum)}")
            if code not in (128 + self.signum, -self.signum):
                problems.append(f"exit code {code} before the run began: {stderr[-600:]}")
            if stderr.rstrip().endswith("KeyboardInterrupt"):
                problems.append(
                    "SIGINT while Python loaded the harness's CLI (before its handlers): a "
                    f"KeyboardInterrupt traceback, exit {code}: {stderr[-300:]}"
                )
            elif "Traceback" in stderr:
                problems.append(f"a traceback: {stderr[-1500:]}")
        found = session_processes(pid) + processes_mentioning(str(self.out))
        found += self._machine_leftovers(run_dir, client)
        found += wait_lab_healthy(self.case.target)
        done = _harness_done("cleanup", "--results", str(self.out))
        (self.out.parent / "cleanup.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            problems.append(f"harness cleanup exited {done.returncode}: {done.stderr[-800:]}")
        run_line = re.compile(rf"{re.escape(self.case.scenario()['name'])}-\d{{8}}-\d{{6}}-\w+: ")
        found += [
            f"harness cleanup had to act: {line}"
            for line in done.stdout.splitlines()
            if run_line.match(line) and "nothing" not in line
        ]
        return found, problems

    def _look(self, client: docker.DockerClient) -> None:
        run_dir = self.run_dir()
        if run_dir is not None:
            self.sightings.look(client, run_dir.name, run_dir)

    def _after_own_cleanup(
        self, code: int | None, stderr: str, run_dir: Path, phase: str
    ) -> list[str]:
        """SIGINT/SIGTERM: the harness cleaned up itself and says so. During its cleanup
        (teardown) a signal is noted, the cleanup goes on, and a run whose load had ended
        says `completed`, with the signal noted."""
        problems = []
        name = signal.Signals(self.signum).name
        if "Traceback" in stderr:
            problems.append(f"a traceback: {stderr[-1500:]}")
        manifest = manifest_of(run_dir) or {}
        noted = name in (manifest.get("signals_during_cleanup") or [])
        if phase == "teardown" and manifest.get("status") == "completed" and noted:
            pass  # the signal came during the cleanup of a run that had ended
        elif code != 128 + self.signum:
            problems.append(f"exit code {code}, not {128 + self.signum}: {stderr[-600:]}")
        elif (
            manifest.get("status") != "aborted"
            or (manifest.get("abort") or {}).get("signal") != name
        ):
            problems.append(f"manifest says {manifest.get('status')} {manifest.get('abort')}")
        outstanding = Journal(RunDir(run_dir).journal).outstanding()
        if outstanding:
            problems.append(f"faults left in place: {[o.record.fault_id for o in outstanding]}")
        return problems

    def _after_the_end(self, run_dir: Path) -> list[str]:
        """A kill after the run's own end (its analysis): the run is complete as it says."""
        status = (manifest_of(run_dir) or {}).get("status")
        return [] if status == "completed" else [f"the ended run says {status}"]

    def _after_sigkill(self, run_dir: Path) -> tuple[int, list[str]]:
        """SIGKILL: the leases revert what is in place; then `harness cleanup`."""
        reverted, problems = wait_for_leases(RunDir(run_dir))
        wait_lab_healthy(self.case.target)  # `harness cleanup` once the lab answers again
        done = _harness_done("cleanup", "--results", str(self.out))
        (self.out.parent / "cleanup.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            problems.append(f"harness cleanup exited {done.returncode}: {done.stderr[-800:]}")
        status = (manifest_of(run_dir) or {}).get("status")
        if status not in ("aborted", "completed"):
            problems.append(f"after cleanup the manifest says {status}")
        return reverted, problems


def wait_lab_healthy(target: str, timeout_s: float = 120.0) -> list[str]:
    """Wait until every node of the run's lab is back (a node a fault took down comes back
    some seconds after its revert): the Swarm lab's up, ready, active and linked; the
    Kubernetes lab's running, Ready, schedulable and linked. What is still wrong after that."""
    health = {"lab": lab_health, "kube": kube_lab_health}.get(target)
    if health is None:
        return []
    deadline = time.monotonic() + timeout_s
    while (problems := health()) and time.monotonic() < deadline:
        time.sleep(1.0)
    return problems


def wait_kube_settled(run_id: str, timeout_s: float = 60.0) -> list[str]:
    """Give Kubernetes' own cleanup of the run (kube-proxy's next sync, the kubelet killing
    containers of deleted pods) up to `timeout_s`; what is still there after that."""
    deadline = time.monotonic() + timeout_s
    while (left := kube_lagging(run_id)) and time.monotonic() < deadline:
        time.sleep(1.0)
    return left


def wait_for_leases(run: RunDir, slack_s: float = 20.0) -> tuple[int, list[str]]:
    """Wait for each fault in place to be reverted by its lease; (how many, problems)."""
    journal = Journal(run.journal)
    pending = [o for o in journal.outstanding() if o.deadline_ns is not None]
    if not pending:
        return 0, []
    limit = max(o.deadline_ns or 0 for o in pending) + GRACE_NS + int(slack_s * 1e9)
    while time.time_ns() < limit and any(
        o.record.fault_id in {p.record.fault_id for p in journal.outstanding()} for o in pending
    ):
        time.sleep(0.2)
    left = {o.record.fault_id for o in journal.outstanding()}
    problems = [
        f"lease did not revert {o.record.fault_id}" for o in pending if o.record.fault_id in left
    ]
    by_lease = {
        e["attributes"].get("fault_id")
        for e in read_json_lines(run.events)
        if e.get("action") == "fault_revert" and (e.get("attributes") or {}).get("by") == "lease"
    }
    return len(by_lease), problems


# --- lab ups ------------------------------------------------------------------------------------


@dataclass
class LabOutcome:
    kind: str
    signum: int
    at_s: float
    phase: str
    leftovers: list[str]
    second_up_s: float | None
    problems: list[str] = field(default_factory=list)


def _lab_state(kind: str) -> Any:
    from harness.labs.kubernetes import lab as kube_lab
    from harness.labs.swarm import lab

    with contextlib.suppress(Exception):
        return lab.load_state() if kind == "swarm" else kube_lab.load_state()
    return "unreadable"


def _lab_leftovers(kind: str) -> list[str]:
    from harness.labs import host
    from harness.labs.kubernetes import lab as kube_lab
    from harness.labs.swarm import lab

    if kind == "kubernetes":
        return kube_lab.leftovers(kube_lab.lab_dir(), kube_lab.run_root())
    prefix = lab.PREFIX

    def out(*args: str) -> str:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout

    found = [f"netns {x}" for x in out("ip", "netns", "list").splitlines() if prefix in x]
    found += [f"link {x}" for x in out("ip", "-br", "link").splitlines() if prefix in x]
    found += [
        f"process {x}"
        for x in out("ps", "-eo", "pid,stat,args").splitlines()
        if (prefix in x or str(lab.lab_dir()) in x) and " Z" not in x and "abort_stress" not in x
    ]
    found += [
        f"mount {x}" for x in Path("/proc/self/mountinfo").read_text().splitlines() if prefix in x
    ]
    rules = out("iptables-save")
    found += [f"rule {x}" for x in rules.splitlines() if lab.RULE_COMMENT in x]
    # every hierarchy mounted here (v1, hybrid or pure v2), read from mountinfo
    found += [f"cgroup {p}" for p in host.leftover_cgroups(f"{prefix}-n")]
    found += [f"path {p}" for p in (Path("/run/chlab"), lab.lab_dir() / "state.json") if p.exists()]
    return found


def lab_up_once(kind: str, signum: int, at_s: float, results: Path) -> LabOutcome | None:
    """Kill one `harness lab up` at `at_s`; down + cleanup; check; a second up must work."""
    if _lab_state(kind) is not None or _lab_bridge(kind).exists():
        return None  # someone's lab, or one on its way: never touched
    nodes = "2" if kind == "swarm" else "1"
    process = _harness("lab", "up", "--kind", kind, "--nodes", nodes)
    ticks = process_start_ticks(process.pid)
    started = time.monotonic()
    while time.monotonic() - started < at_s and process.poll() is None:
        time.sleep(0.05)
    state = _lab_state(kind)
    phase = (
        "finished"
        if process.poll() is not None
        else (
            "before its state file" if state is None else f"state {getattr(state, 'status', '?')}"
        )
    )
    if process.poll() is None:
        os.kill(process.pid, signum)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.communicate(timeout=180)
    state = _lab_state(kind)
    if state is not None and getattr(state, "creator", None) not in (
        None,
        f"{process.pid}:{ticks}",
    ):
        return LabOutcome(
            kind, signum, at_s, phase, ["a lab of someone else appeared: stopped"], None
        )
    problems = []
    for command in (["lab", "down", "--kind", kind], ["cleanup", "--results", str(results)]):
        done = _harness_done(*command)
        if done.returncode != 0:
            problems.append(
                f"harness {' '.join(command)}: exit {done.returncode}: {done.stderr[-600:]}"
            )
    found = _lab_leftovers(kind)
    second = time.monotonic()
    up = _harness_done("lab", "up", "--kind", kind, "--nodes", nodes, timeout=600)
    second_up_s: float | None = time.monotonic() - second
    if up.returncode != 0:
        problems.append(f"the second lab up failed: {up.stderr[-800:]}")
        second_up_s = None
    down = _harness_done("lab", "down", "--kind", kind)
    if down.returncode != 0:
        problems.append(f"lab down after the second up: {down.stderr[-600:]}")
    found += [f"after the second up and down: {x}" for x in _lab_leftovers(kind)]
    return LabOutcome(kind, signum, at_s, phase, found, second_up_s, problems)


# --- the whole stress ---------------------------------------------------------------------------


@dataclass
class Report:
    seed: int
    outcomes: list[Outcome] = field(default_factory=list)
    labs: list[LabOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def leftovers(self) -> int:
        return sum(len(o.leftovers) for o in self.outcomes) + sum(
            len(o.leftovers) for o in self.labs
        )

    @property
    def problems(self) -> int:
        return sum(len(o.problems) for o in self.outcomes) + sum(len(o.problems) for o in self.labs)

    def lines(self) -> Iterator[str]:
        yield f"seed {self.seed}"
        targets = Counter(o.case.target for o in self.outcomes)
        yield f"runs {len(self.outcomes)}: {_counts(targets)}"
        kinds = sorted({o.case.kind for o in self.outcomes})
        yield f"fault kinds {len(kinds)}: " + ", ".join(kinds)
        yield f"kills per signal: {_counts(Counter(_name(o.signum) for o in self.outcomes))}"
        yield f"kills per phase: {_counts(Counter(o.phase for o in self.outcomes))}"
        lease = sum(o.lease_reverts for o in self.outcomes)
        yield f"faults reverted by their lease after a SIGKILL: {lease}"
        if self.labs:
            kills = Counter(f"{o.kind} {_name(o.signum)} {o.phase}" for o in self.labs)
            yield f"lab ups killed {len(self.labs)}: {_counts(kills)}"
            ups = [o.second_up_s for o in self.labs if o.second_up_s is not None]
            if ups:
                yield (
                    f"second lab up worked {len(ups)} of {len(self.labs)} times "
                    f"({min(ups):.1f}-{max(ups):.1f} s)"
                )
        yield from (f"skipped: {s}" for s in self.skipped)
        yield f"leftovers on the machine {self.leftovers}"
        yield f"wrong behaviour (exit code, manifest, traceback, lease) {self.problems}"
        for o in self.outcomes:
            where = f"{o.case.name}, {_name(o.signum)} at {o.at_s:.1f} s, {o.phase}"
            yield from (f"  {o.run_id or '-'} ({where}): {x}" for x in o.leftovers + o.problems)
        for lab in self.labs:
            where = f"{_name(lab.signum)} at {lab.at_s:.1f} s, {lab.phase}"
            yield from (f"  lab {lab.kind} ({where}): {x}" for x in lab.leftovers + lab.problems)


def _name(signum: int) -> str:
    return signal.Signals(signum).name


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))


# the labs the runs need: (target, lab kind, `harness lab up` options, what to call it)
RUN_LABS = (
    (
        "lab",
        "swarm",
        ("--nodes", str(LAB_NODES), "--managers", str(LAB_MANAGERS), "--heartbeat", LAB_HEARTBEAT),
        "Swarm lab",
    ),
    (
        "kube",
        "kubernetes",
        ("--nodes", str(KUBE_NODES), *(f"--control-plane-args={a}" for a in KUBE_ARGS)),
        "Kubernetes lab",
    ),
)


def _lab_up(kind: str, options: tuple[str, ...], what: str) -> Callable[[], None] | None:
    """Bring one lab of the stress's up; the returned function takes it down. None when the
    up failed because another lab of that kind is there or on its way (its state, or its
    bridge before its state): someone's, never taken down here."""
    process = _harness("lab", "up", "--kind", kind, *options)
    mine = f"{process.pid}:{process_start_ticks(process.pid)}"
    try:
        _stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.terminate()  # a stopped `lab up` removes what it made so far
        _stdout, stderr = process.communicate(timeout=180)
    if process.returncode == 0:
        return lambda: _lab_down(kind, what)
    state = _lab_state(kind)
    if state is None and not _lab_bridge(kind).exists():
        raise RuntimeError(f"cannot bring the {what} up: {stderr[-800:]}")
    if getattr(state, "creator", None) != mine:
        return None
    _harness_done("lab", "down", "--kind", kind)  # what our own failed up left
    raise RuntimeError(f"cannot bring the {what} up: {stderr[-800:]}")


def _lab_down(kind: str, what: str) -> None:
    down = _harness_done("lab", "down", "--kind", kind)
    if down.returncode != 0:
        print(f"taking the {what} down failed: {down.stderr[-800:]}", file=sys.stderr)


def _lab_bridge(kind: str) -> Path:
    from harness.labs.kubernetes.state import BRIDGE as KUBE_BRIDGE
    from harness.labs.swarm.lab import BRIDGE as SWARM_BRIDGE

    return Path("/sys/class/net") / (KUBE_BRIDGE if kind == "kubernetes" else SWARM_BRIDGE)


def labs_for(targets: list[str], report: Report) -> tuple[list[str], list[Callable[[], None]]]:
    """Bring up the labs the targets need; a lab already up or coming up (someone's) drops
    its target. The targets left, and what takes down each lab brought up here."""
    downs: list[Callable[[], None]] = []
    try:
        for target, kind, options, what in RUN_LABS:
            if target not in targets:
                continue
            down = None if _lab_state(kind) is not None else _lab_up(kind, options, what)
            if down is None:
                report.skipped.append(f"{what} runs: another {what} is up (someone's)")
                targets = [t for t in targets if t != target]
            else:
                downs.append(down)
    except BaseException:
        for down in downs:
            down()
        raise
    return targets, downs


def kube_build_cached() -> bool:
    """Whether a Kubernetes build is in the cache (`harness lab build --kind kubernetes`)."""
    from harness.labs.kubernetes import build

    try:
        return build.planned()[0].valid()
    except Exception:  # no Go, no module: no build either
        return False


def default_targets() -> str:
    return ",".join(t for t in TARGETS if t != "kube" or kube_build_cached())


def default_lab_kinds() -> str:
    """Both kinds of lab; the Kubernetes one only when built (else its `lab up` cannot work)."""
    return "swarm,kubernetes" if kube_build_cached() else "swarm"


def stress(
    runs: int,
    seed: int,
    targets: list[str],
    lab_ups: int = 0,
    lab_kinds: tuple[str, ...] = ("swarm", "kubernetes"),
    work: Path | None = None,
    say: Callable[[str], None] = print,
    signals: tuple[int, ...] | None = None,
    kinds: tuple[str, ...] | None = None,
    window: tuple[float, float] | None = None,
) -> Report:
    rng = random.Random(seed)
    report = Report(seed)
    work = work or Path(tempfile.mkdtemp(prefix="abort-stress-"))
    client = docker.from_env()
    subprocess.run(
        [sys.executable, "-m", "harness", "build-images"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    bystanders = Bystanders(client)
    take_labs_down: list[Callable[[], None]] = []
    try:
        targets, take_labs_down = labs_for(targets, report)
        planned = plan(runs, targets, rng, signals, kinds, window)
        for index, (case, signum, at_s) in enumerate(planned, start=1):
            directory = work / f"run-{index:03d}"
            directory.mkdir(parents=True)
            try:
                outcome = Run(case, signum, at_s, directory).go(client)
            except Exception as exc:  # the stress goes on; the failure is a finding
                outcome = Outcome(
                    case, signum, at_s, "?", None, [], [f"the stress failed: {exc!r}"]
                )
            outcome.leftovers += bystanders.changed()
            report.outcomes.append(outcome)
            say(
                f"{index}/{runs} {case.name}: {signal.Signals(signum).name} at {at_s:.1f} s "
                f"({outcome.phase}) -> {len(outcome.leftovers)} leftover(s), "
                f"{len(outcome.problems)} problem(s)"
            )
    finally:
        for take_down in take_labs_down:
            take_down()
        bystanders.remove()
    for kind in lab_kinds if lab_ups else ():
        for round_ in range(lab_ups):
            signum = rng.choice(SIGNALS)
            # measured here: `lab up` of 2 Swarm nodes or 1 Kubernetes node takes 3.5-7 s
            at_s = rng.uniform(0.2, 5.0)
            result = lab_up_once(kind, signum, at_s, work / "lab-results")
            if result is None:
                report.skipped.append(f"{kind} lab ups: a {kind} lab is already up (someone's)")
                break
            report.labs.append(result)
            say(
                f"lab {kind} {round_ + 1}/{lab_ups}: {signal.Signals(signum).name} at {at_s:.1f} s "
                f"({result.phase}) -> {len(result.leftovers)} leftover(s), "
                f"{len(result.problems)} problem(s)"
            )
    return report


def _stop(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--targets", default=None, help=f"of {','.join(TARGETS)} (default: all; kube if built)"
    )
    parser.add_argument("--lab-ups", type=int, default=4, help="killed `lab up`s per lab kind")
    parser.add_argument(
        "--lab-kinds", default=None, help="of swarm,kubernetes (default: both; kubernetes if built)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="work directory (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    targets = [t for t in (args.targets or default_targets()).split(",") if t]
    if unknown := sorted(set(targets) - set(TARGETS)):
        parser.error(f"--targets: no target {', '.join(unknown)} (of {', '.join(TARGETS)})")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    signal.signal(signal.SIGTERM, _stop)  # stopped: the bystanders and the lab still go
    # started in the background, this process may ignore SIGINT, and its children would
    # inherit that (Python leaves an ignored SIGINT ignored): they must see it as a user would
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"seed {seed}", flush=True)
    started = time.monotonic()
    report = stress(
        args.runs,
        seed,
        targets,
        args.lab_ups,
        tuple(k for k in (args.lab_kinds or default_lab_kinds()).split(",") if k),
        args.out,
        say=lambda line: print(line, flush=True),
    )
    for line in report.lines():
        print(line)
    print(f"took {time.monotonic() - started:.0f} s")
    return 1 if report.leftovers or report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
