"""The host's iptables rules: a run's nat chains, the jumps to them, DNAT spreads, conntrack.

A run's routers (Swarm's slot addresses, Kubernetes' first-pod addresses, a virtual service
address) each own one chain in the nat table, reached from nat OUTPUT (the host's own traffic:
the load and the probes run here) by one jump. A chain is named `CHAOS-<PURPOSE>-<hash>`, the
hash taken from the run id, within iptables' 28 characters. The jump's comment names the run
and its owner process, `chaos-harness.run-id=<run> chaos-harness.owner=<pid:start>`: that is
how a run's chains are found again, whatever their name (older versions named them
`CHAOS-<hash>`, `CHAOS-K8S-<hash>` and `CHAOS-VIP-<hash>`), and how `harness cleanup` knows a
dead run's. Rules that change together change in one `iptables-restore --noflush`
transaction: a chain's rules are replaced whole (declaring the chain flushes it inside the
transaction), with its jump the first time, so no moment is left half-written.

The labs' own host rules (their bridge's FORWARD and MASQUERADE rules) and rules inside a
lab node's namespace are written here too (`iptables_rule`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import commands
from harness.commands import Done
from harness.errors import CommandError
from harness.owners import OWNER_LABEL, RUN_LABEL, owner_alive

CHAIN_PREFIX = "CHAOS-"
CHAIN_NAME_MAX = 28  # iptables' limit on a chain's name
HASH_CHARS = 12
IPTABLES = ("iptables", "-w", "5")


def chain_name(run_id: str, purpose: str) -> str:
    """The run's chain for `purpose` (upper-case letters and digits, up to 9 of them)."""
    longest = CHAIN_NAME_MAX - len(CHAIN_PREFIX) - 1 - HASH_CHARS
    if not re.fullmatch(r"[A-Z0-9]+", purpose) or len(purpose) > longest:
        raise ValueError(f"chain purpose {purpose!r}: 1 to {longest} of A-Z and 0-9")
    return f"{CHAIN_PREFIX}{purpose}-{run_hash(run_id)}"


def run_hash(run_id: str) -> str:
    """What every chain of the run carries (its id is too long for a chain's name)."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:HASH_CHARS].upper()


def jump_comment(run_id: str, owner: str) -> str:
    return f"{RUN_LABEL}={run_id} {OWNER_LABEL}={owner}"


def problem() -> str:
    """Why a run's chains cannot be made here ("" when they can)."""
    missing = [t for t in ("iptables", "iptables-restore") if shutil.which(t) is None]
    if missing:
        return f"no {' or '.join(missing)} (apt-get install -y iptables)"
    return "" if os.geteuid() == 0 else "iptables needs root"


# --- commands ---------------------------------------------------------------------------------


def iptables_rule(
    action: str, rule: Sequence[str], *, table: str = "filter", netns: Path | None = None
) -> Done:
    """`iptables -t TABLE ACTION CHAIN SPEC...` (`rule` is CHAIN SPEC...), on the host or
    inside the network namespace at `netns`; the caller judges the exit status (-C, -D)."""
    enter = [] if netns is None else ["nsenter", f"--net={netns}"]
    return commands.run([*enter, *IPTABLES, "-t", table, action, *rule], check=False)


def _restore_token(token: str) -> str:
    """A token as iptables-restore reads it: it knows double quotes, not the shell's."""
    if token and not re.search(r"[\s\"'\\]", token):
        return token
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _line(tokens: Iterable[str]) -> str:
    return " ".join(_restore_token(t) for t in tokens)


def restore(lines: Sequence[str], table: str = "nat") -> None:
    """Apply `lines` (iptables-restore syntax) to `table` as one transaction; CommandError
    when it is refused, and then nothing of it was applied."""
    text = "\n".join([f"*{table}", *lines, "COMMIT"]) + "\n"
    commands.run(["iptables-restore", "-w", "5", "--noflush"], input=text)


def _nat_listing(chain: str | None = None) -> list[list[str]]:
    """`iptables -t nat -S [CHAIN]`, each line split; [] where iptables cannot be asked."""
    try:
        done = commands.run([*IPTABLES, "-t", "nat", "-S", *([chain] if chain else [])])
    except CommandError:
        return []
    return [shlex.split(line) for line in done.stdout.splitlines() if line.strip()]


def nat_chains() -> set[str]:
    """The user-defined chains of the nat table."""
    return {t[1] for t in _nat_listing() if t[:1] == ["-N"] and len(t) > 1}


# --- a run's jumps, found again by their comment -----------------------------------------------


@dataclass(frozen=True)
class Jump:
    """One rule of nat OUTPUT that jumps to a run's chain."""

    run_id: str
    owner: str | None  # None on rules written before owners were recorded
    chain: str
    tokens: tuple[str, ...]  # `-A OUTPUT ...` as iptables -S prints it


def _jump(tokens: list[str]) -> Jump | None:
    if tokens[:1] != ["-A"] or "--comment" not in tokens or "-j" not in tokens:
        return None
    comment = tokens[tokens.index("--comment") + 1]
    fields = dict(part.split("=", 1) for part in comment.split() if "=" in part)
    run_id = fields.get(RUN_LABEL)
    if not run_id:
        return None
    chain = tokens[tokens.index("-j") + 1]
    return Jump(run_id, fields.get(OWNER_LABEL), chain, tuple(tokens))


