"""Each Locust worker's share of a distributed load: what it sent against what it was given."""

from __future__ import annotations

import pandas as pd

from harness.results.summary import WorkerLoad


def per_worker(
    requests: pd.DataFrame,
    start_ns: int,
    end_ns: int,
    rate_per_s: float | None,
    workers: int | None = None,
) -> list[WorkerLoad] | None:
    """One row per named worker when more than one sent requests (else None): its requests,
    failures and requests started per second over [start_ns, end_ns); with an open loop, its
    intended rate: the rate split evenly over the `workers` the master expected (default: the
    workers that sent), as the bundled locustfile splits it."""
    if "worker_name" not in requests.columns or end_ns <= start_ns:
        return None
    named = requests[requests["worker_name"].notna() & (requests["worker_name"] != "")]
    groups = named.groupby("worker_name", sort=True)
    if groups.ngroups < 2:
        return None
    span_s = (end_ns - start_ns) / 1e9
    share = max(workers or 0, groups.ngroups)
    intended = None if rate_per_s is None else round(rate_per_s / share, 3)
    rows = []
    for name, frame in groups:
        started = frame["start_ns"].between(start_ns, end_ns, inclusive="left").sum()
        rows.append(
            WorkerLoad(
                name=str(name),
                requests=len(frame),
                failed=int((~frame["ok"].astype(bool)).sum()),
                sent_per_s=round(float(started) / span_s, 3),
                intended_per_s=intended,
            )
        )
    return rows
