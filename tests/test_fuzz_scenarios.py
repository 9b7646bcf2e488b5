"""Bad input, generated: the scenario loader and the command line never answer with a traceback.

A few hundred cases of bench/fuzz_scenarios.py's inputs (its benchmark runs 10,000): random
bytes and text, random YAML, the bundled scenarios mutated and damaged, the command line's
options with random values. The loader accepts a case or refuses it with problems that each
start `FILE:LINE: `; the CLI exits 2 on every case the loader refused, printing the message
and nothing else. Plus the cases a fuzzer found once, kept as examples.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from typer.testing import CliRunner

from bench.fuzz_scenarios import CLI_ARGS, FILE_INPUTS, check_cli, check_loader
from harness.cli import app
from harness.errors import ScenarioError
from harness.scenario import load_scenario, parse_scenario

FOUND_BY_THE_FUZZER = [
    b"a: " + b"[" * 3000,  # nesting: RecursionError in the YAML reader
    b"name: s\nload: {duration: .inf}\n",  # accepted inf, then Locust got -t inf
    b"name: s\nload: {rate: .inf}\n",  # OverflowError computing the users
    b"name: s\nload: {duration: 1" + b"0" * 400 + b"}\n",  # OverflowError: int to float
    b"name: s\nworkload: {resources: {memory: 1.0e308T}}\n",  # OverflowError: inf to int
    b"name: s\nload: {wait: .nan}\n",  # accepted nan
    b"\xff\xfe name: s\n",  # UnicodeDecodeError from read_text
    b'name: s\nload: {locustfile: "a\\0b"}\n',  # ValueError: embedded null byte
]


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=FILE_INPUTS)
@example(data=FOUND_BY_THE_FUZZER[0])
def test_the_loader_refuses_with_file_and_line_or_accepts(data: bytes, directory: Path) -> None:
    assert check_loader(data, directory) in ("accepted", "refused")


@pytest.mark.parametrize("data", FOUND_BY_THE_FUZZER)
def test_inputs_that_once_escaped_are_refused_with_a_message(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(data)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    (problem,) = caught.value.problems
    assert re.match(rf"^{re.escape(str(path))}:\d+: ", problem), problem


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=FILE_INPUTS, options=CLI_ARGS)
def test_the_cli_exits_2_on_bad_input_without_a_traceback(
    data: bytes, options: list[tuple[str, str]], directory: Path
) -> None:
    check_cli(data, directory, options, check_loader(data, directory))


def test_huge_and_unreal_numbers_name_the_limit() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(
            "name: s\nload: {duration: 200h, rate: 100000000/s}\n"
            "workload: {resources: {memory: 2000T}}",
            "s.yaml",
        )
    problems = "\n".join(caught.value.problems)
    assert "s.yaml:2: load.duration: a duration can be at most 604800 s, got '200h'" in problems
    assert "s.yaml:2: load.rate: a rate can be at most 1e+07/s, got '100000000/s'" in problems
    assert "s.yaml:3: workload.resources.memory: a size can be at most" in problems
    assert "got '2000T'" in problems


def test_cli_on_a_binary_file_and_a_directory(tmp_path: Path) -> None:
    binary = tmp_path / "b.yaml"
    binary.write_bytes(bytes(range(256)))
    for target in (binary, tmp_path):
        result = CliRunner().invoke(app, ["validate", str(target)])
        assert result.exit_code == 2, result.output
        assert "nothing was run" in result.output and "Traceback" not in result.output
