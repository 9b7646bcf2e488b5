"""A virtual service address spread over a run's replicas with iptables, as kube-proxy does.

The Docker and Podman engines have no load balancer, and Swarm's routing mesh needs IPVS, which
these machines lack. A load generator that takes one `--host` (a user's own locustfile) still
needs one address for the whole workload: `VirtualService` gives it one. A jump in the nat
OUTPUT chain sends new TCP connections to the virtual address (the host's own traffic: the load
runs here) into a chain of the run, where one rule per replica DNATs the connection with the
`statistic` match in random mode, probability 1/n, 1/(n-1), ..., the last unconditional: each
replica gets an equal share, as kube-proxy's iptables mode spreads a Service. The kernel keeps
each connection on the replica it was sent to (conntrack); a replica that is down gets its
share of new connections all the same, and they fail until it is back, as behind kube-proxy
without readiness.

The backends are replaced in one `iptables-restore --noflush` transaction (declaring the chain
flushes it inside the transaction), so a change never leaves a moment without rules. When a
backend moves (a Swarm slot's new task), the conntrack entries of connections sent to its old
destination are dropped, or a new connection reusing such a 5-tuple would follow the old one.

Everything carries the run: the jump's comment is `chaos-harness.run-id=<run> chaos-harness.owner
=<pid:start>`, the chain is named after a hash of the run id, and `remove_orphaned_chains`
removes the chains of runs whose owner is dead (`harness cleanup`), whichever router made them
(this one or Swarm's slot router).
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import shutil
import subprocess
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from harness.errors import TargetError
from harness.targets.base import OWNER_LABEL, RUN_LABEL, owner_alive

VIP_CHAIN_PREFIX = "CHAOS-VIP-"


def run_digest(run_id: str) -> bytes:
    return hashlib.sha256(run_id.encode()).digest()


def vip_chain(run_id: str) -> str:
    return VIP_CHAIN_PREFIX + run_digest(run_id).hex()[:12].upper()


def jump_comment(run_id: str, owner: str) -> str:
    return f"{RUN_LABEL}={run_id} {OWNER_LABEL}={owner}"


# --- iptables, nat table ----------------------------------------------------------------------


def nat(*args: str, check: bool = True) -> bool:
    """`iptables -t nat ARGS`; False (or TargetError with `check`) when it failed."""
    command = ["iptables", "-w", "5", "-t", "nat", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if check:
            raise TargetError(f"'{' '.join(command)}' could not run: {exc}") from exc
        return False
    if check and done.returncode != 0:
        raise TargetError(f"'{' '.join(command)}' failed: {done.stderr.strip()}")
    return done.returncode == 0


def replace_chain(chain: str, rules: Sequence[Sequence[str]]) -> None:
    """Make `chain` (nat) hold exactly `rules`, in one transaction."""
    lines = ["*nat", f":{chain} - [0:0]"]
    lines += [shlex.join(["-A", chain, *rule]) for rule in rules]
    lines.append("COMMIT")
    command = ["iptables-restore", "-w", "5", "--noflush"]
    try:
        done = subprocess.run(
            command, input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=15
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"iptables-restore could not run: {exc}") from exc
    if done.returncode != 0:
        raise TargetError(f"iptables-restore of chain {chain} failed: {done.stderr.strip()}")


def spread_rules(backends: Sequence[tuple[str, int]]) -> list[list[str]]:
    """One DNAT rule per backend, each taking an equal share of new connections."""
    rules = []
    count = len(backends)
    for index, (address, port) in enumerate(backends):
        left = count - index
        chance = [] if left == 1 else ["-m", "statistic", "--mode", "random"]
        chance += [] if left == 1 else ["--probability", f"{1 / left:.10f}"]
        rules.append(["-p", "tcp", *chance, "-j", "DNAT", "--to-destination", f"{address}:{port}"])
    return rules


def forget_connections(address: str, port: int, old: tuple[str, int] | None = None) -> None:
    """Drop conntrack entries of connections to address:port (those sent to `old`, when
    given); without the `conntrack` tool, nothing."""
    if shutil.which("conntrack") is None:
        return
    sent_to = () if old is None else ("--reply-src", old[0], "--reply-port-src", str(old[1]))
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            [
                *("conntrack", "-D", "-p", "tcp", "--orig-dst", address),
                *("--orig-port-dst", str(port), *sent_to),
            ],
            capture_output=True,
            timeout=10,
            check=False,
        )


# --- the run's chains, found again from the OUTPUT chain --------------------------------------


@dataclass(frozen=True)
class Jump:
    """One rule of nat OUTPUT that jumps to a run's chain."""

    run_id: str
    owner: str | None  # None on rules written before owners were recorded
    chain: str
    tokens: tuple[str, ...]  # `-A OUTPUT ...` as iptables -S prints it


