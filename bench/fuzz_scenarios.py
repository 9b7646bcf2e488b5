"""Fuzz the scenario loader and the command line: every bad input ends in a clear message and
exit code 2, never a traceback.

    python -m bench.fuzz_scenarios [--cases 10000] [--seed N] [--cli-share 0.1]

Inputs (hypothesis strategies, also used by tests/test_fuzz_scenarios.py with a few hundred
cases): random bytes (binary files, invalid UTF-8), random unicode text, random YAML documents,
the bundled scenarios mutated (keys deleted, unknown keys added, values replaced by wrong types,
huge or negative numbers, inf and nan, unicode, deep nesting, YAML aliases), text-level damage
of valid files (lines cut, characters inserted), and the command line's options with random
values. Each case goes through `harness.scenario.load_scenario` from a real file; a share of
them also through `harness validate` / `harness run` (Typer's CliRunner, in process). A case
passes when the loader accepts it (then `validate` must not crash either) or raises
ScenarioError whose every problem starts `FILE:LINE: ` with a line inside the file; through the
CLI the exit code is 2 and nothing but the message is printed. Anything else is a failure,
printed with the input that caused it. Prints the number of cases, accepted, refused, and
tracebacks (the target is zero).
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "scenarios"
PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+): \S")

# --- what goes in -----------------------------------------------------------------------------

KNOWN_KEYS = [
    *("name", "target", "workload", "load", "probes", "analysis", "slo", "faults", "seed"),
    *("kind", "at", "duration", "every", "times", "select", "count", "percent", "names"),
    *("replicas", "image", "port", "users", "rate", "timeout", "interval", "delay", "size"),
    *("lab", "nodes", "engine", "resources", "memory", "cpus", "health", "from", "direction"),
]
UNITS = st.sampled_from(["", "ms", "s", "m", "h", "d", "Mi", "Gi", "K", "T", "/s", "/min", "x"])
NUMBERS = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(min_value=10**15, max_value=10**400),
    st.integers(max_value=-(10**15)),
    st.floats(allow_nan=True, allow_infinity=True),
)
UNIT_TEXT = st.builds(
    lambda n, u, neg: f"{'-' if neg else ''}{abs(n)}{u}",
    st.one_of(st.integers(0, 10**30), st.floats(0, 1e12, allow_nan=False)),
    UNITS,
    st.booleans(),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    UNIT_TEXT,
    st.text(max_size=40),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20),
    st.sampled_from(["docker", "swarm", "podman", "kubernetes", "demo", "always", "load", "all"]),
)
KEYS = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(min_size=1, max_size=12))
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=12,
)


@functools.cache
def bundled() -> list[dict[str, Any]]:
    """The bundled scenarios as data: valid starting points for mutations."""
    found = []
    for path in sorted(SCENARIOS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict):
            found.append(data)
    return found


@functools.cache
def bundled_texts() -> list[str]:
    return [path.read_text() for path in sorted(SCENARIOS.glob("*.yaml"))]


def _paths(data: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A bundled scenario with one to four random changes, as YAML text."""
    data = yaml.safe_load(yaml.safe_dump(draw(st.sampled_from(bundled()))))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(data, path), path[-1]
        operation = draw(st.sampled_from(["delete", "replace", "add", "nest"]))
        if operation == "delete":
            del parent[key]
        elif operation == "replace":
            parent[key] = draw(VALUES)
        elif operation == "add" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
        elif operation == "nest":
            parent[key] = {draw(KEYS): parent[key]}
    unicode = draw(st.booleans())
    return yaml.safe_dump(data, allow_unicode=unicode, sort_keys=False)


@st.composite
def damaged(draw: st.DrawFn) -> str:
    """A bundled scenario's text with characters cut, inserted or lines shuffled."""
    text = draw(st.sampled_from(bundled_texts()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["cut", "insert", "swap", "indent"]))
        if operation == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 30)) :]
        elif operation == "insert":
            text = (
                text[:at]
                + draw(
                    st.sampled_from(
                        [":", "-", "[", "{", "&a", "*a", "!!", "\t", "'", '"', "\n  ", "#", "? "]
                    )
                )
                + text[at:]
            )
        elif operation == "swap":
            lines = text.splitlines()
            if len(lines) > 1:
                i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
                text = "\n".join(lines)
        else:
            lines = text.splitlines()
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines[i] = " " * draw(st.integers(1, 5)) + lines[i]
                text = "\n".join(lines)
    return text


def _aliases(depth: int, width: int) -> str:
    lines = ["name: bomb", "a0: &a0 [x, x]"]
    for level in range(1, depth):
        refs = ", ".join(f"*a{level - 1}" for _ in range(width))
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


