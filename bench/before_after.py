"""The before/after example: does lowering Swarm's restart delay make users recover sooner?

    python -m bench.before_after [--repeat 5] [--out results/before-after]

Runs scenarios/swarm-restart-5s.yaml (Swarm's default restart delay) and swarm-restart-1s.yaml
(the optimization) alternately, `--repeat` times each, as one matrix on Swarm, then compares
them as a CI job would:

    harness compare MATRIX --by scenario --baseline swarm-restart-5s \\
        --threshold ttr_s=10% --threshold p95_ms[after]=25% --fail-on-regression   # expect 0
    the same with --baseline swarm-restart-1s (the pair swapped)                      # expect 1

and prints the verdicts, their figures and both exit codes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE, AFTER = "swarm-restart-5s", "swarm-restart-1s"
THRESHOLDS = ("--threshold", "ttr_s=10%", "--threshold", "p95_ms[after]=25%")


def harness(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO,
    )  # fmt: skip


def run_pair(repeat: int, out: Path) -> Path:
    """The matrix of both scenarios on Swarm; its directory."""
    done = harness(
        "matrix",
        str(REPO / "scenarios" / f"{BEFORE}.yaml"),
        str(REPO / "scenarios" / f"{AFTER}.yaml"),
        *("--targets", "swarm", "--repeat", str(repeat), "--out", str(out)),
    )
    if done.returncode != 0:
        sys.exit(f"the matrix failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1]).parent


def compare(matrix: Path, baseline: str, out: Path) -> tuple[int, dict[str, object]]:
    done = harness(
        "compare", str(matrix), "--by", "scenario", "--baseline", baseline,
        *THRESHOLDS, "--fail-on-regression", "--out", str(out),
    )  # fmt: skip
    if done.returncode not in (0, 1):
        sys.exit(f"compare failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.returncode, json.loads((out / "compare.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "before-after")
    parser.add_argument("--matrix", type=Path, help="compare this matrix instead of running one")
    args = parser.parse_args()
    matrix = args.matrix or run_pair(args.repeat, args.out)
    print(f"matrix: {matrix}")
    for baseline, expected in ((BEFORE, 0), (AFTER, 1)):
        code, data = compare(matrix, baseline, matrix / f"compare-baseline-{baseline}")
        print(f"\n--baseline {baseline}: exit {code} (expected {expected})")
        for check in data["regression_checks"]:  # type: ignore[union-attr]
            print(f"  {check['name']}: {check['verdict']}: {check['reason']}")
        if code != expected:
            sys.exit(f"unexpected exit code {code}")
    fault = next(iter(data["faults"]))  # type: ignore[call-overload]
    for group, values in fault["groups"].items():
        ttr = values["ttr_s"]
        print(f"{group}: ttr {ttr['values']} (median {ttr['median']})")


if __name__ == "__main__":
    main()