def run_jumps() -> list[Jump]:
    """Every nat OUTPUT jump whose comment names a run (ours: never anyone else's)."""
    try:
        done = subprocess.run(
            ["iptables", "-w", "5", "-t", "nat", "-S", "OUTPUT"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in done.stdout.splitlines():
        tokens = shlex.split(line)
        if tokens[:1] != ["-A"] or "--comment" not in tokens or "-j" not in tokens:
            continue
        fields = dict(
            part.split("=", 1)
            for part in tokens[tokens.index("--comment") + 1].split()
            if "=" in part
        )
        run_id = fields.get(RUN_LABEL)
        if run_id:
            chain = tokens[tokens.index("-j") + 1]
            found.append(Jump(run_id, fields.get(OWNER_LABEL), chain, tuple(tokens)))
    return found


def remove_jump(jump: Jump) -> str:
    """Delete the jump, then flush and delete its chain (if no other jump uses it)."""
    nat("-D", *jump.tokens[1:], check=False)
    if not any(other.chain == jump.chain for other in run_jumps()):
        nat("-F", jump.chain, check=False)
        nat("-X", jump.chain, check=False)
    return f"iptables chain {jump.chain}"


def remove_run_chains(run_id: str) -> list[str]:
    """Remove every chain (and its jump) of one run: its service address and its slot routes."""
    return [remove_jump(j) for j in run_jumps() if j.run_id == run_id]


def remove_orphaned_chains(keep: Collection[str], dead_runs: Collection[str]) -> list[str]:
    """Remove the chains of runs whose owner is dead (runs in `keep` are left alone).

    A jump without an owner in its comment is removed only for a run known dead."""
    removed = []
    for jump in run_jumps():
        if jump.run_id in keep:
            continue
        dead = not owner_alive(jump.owner) if jump.owner else jump.run_id in dead_runs
        if dead:
            removed.append(f"{jump.run_id}: removed {remove_jump(jump)}")
    return removed


# --- one run's virtual service ----------------------------------------------------------------


class VirtualService:
    """address:port spread over the run's replicas; set up once, backends replaced at will."""

    def __init__(self, run_id: str, owner: str, address: str, port: int) -> None:
        self.run_id = run_id
        self.address = address
        self.port = port
        self.chain = vip_chain(run_id)
        self._comment = jump_comment(run_id, owner)
        self._backends: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self.enabled = False

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def _jump(self) -> list[str]:
        return [
            *("OUTPUT", "-d", f"{self.address}/32", "-p", "tcp", "--dport", str(self.port)),
            *("-m", "comment", "--comment", self._comment, "-j", self.chain),
        ]

    def setup(self, backends: Sequence[tuple[str, int]]) -> None:
        """Create the chain with its backends, then the jump that sends the address there."""
        if shutil.which("iptables") is None or shutil.which("iptables-restore") is None:
            raise TargetError(
                "a service address needs iptables: apt-get install -y iptables (and root)"
            )
        with self._lock:
            try:
                replace_chain(self.chain, spread_rules(backends))
                nat("-I", *self._jump())
            except TargetError:
                self._remove()
                raise
            self._backends = list(backends)
            self.enabled = True

    def set_backends(self, backends: Sequence[tuple[str, int]]) -> None:
        """Spread new connections over `backends` from now on; forget the moved ones' flows."""
        with self._lock:
            if not self.enabled or list(backends) == self._backends:
                return
            replace_chain(self.chain, spread_rules(backends))
            for old in set(self._backends) - set(backends):
                forget_connections(self.address, self.port, old)
            self._backends = list(backends)

    @property
    def backends(self) -> list[tuple[str, int]]:
        return list(self._backends)

    def remove(self) -> None:
        """Remove the jump and the chain; idempotent."""
        with self._lock:
            self._remove()

    def _remove(self) -> None:
        while nat("-D", *self._jump(), check=False):
            pass
        nat("-F", self.chain, check=False)
        nat("-X", self.chain, check=False)
        self._backends = []
        self.enabled = False
