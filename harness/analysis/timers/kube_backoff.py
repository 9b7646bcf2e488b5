"""The kubelet's crash back-off and its pod worker's requeue, as arithmetic (Kubernetes v1.34).

Which wait applies (pkg/kubelet/kuberuntime/kuberuntime_manager.go `doBackOff`, with
client-go util/flowcontrol/backoff.go `Backoff`): a sync that finds the container exited asks
`IsInBackOffSince(key, FinishedAt)`, true while less than the entry's back-off has passed since
the exit. A first exit has no entry: restarted at once, and `Next` records 10 s
(kubelet.go `initialCrashLoopBackOff`). Each later exit waits the entry's back-off after its
exit, and its restart doubles it (`Next`), up to 5 min (`MaxCrashLoopBackOff`). The entry
expires when an exit comes more than 600 s after the last restart (kubelet.go NewMainKubelet's
`HasExpiredFunc`): the next exit counts as a first again. No jitter (`NewBackOff`).

When the restart happens (pkg/kubelet/pod_workers.go `completeWork`): a sync that finds the pod
in back-off fails with ErrCrashLoopBackOff and requeues the pod `wait.Jitter(backOffPeriod,
0.5)` later, 10-15 s (kubelet.go `backOffPeriod`, `workerBackOffPeriodJitterFactor`); the
sync loop picks due pods up on its 1 s tick (kubelet.go `syncLoop` `syncTicker`). The first
sync after an exit is the one its PLEG relist (every 1 s, `genericPlegRelistPeriod`)
triggers. So syncs come at s1 in [0, 1] s after the exit, then s(k+1) in s(k) + [10, 16], and
the restart is at the first sync at or after the back-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

INITIAL_S = 10.0  # kubelet.go initialCrashLoopBackOff
MAX_S = 300.0  # kubelet.go MaxCrashLoopBackOff (v1beta1.MaxContainerBackOff)
EXPIRES_S = 600.0  # kubelet.go NewMainKubelet: crashLoopBackOff.HasExpiredFunc
RELIST_S = 1.0  # kubelet.go genericPlegRelistPeriod
REQUEUE_S = 10.0  # kubelet.go backOffPeriod, used by pod_workers.go completeWork
REQUEUE_JITTER = 0.5  # pod_workers.go workerBackOffPeriodJitterFactor
SYNC_TICK_S = 1.0  # kubelet.go syncLoop: syncTicker

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class CrashWait:
    crash: int  # 1: a first exit (no back-off entry, or it expired)
    wait_s: float  # the back-off after the exit (0 for a first exit)


def crash_waits(exits: Sequence[tuple[int, int | None]]) -> dict[int, CrashWait]:
    """The back-off of each exit, from one container's (exit_ns, next_start_ns) in order;
    the restart's start stands for the instant `Next` recorded."""
    found: dict[int, CrashWait] = {}
    backoff_s: float | None = None
    last_update_ns = 0
    crash = 0
    for exit_ns, restart_ns in exits:
        expired = backoff_s is None or exit_ns - last_update_ns > EXPIRES_S * NS_PER_S
        if expired:
            crash, wait_s, after = 1, 0.0, INITIAL_S
        else:
            assert backoff_s is not None
            crash, wait_s, after = crash + 1, backoff_s, min(backoff_s * 2, MAX_S)
        found[exit_ns] = CrashWait(crash, wait_s)
        if restart_ns is not None:
            backoff_s, last_update_ns = after, restart_ns
    return found


def restart_window(wait_s: float) -> tuple[float, float]:
    """[earliest, latest] restart after the exit, in s, for a back-off of `wait_s` (the
    container's own start work excluded): the first of the syncs s1, s2... at or after it."""
    lo, hi = 0.0, RELIST_S
    if wait_s <= 0:
        return lo, hi
    step_lo = REQUEUE_S
    step_hi = REQUEUE_S * (1 + REQUEUE_JITTER) + SYNC_TICK_S
    earliest: float | None = None
    latest = 0.0
    while True:
        if hi >= wait_s:  # some sync of this round can come after the back-off
            earliest = max(lo, wait_s) if earliest is None else earliest
            latest = max(latest, hi)
        if lo >= wait_s:  # every sync of this round did
            break
        lo, hi = lo + step_lo, min(hi, wait_s) + step_hi
    assert earliest is not None
    return earliest, latest