SPECIAL_TEXT = st.one_of(
    st.just(""),
    st.just("\n\n"),
    st.just("---\n---\n"),
    st.just("name: s\n" * 3),
    st.builds(lambda n: "a: " + "[" * n, st.integers(100, 5000)),
    st.builds(lambda n: "x:\n" + "".join(" " * i + "- \n" for i in range(n)), st.integers(50, 400)),
    st.builds(_aliases, st.integers(2, 12), st.integers(2, 9)),
    st.just("name: s\nload: !!python/object:os.system {}\n"),
    st.just("name: s\nworkload: {resources: {memory: 1.0e308T}}\n"),
    st.just("name: s\nload: {duration: .nan, rate: .inf}\n"),
)
TEXT_INPUTS = st.one_of(
    mutated(),
    mutated(),
    damaged(),
    st.builds(lambda v: yaml.safe_dump(v, allow_unicode=True), VALUES),
    st.text(max_size=300),
    SPECIAL_TEXT,
)
FILE_INPUTS = st.one_of(
    TEXT_INPUTS.map(lambda text: text.encode("utf-8", errors="surrogatepass")),
    st.binary(max_size=400),
    st.builds(
        lambda t, b: t.encode() + b, st.text(max_size=50), st.binary(min_size=1, max_size=20)
    ),
)
OPTION_VALUES = st.one_of(
    st.text(max_size=12),
    NUMBERS.map(str),
    st.sampled_from(["", "-1", "0", "101", "x=", "=y", "a=b"]),
)
CLI_ARGS = st.lists(
    st.tuples(
        st.sampled_from(["--seed", "--target", "--repeat", "--label", "--out", "--junit"]),
        OPTION_VALUES,
    ),
    max_size=3,
)

# --- what comes out ---------------------------------------------------------------------------


@dataclass
class Tally:
    cases: int = 0
    accepted: int = 0
    refused: int = 0
    cli_cases: int = 0
    failures: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)


def check_loader(data: bytes, directory: Path) -> str:
    """Load `data` from a file; 'accepted' or 'refused'; AssertionError on anything else."""
    from harness.errors import ScenarioError
    from harness.scenario import load_scenario

    path = directory / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_scenario(path)
    except ScenarioError as exc:
        lines = data.count(b"\n") + 1
        assert exc.problems, "a ScenarioError without problems"
        for problem in exc.problems:
            match = PROBLEM.match(problem)
            assert match, f"no FILE:LINE: in {problem!r}"
            assert match.group("file") == str(path), problem
            assert 1 <= int(match.group("line")) <= lines + 1, f"line outside the file: {problem}"
            assert "Traceback" not in problem and len(problem) < 4000, problem
        return "refused"
    return "accepted"


def check_cli(data: bytes, directory: Path, options: list[tuple[str, str]], loaded: str) -> None:
    """`harness validate` and `harness run` on the same file: exit 2 for what the loader
    refused, never an exception other than the exit."""
    from typer.testing import CliRunner

    from harness.cli import app

    path = directory / "fuzz.yaml"
    path.write_bytes(data)
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(path)])
    _assert_clean_exit(result, {2} if loaded == "refused" else {0, 2, 3}, "validate")
    if loaded != "refused":
        return  # never start a real run from the fuzzer
    argv = ["run", str(path), *(x for pair in options for x in pair)]
    _assert_clean_exit(runner.invoke(app, argv), {2}, " ".join(argv))


def _assert_clean_exit(result: Any, codes: set[int], what: str) -> None:
    assert isinstance(result.exception, SystemExit) or result.exception is None, (
        f"{what}: {''.join(traceback.format_exception(result.exception))}"
    )
    assert result.exit_code in codes, f"{what}: exit {result.exit_code}: {result.output[-800:]}"
    assert "Traceback" not in result.output, f"{what}: {result.output[-2000:]}"


def run_cases(cases: int, seed: int | None, cli_share: float) -> Tally:
    tally = Tally()
    directory = Path(tempfile.mkdtemp(prefix="fuzz-scenarios-"))
    cli_every = max(1, round(1 / cli_share)) if cli_share > 0 else 0

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=seed is not None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=FILE_INPUTS, options=CLI_ARGS)
    def case(data: bytes, options: list[tuple[str, str]]) -> None:
        tally.cases += 1
        try:
            outcome = check_loader(data, directory)
            tally.kinds[outcome] += 1
            if outcome == "accepted":
                tally.accepted += 1
            else:
                tally.refused += 1
            if cli_every and tally.cases % cli_every == 0:
                tally.cli_cases += 1
                check_cli(data, directory, options, outcome)
        except Exception as exc:  # the fuzzer's finding: printed, counted, never raised
            detail = "".join(traceback.format_exception(exc))[-3000:]
            tally.failures.append(f"input {data[:300]!r}\n{detail}")

    if seed is not None:
        import random

        random.seed(seed)
    case()
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None, help="derandomize (any value)")
    parser.add_argument(
        "--cli-share", type=float, default=0.1, help="share of cases also run through the CLI"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    tally = run_cases(args.cases, args.seed, args.cli_share)
    took = time.monotonic() - started
    for failure in tally.failures[:5]:
        print(f"--- failure\n{failure}", file=sys.stderr)
    print(
        f"cases {tally.cases}, accepted {tally.accepted}, refused with a message "
        f"{tally.refused}, through the CLI {tally.cli_cases}, tracebacks "
        f"{len(tally.failures)} ({took:.0f} s)"
    )
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CLI_ARGS", "FILE_INPUTS", "TEXT_INPUTS", "Callable", "check_cli", "check_loader"]
