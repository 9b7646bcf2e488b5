"""The workload's CPU and memory per phase and around each fault, from resources.parquet.

The samples (harness.resources) hold each instance's cumulative CPU seconds and its memory at
each sampling round. CPU between two rounds of one instance is the increase over the time
between them, spread evenly; after a decrease (a restarted container's new cgroup counts from
zero) the increase is the new reading, as Prometheus' rate() takes a counter reset. Time an
instance was not sampled counts as none of its CPU (a stopped container uses none). The CPU
of an interval is the CPU time of every instance inside it over the part of it that was
sampled: cores, summed over instances. Memory is summed per round over the instances read in
it; its mean and max are over the rounds inside the interval.

Per fault: `baseline` before the injection (as long as the fault window, at least
MIN_BASELINE_NS, never before the load started), `during` the fault window, `after` its
recovery window, else as long as the baseline after the revert; costs against the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from harness.analysis.metrics import FaultMetrics
from harness.analysis.phases import Phase
from harness.analysis.timebase import Interval, LoadWindow
from harness.resources import RESOURCES_FILE, RESOURCES_LOG, read_resources_log
from harness.results.summary import FaultResources, Resources, ResourceUse

MIN_BASELINE_NS: Final = 10 * 1_000_000_000
OFF_HOST: Final = "no instance had a host PID (a remote engine): nothing was sampled"


def load_samples(run_dir: Path) -> pd.DataFrame | None:
    """The run's samples (the parquet file, else the log a killed harness left); None for a
    run from before the harness sampled."""
    parquet = run_dir / RESOURCES_FILE
    if parquet.exists():
        return pd.read_parquet(parquet)
    log = run_dir / RESOURCES_LOG
    return read_resources_log(log) if log.exists() else None


@dataclass(frozen=True, eq=False)
class Usage:
    """The samples made ready to cut: CPU segments and the memory of each round."""

    seg_start: np.ndarray  # int64 ns, one per pair of consecutive rounds of an instance
    seg_end: np.ndarray
    seg_cores: np.ndarray  # float64, CPU seconds per second over the segment
    rounds_ns: np.ndarray  # int64, one per round
    rounds_memory: np.ndarray  # int64, summed over the instances read in the round

    @classmethod
    def of(cls, samples: pd.DataFrame) -> Usage:
        frame = samples.sort_values(["instance", "time_ns"], kind="stable")
        same = frame["instance"].to_numpy()[1:] == frame["instance"].to_numpy()[:-1]
        times = frame["time_ns"].to_numpy(np.int64)
        cpu = frame["cpu_seconds"].to_numpy(np.float64)
        dt, dcpu = np.diff(times), np.diff(cpu)
        dcpu = np.where(dcpu < 0, cpu[1:], dcpu)  # a counter reset: the new count
        keep = same & (dt > 0)
        memory = samples.groupby("time_ns", sort=True)["memory_bytes"].sum()
        return cls(
            seg_start=times[:-1][keep],
            seg_end=times[1:][keep],
            seg_cores=dcpu[keep] / (dt[keep] / 1e9),
            rounds_ns=memory.index.to_numpy(np.int64),
            rounds_memory=memory.to_numpy(np.int64),
        )

    def use(self, intervals: Sequence[Interval]) -> ResourceUse:
        """CPU and memory over `intervals` (null where nothing was sampled)."""
        if not intervals:
            return ResourceUse()
        cpu_s, covered_ns = 0.0, 0
        in_rounds = np.zeros(self.rounds_ns.size, dtype=bool)
        for start, end in intervals:
            overlap = np.clip(
                np.minimum(self.seg_end, end) - np.maximum(self.seg_start, start), 0, None
            )
            cpu_s += float((self.seg_cores * overlap).sum()) / 1e9
            covered_ns += _covered(self.seg_start, self.seg_end, start, end)
            in_rounds |= (self.rounds_ns >= start) & (self.rounds_ns < end)
        memory = self.rounds_memory[in_rounds]
        return ResourceUse(
            start_ns=intervals[0][0],
            end_ns=intervals[-1][1],
            cpu_cores=round(cpu_s / (covered_ns / 1e9), 4) if covered_ns > 0 else None,
            memory_mean_bytes=int(memory.mean()) if memory.size else None,
            memory_max_bytes=int(memory.max()) if memory.size else None,
            rounds=int(memory.size),
        )


def _covered(starts: np.ndarray, ends: np.ndarray, lo: int, hi: int) -> int:
    """How much of [lo, hi) some segment covers (segments of instances overlap each other):
    in start order, each adds what reaches past the furthest end before it."""
    s, e = np.maximum(starts, lo), np.minimum(ends, hi)
    keep = e > s
    order = np.argsort(s[keep], kind="stable")
    s, e = s[keep][order], e[keep][order]
    if not s.size:
        return 0
    reach = np.concatenate(([lo], np.maximum.accumulate(e)[:-1]))
    return int(np.clip(e - np.maximum(s, reach), 0, None).sum())


def fault_windows(fault: FaultMetrics, load: LoadWindow) -> tuple[Interval, Interval, Interval]:
    """(baseline, during, after) of one fault occurrence (module docstring)."""
    t0 = fault.fault.injected_at_ns
    start, end = fault.phase_bounds.get("fault", (0, 0))
    if end <= start:
        start, end = t0, fault.fault.reverted_at_ns or t0
    length = max(end - start, MIN_BASELINE_NS)
    baseline = (max(load.start_ns, start - length), start)
    rec_start, rec_end = fault.phase_bounds.get("recovery", (0, 0))
    if rec_end <= rec_start:
        rec_start, rec_end = end, min(load.end_ns, end + (baseline[1] - baseline[0]))
    return baseline, (start, end), (rec_start, rec_end)


def _fault_resources(usage: Usage, fault: FaultMetrics, load: LoadWindow) -> FaultResources:
    windows = fault_windows(fault, load)
    before, during, after = (usage.use([w] if w[1] > w[0] else []) for w in windows)
    return FaultResources(
        fault=fault.fault.fault_id,
        baseline=before,
        during=during,
        after=after,
        cpu_cost_cores=_less(during.cpu_cores, before.cpu_cores),
        recovery_cpu_cost_cores=_less(after.cpu_cores, before.cpu_cores),
        memory_cost_bytes=_less_int(during.memory_max_bytes, before.memory_mean_bytes),
    )


def _less(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def _less_int(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b


def resources(
    samples: pd.DataFrame | None,
    phases: Sequence[Phase],
    faults: Sequence[FaultMetrics],
    load: LoadWindow,
) -> Resources | None:
    """The Resources block of summary.json; None for a run from before the harness sampled."""
    if samples is None:
        return None
    if samples.empty:
        return Resources(sampled=False, reason=OFF_HOST)
    usage = Usage.of(samples)
    steps = np.diff(usage.rounds_ns)
    return Resources(
        sampled=True,
        interval_s=round(float(np.median(steps)) / 1e9, 3) if steps.size else None,
        instances=sorted(str(i) for i in samples["instance"].unique()),
        phases={p.name: usage.use(p.intervals) for p in phases},
        faults=[_fault_resources(usage, f, load) for f in faults],
    )