def run_jumps() -> list[Jump]:
    """Every nat OUTPUT jump whose comment names a run (ours: never anyone else's)."""
    return [j for j in map(_jump, _nat_listing("OUTPUT")) if j is not None]


def remove_jumps(jumps: Collection[Jump]) -> list[str]:
    """Delete `jumps`, then flush and delete each chain no other jump uses, in one
    transaction; what was removed. Chains of any name: the jump's comment made them ours."""
    wanted = {j.tokens for j in jumps}
    for attempt in range(3):
        # read again each time: a teardown and a cleanup may remove the same jump at once
        present = run_jumps()
        mine = [j for j in present if j.tokens in wanted]
        still_used = {j.chain for j in present if j.tokens not in wanted}
        chains = sorted({j.chain for j in jumps} & nat_chains() - still_used)
        lines = [_line(["-D", *j.tokens[1:]]) for j in mine]
        lines += [f"-F {c}" for c in chains] + [f"-X {c}" for c in chains]
        if not lines:
            return []
        try:
            restore(lines)
        except CommandError:
            if attempt == 2:
                raise
            continue
        return [f"iptables chain {c}" for c in sorted({j.chain for j in mine} | set(chains))]
    return []


def remove_run_chains(run_id: str) -> list[str]:
    """Remove every chain (and its jump) of one run; what was removed."""
    try:
        return remove_jumps([j for j in run_jumps() if j.run_id == run_id])
    except CommandError:
        return []


def remove_orphaned_chains(keep: Collection[str], dead_runs: Collection[str]) -> list[str]:
    """Remove the chains of runs whose owner is dead (runs in `keep` are left alone).

    A jump without an owner in its comment is removed only for a run known dead."""
    removed = []
    for jump in run_jumps():
        if jump.run_id in keep:
            continue
        dead = not owner_alive(jump.owner) if jump.owner else jump.run_id in dead_runs
        if dead:
            with contextlib.suppress(CommandError):
                removed += [f"{jump.run_id}: removed {w}" for w in remove_jumps([jump])]
    return removed


# --- one chain of a run -----------------------------------------------------------------------


class RunChain:
    """One nat chain of a run and the jump from OUTPUT that sends traffic matching `match`
    to it. Not thread-safe: its router holds the lock."""

    def __init__(self, run_id: str, owner: str, purpose: str, match: Sequence[str]) -> None:
        self.run_id = run_id
        self.chain = chain_name(run_id, purpose)
        comment = jump_comment(run_id, owner)
        self.jump = ["OUTPUT", *match, "-m", "comment", "--comment", comment, "-j", self.chain]
        self.jumped = False

    def replace(self, rules: Sequence[Sequence[str]]) -> None:
        """Make the chain hold exactly `rules` (each `-A CHAIN` is implied), with its jump the
        first time, in one transaction; CommandError when refused (nothing changed)."""
        lines = [f":{self.chain} - [0:0]"]
        lines += [_line(["-A", self.chain, *rule]) for rule in rules]
        if not self.jumped:
            lines.append(_line(["-I", *self.jump]))
        restore(lines)
        self.jumped = True

    def remove(self) -> None:
        """Remove every copy of the jump and the chain, in one transaction; idempotent."""
        mine = [j for j in run_jumps() if j.chain == self.chain and j.run_id == self.run_id]
        if mine:
            remove_jumps(mine)
        if self.chain in nat_chains():  # a chain whose jump is gone already
            restore([f"-F {self.chain}", f"-X {self.chain}"])
        self.jumped = False


# --- what a chain holds -------------------------------------------------------------------------


def dnat(to: tuple[str, int], match: Sequence[str] = ()) -> list[str]:
    """A rule that sends a new TCP connection (matching `match`) to address:port."""
    return ["-p", "tcp", *match, "-j", "DNAT", "--to-destination", f"{to[0]}:{to[1]}"]


def spread_rules(backends: Sequence[tuple[str, int]]) -> list[list[str]]:
    """One DNAT rule per backend, each taking an equal share of new connections: the
    `statistic` match with probability 1/n, 1/(n-1), ..., the last unconditional, as
    kube-proxy's iptables mode spreads a Service."""
    rules = []
    for index, backend in enumerate(backends):
        left = len(backends) - index
        chance = [] if left == 1 else ["-m", "statistic", "--mode", "random"]
        chance += [] if left == 1 else ["--probability", f"{1 / left:.10f}"]
        rules.append(dnat(backend, chance))
    return rules


def forget_connections(address: str, port: int, old: tuple[str, int] | None = None) -> None:
    """Drop conntrack entries of connections to address:port (those sent to `old`, when
    given), or a new connection reusing such a 5-tuple would follow the old path; without the
    `conntrack` tool, nothing."""
    if shutil.which("conntrack") is None:
        return
    sent_to = () if old is None else ("--reply-src", old[0], "--reply-port-src", str(old[1]))
    command = ["conntrack", "-D", "-p", "tcp", "--orig-dst", address]
    with contextlib.suppress(CommandError):
        # exit 1 when there was no entry to delete: not a failure
        commands.run([*command, "--orig-port-dst", str(port), *sent_to], timeout_s=10, check=False)
