"""Accuracy of the harness's numbers: a table of cases whose answer is known beforehand.

Each case (bench.known_cases) is run with `harness run` on every target where it applies, RUNS
times, and its measured value is put beside the interval a rule allows: physics (a partition
of 5 s, a delay of 100 ms) or the orchestrator's own timers, read in its source (Docker's
restart back-off, the kubelet's crash back-off, Swarm's restart delay, Kubernetes' node grace
period). One more case, `crash`, checks the harness against evidence it does not record
(bench.witness): a pidfd on the killed process (the kernel's instant of death) and a packet
capture on the run's bridge (the replica's first HTTP answer after it).

It prints one Markdown table: case, target, check, expected (with the rule's source),
measured (median over the runs, and range), within expectation; then each rule in full.
Kubernetes cases run on the local one-node lab: used as it is when up, else brought up for
the bench and taken down after (bench.kube_session). Needs root (packet capture, host faults).

    python -m bench.accuracy [--runs 2] [--targets docker,swarm] [--cases partition,latency]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import yaml

from bench.known_cases import CASES, TARGETS, Case, Check, Measured, applicable, base_scenario
from bench.runs import REPO
from bench.witness import Facts, RunWitness

MS, S = 1e6, 1e9
CRASH = "crash"  # the witnessed case: Docker only (the witnesses read Docker's containers)


@dataclass
class Row:
    """One check of one case on one target, over the runs."""

    case: str
    target: str
    check: Check
    values: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# --- the witnessed crash ------------------------------------------------------------------------

WITNESS_CHECKS = (
    Check(
        "t0 -> death (pidfd)",
        "the harness marks t0 once the signal is sent; the kernel ends the process within a "
        "few ms of a SIGKILL, and the pidfd's thread wakes right after",
        0.0,
        50.0,
        "ms",
        source="physics: SIGKILL",
    ),
    Check(
        "engine die - death (pidfd)",
        "the engine learns of the exit after the kernel (containerd's exit event, then "
        "dockerd's); never before it",
        0.0,
        100.0,
        "ms",
        source="physics: event path",
    ),
    Check(
        "first failure - death (pidfd)",
        "requests are in flight all the time: one to the dead replica fails at once (a reset "
        "or a refused connection). The kernel closes the process's sockets (exit_files) before "
        "it wakes pidfd pollers (exit_notify), and the pidfd's thread wakes late on a busy "
        "host, so a reset may complete a failure up to ~20 ms before the pidfd's instant",
        -20.0,
        1000.0,
        "ms",
        source="physics: causality",
    ),
    Check(
        "recovered - first answer (wire)",
        "users recover once the replica answers again (the capture's first HTTP answer after "
        "the death), later by at most one request timeout (1 s) of requests sent during it",
        0.0,
        1000.0,
        "ms",
        source="physics: timeouts",
    ),
)


def _crash_scenario(target: str) -> dict[str, Any]:
    data = base_scenario(CRASH, target, 20)
    # Each request to its own replica: web-2's view is web-2's own requests and probes, so
    # users cannot recover before web-2 answers (through a service address the other
    # replicas' successes may close the window first).
    data["load"]["routing"] = "per_instance"
    data["faults"] = [
        {"kind": "container_kill", "name": "crash", "at": "8s", "select": {"names": ["web-2"]}}
    ]
    return data


def _witness_measure(summary_fault: dict[str, Any], facts: Facts) -> Measured:
    died, served = facts.died_at_ns, facts.first_answer_after_ns
    if died is None or served is None:
        raise RuntimeError(f"the witnesses missed the crash: {facts}")
    (engine,) = summary_fault["orchestrator"]
    t0, detected, recovered = (
        int(summary_fault[k]) for k in ("injected_at_ns", "detected_at_ns", "recovered_at_ns")
    )
    values = (
        (died - t0) / MS,
        (int(engine["die_at_ns"]) - died) / MS,
        (detected - died) / MS,
        (recovered - served) / MS,
    )
    return list(zip(WITNESS_CHECKS, values, strict=True))


CRASH_CASE = Case(CRASH, ("docker",), _crash_scenario, lambda target, run_dir: [])


# --- running ------------------------------------------------------------------------------------


def _start_run(scenario: dict[str, Any], out: Path) -> subprocess.Popen[str]:
    out.mkdir(parents=True)
    path = out / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(path), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


NOT_STARTED_PHASES = ("preflight:", "connecting:", "deploying:")


def _run_error(out: Path) -> str:
    """`phase: error` of a failed run, from its manifest ('' when there is none)."""
    import json

    for path in out.glob("*/manifest.json"):
        manifest = json.loads(path.read_text())
        phase = (manifest.get("failure") or {}).get("phase", "?")
        return f"{phase}: {str(manifest.get('error'))[:200]}"
    return ""


def _finish_run(process: subprocess.Popen[str], out: Path, timeout_s: float) -> Path:
    """The run directory of a run that completed (exit 0 or 1: SLOs are not the point)."""
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    finally:
        if process.poll() is None:
            process.terminate()  # the harness cleans up on SIGTERM
            process.wait(timeout=120)
    if process.returncode not in (0, 1):
        error = _run_error(out)
        if error.startswith(NOT_STARTED_PHASES):
            raise NotStarted(error)
        tail = stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"harness run exited {process.returncode}: {error or tail[0][:300]}")
    return Path(stdout.strip().splitlines()[-1])


class NotStarted(RuntimeError):
    """The run failed before its load started (the shared machine's trouble, not the case's)."""


def run_case_retrying(case: Case, target: str, out: Path, attempts: int = 3) -> Measured:
    """A run that failed before its load started is tried again (up to `attempts` in all)."""
    for attempt in range(1, attempts + 1):
        try:
            return run_case(case, target, out / f"try-{attempt}")
        except NotStarted as error:
            if attempt == attempts:
                raise
            print(f"{case.name} on {target}: again ({error})", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def run_case(case: Case, target: str, out: Path) -> Measured:
    """Run the case once on the target and measure it."""
    scenario = case.scenario(target)
    timeout_s = _duration_s(scenario) + 600
    if case.name != CRASH:
        return case.measure(target, _finish_run(_start_run(scenario, out), out, timeout_s))
    return _run_witnessed(scenario, out, timeout_s)


def _run_witnessed(scenario: dict[str, Any], out: Path, timeout_s: float) -> Measured:
    import json

    witness = RunWitness(docker.from_env(), out, "web-2")
    process = _start_run(scenario, out)
    try:
        try:
            witness.attach(timeout_s=180)
        except TimeoutError:
            if process.poll() is not None:  # the run ended first: say why it did
                _finish_run(process, out, timeout_s)
            raise
        run_dir = _finish_run(process, out, timeout_s)
        facts = witness.facts()
    finally:
        witness.close()
        if process.poll() is None:
            process.terminate()  # the harness cleans up on SIGTERM
            process.wait(timeout=120)
    (fault,) = json.loads((run_dir / "summary.json").read_text())["faults"]
    return _witness_measure(fault, facts)


def _duration_s(scenario: dict[str, Any]) -> float:
    return float(str(scenario["load"]["duration"]).rstrip("s"))


# --- the table ----------------------------------------------------------------------------------


def _measured(row: Row) -> str:
    values = [v for v in row.values if not math.isnan(v)]
    if not values:
        return "no value" + (f" ({row.failures[0]})" if row.failures else "")
    median = statistics.median(values)
    text = f"{median:.3g}" if abs(median) < 1000 else f"{median:.0f}"
    if len(values) > 1:
        text += f" ({min(values):.3g} to {max(values):.3g})"
    return f"{text} {row.check.unit}"


def _within(row: Row) -> str:
    """yes when every measured value holds; runs that failed to run are said apart."""
    measured = [v for v in row.values if not math.isnan(v)]
    held = sum(1 for v in measured if row.check.holds(v))
    missing = len(row.values) - len(measured) + len(row.failures)
    verdict = "yes" if measured and held == len(measured) else "no"
    if held not in (0, len(measured)):
        verdict += f" ({held} of {len(measured)})"
    return verdict + (f"; {missing} run(s) without a value" if missing else "")


def table(rows: list[Row], runs: int) -> str:
    lines = [
        f"| case | target | check | expected (source) | measured: median (range), {runs} runs "
        "| within |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        expected = f"{row.check.interval()} ({row.check.source})"
        lines.append(
            f"| {row.case} | {row.target} | {row.check.name} | {expected} | {_measured(row)} "
            f"| {_within(row)} |"
        )
    return "\n".join(lines)


def rules(rows: list[Row]) -> str:
    """Each rule in full, once."""
    seen: dict[str, str] = {}
    for row in rows:
        seen.setdefault(f"{row.case} / {row.check.name}", row.check.expected)
    return "\n".join(f"- {name}: {why}" for name, why in seen.items())


# --- main ---------------------------------------------------------------------------------------


def _record(rows: dict[tuple[str, str, str], Row], case: Case, target: str, got: Measured) -> None:
    for check, value in got:
        key = (case.name, target, check.name)
        rows.setdefault(key, Row(case.name, target, check)).values.append(value)


def _failed(rows: dict[tuple[str, str, str], Row], case: Case, target: str, error: str) -> None:
    key = (case.name, target, "(the run)")
    placeholder = Check("(the run)", "the run completed", None, None, "", source="-")
    for (name, where, _check), row in rows.items():
        if name == case.name and where == target:
            row.failures.append(error)
            return
    rows.setdefault(key, Row(case.name, target, placeholder)).failures.append(error)


def _pairs(cases: list[str], targets: list[str]) -> Iterator[tuple[Case, str]]:
    if CRASH in cases and "docker" in targets:
        yield CRASH_CASE, "docker"
    yield from applicable([c for c in cases if c != CRASH], targets)


def run_all(pairs: list[tuple[Case, str]], runs: int, out: Path) -> list[Row]:
    """Every pair once per round, RUNS rounds; the Kubernetes pairs last, on the lab."""
    rows: dict[tuple[str, str, str], Row] = {}
    kube = [p for p in pairs if p[1] == "kubernetes"]
    _rounds(rows, [p for p in pairs if p[1] != "kubernetes"], runs, out)
    if kube:
        try:
            _kube_rounds(rows, kube, runs, out)
        except Exception as error:  # the lab's own trouble: the other targets' rows stand
            print(f"kubernetes: {error}", file=sys.stderr, flush=True)
            for case, target in kube:
                _failed(rows, case, target, f"the lab: {str(error)[:150]}")
    return list(rows.values())


def _kube_rounds(
    rows: dict[tuple[str, str, str], Row], pairs: list[tuple[Case, str]], runs: int, out: Path
) -> None:
    from bench.kube_session import kube_lab_for_bench

    with kube_lab_for_bench() as ready:
        if not ready:
            for case, target in pairs:
                _failed(rows, case, target, "no Kubernetes lab (not up, not buildable now)")
            return
        _rounds(rows, pairs, runs, out)


def _rounds(
    rows: dict[tuple[str, str, str], Row], pairs: list[tuple[Case, str]], runs: int, out: Path
) -> None:
    for index in range(1, runs + 1):
        for case, target in pairs:
            _run_one(rows, case, target, out / f"{case.name}-{target}-{index}")


def _run_one(rows: dict[tuple[str, str, str], Row], case: Case, target: str, out: Path) -> None:
    started = time.monotonic()
    try:
        got = run_case_retrying(case, target, out)
    except Exception as error:  # a failed run is a row of the table, not the bench's end
        _failed(rows, case, target, str(error)[:200])
        print(f"{case.name} on {target}: failed: {error}", file=sys.stderr, flush=True)
        return
    _record(rows, case, target, got)
    took = time.monotonic() - started
    values = ", ".join(f"{c.name} {v:.3f} {c.unit}" for c, v in got)
    print(f"{case.name} on {target} ({took:.0f} s): {values}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--cases", default=",".join([CRASH, *CASES]))
    parser.add_argument(
        "--out", type=Path, default=None, help="where runs go (default: a temp dir)"
    )
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    targets = [t for t in args.targets.split(",") if t]
    unknown = [c for c in cases if c != CRASH and c not in CASES]
    unknown += [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown case or target: {', '.join(unknown)}")
    out = args.out or Path(tempfile.mkdtemp(prefix="accuracy-"))
    print(f"runs under {out}", file=sys.stderr, flush=True)
    rows = run_all(list(_pairs(cases, targets)), args.runs, out)
    print(table(rows, args.runs))
    print()
    print(rules(rows))


if __name__ == "__main__":
    main()
