"""`harness compare`: grouping, verdicts with their statistics, the report, exit codes.

Runs are synthetic (tests/synthetic_run.py) with a known time to recover: requests every
0.1 s, all failing from the kill at 10 s until `ttr` - 5 ms, when a 5 ms request succeeds and
traffic stays clean, so the recovery (the completion of that request) is at exactly 10 s + ttr.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from harness.analysis.compare import (
    FaultSample,
    GroupFault,
    compare_runs,
    expand_run_dirs,
    judge,
    load_runs,
    permutation_p_value,
    read_run_summary,
)
from harness.analysis.thresholds import Check, Threshold, parse_thresholds, regression_checks
from harness.cli_compare import Gates, compare, compare_command
from harness.errors import ScenarioError
from tests.synthetic_run import Req, engine, inject, ns, series, write_run

KILL_AT, END_AT, LATENCY_MS = 10.0, 30.0, 5.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_run(
    run_dir: Path,
    ttr_s: float | None,
    target: str = "docker",
    labels: dict[str, str] | None = None,
) -> Path:
    """A run whose f1 container_kill recovers `ttr_s` after the kill (None: never)."""
    back = END_AT if ttr_s is None else KILL_AT + ttr_s - LATENCY_MS / 1000
    requests = [
        *series(0.0, KILL_AT, 0.1),
        *[
            Req(KILL_AT + 0.1 * i, LATENCY_MS, ok=False)
            for i in range(round((back - KILL_AT) * 10))
        ],
    ]
    if ttr_s is not None:
        requests += series(back, END_AT, 0.1)
    events = [inject(KILL_AT, "f1"), engine(KILL_AT + 0.004, "die", "web-1", exitCode="137")]
    if ttr_s is not None:
        events += [
            engine(KILL_AT + ttr_s / 2, "start", "web-1"),
            engine(KILL_AT + ttr_s * 0.9, "health_status", "web-1", health="healthy"),
        ]
    write_run(run_dir, requests, events=events, load_s=(0.0, END_AT))
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["target"] = target
    if labels is not None:
        manifest["labels"] = labels
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    return run_dir


def make_runs(root: Path, target: str, ttrs: Sequence[float | None], **kw: object) -> list[Path]:
    labels = kw.get("labels")
    assert labels is None or isinstance(labels, dict)
    return [make_run(root / f"{target}-{i}", ttr, target, labels) for i, ttr in enumerate(ttrs)]


def interleave(a: Sequence[Path], b: Sequence[Path]) -> list[Path]:
    return [p for pair in zip(a, b, strict=True) for p in pair]


def group_fault(name: str, ttrs: Sequence[float | None]) -> GroupFault:
    samples = tuple(
        FaultSample(f"{name}-{i}", t is not None, None, {"ttr_s": t}) for i, t in enumerate(ttrs)
    )
    return GroupFault(name, samples)


def strict_json(path: Path) -> dict[str, object]:
    def refuse(constant: str) -> object:
        raise AssertionError(f"{path.name} holds {constant}")

    data = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def separated(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """5 docker runs recovering in ~1 s, 5 swarm runs in ~6 s, given interleaved."""
    root = tmp_path_factory.mktemp("separated")
    docker = make_runs(root, "docker", [0.9, 1.0, 1.1, 1.2, 1.3])
    swarm = make_runs(root, "swarm", [5.8, 5.9, 6.0, 6.1, 6.2])
    return interleave(swarm, docker)


# -- grouping --------------------------------------------------------------------------------


def test_groups_by_target_in_command_line_order(separated: list[Path]) -> None:
    comparison = compare_runs(load_runs(separated, "target"), "target")

    assert [g.name for g in comparison.groups] == ["swarm", "docker"]  # swarm given first
    assert [len(g.runs) for g in comparison.groups] == [5, 5]
    assert all(r.run_dir.name.startswith("swarm") for r in comparison.groups[0].runs)
    (fault,) = comparison.faults
    assert (fault.fault_id, fault.kind) == ("f1", "container_kill")
    assert fault.ranking == ("docker", "swarm")
    docker = fault.group("docker")
    assert docker.stat("ttr_s").median == pytest.approx(1.1)
    assert (docker.stat("ttr_s").min, docker.stat("ttr_s").max) == pytest.approx((0.9, 1.3))
    assert docker.stat("die_to_start_s").median == pytest.approx(1.1 / 2 - 0.004, abs=1e-6)
    assert docker.stat("ttd_s").median == pytest.approx(LATENCY_MS / 1000)


def test_groups_by_label(tmp_path: Path) -> None:
    before = make_runs(tmp_path / "b", "docker", [2.0, 2.2], labels={"variant": "before"})
    after = make_runs(tmp_path / "a", "docker", [1.0, 1.2], labels={"variant": "after"})
    runs = load_runs([*before, *after], "label", "variant")
    comparison = compare_runs(runs, "label", "variant")

    assert [g.name for g in comparison.groups] == ["before", "after"]
    (pair,) = comparison.faults[0].pairs
    assert pair.winner == "after" and pair.loser == "before"
    assert pair.difference_s == pytest.approx(1.0)
    assert pair.basis == "too_few_runs" and pair.significant is None
    assert "too few recovery times to test (n=2 vs 2; 4 per group" in pair.sentence
    # no bootstrap from 2 runs: the ranges' difference [2.0-1.2, 2.2-1.0] = [0.8, 1.2] holds
    # the true difference when both ranges hold their medians: (1 - 2/2^2)^2 = 25 %
    assert pair.interval is not None and pair.ci95_s is None
    assert (pair.interval.low, pair.interval.high) == pytest.approx((0.8, 1.2))
    assert pair.interval.confidence == pytest.approx(0.25)


# -- verdicts --------------------------------------------------------------------------------


def test_single_runs_verdict_names_the_faster_and_by_how_much(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / "s", 3.0, "swarm"), make_run(tmp_path / "d", 1.0, "docker")]
    comparison = compare_runs(load_runs(runs, "target"), "target")
    (pair,) = comparison.faults[0].pairs

    assert pair.winner == "docker" and pair.loser == "swarm"
    assert pair.difference_s == pytest.approx(2.0)
    assert pair.ratio == pytest.approx(3.0)
    assert pair.basis == "single_runs" and pair.p_value is None
    assert comparison.sentences() == [
        "f1 container_kill: docker recovered faster than swarm by 2.000 s: median ttr 1.000 s "
        "vs 3.000 s (swarm took 3.00× as long); from single runs (n=1 vs 1): one run each "
        "cannot be called significant."
    ]


def test_clearly_separated_groups_are_significant(separated: list[Path]) -> None:
    comparison = compare_runs(load_runs(separated, "target"), "target")
    (pair,) = comparison.faults[0].pairs

    assert pair.winner == "docker"
    assert pair.difference_s == pytest.approx(4.9)
    assert pair.p_value == pytest.approx(2 / 252)  # exact: the most extreme of 252 splits
    assert pair.significant is True
    assert pair.ci95_s is not None
    low, high = pair.ci95_s
    assert 4.5 <= low <= 4.9 <= high <= 5.3
    assert "; significant (p=0.00794, n=5 vs 5" in pair.sentence


def test_overlapping_groups_are_not_significant() -> None:
    a = group_fault("a", [1.0, 2.0, 3.0, 4.0, 5.0])
    b = group_fault("b", [1.5, 2.5, 3.5, 4.5, 5.5])
    pair = judge("f1 container_kill", b, a)

    assert pair.winner == "a" and pair.difference_s == pytest.approx(0.5)
    assert pair.p_value is not None and pair.p_value > 0.5
    assert pair.significant is False
    assert pair.ci95_s is not None and pair.ci95_s[0] < 0 < pair.ci95_s[1]
    assert "not significant (p=0.69" in pair.sentence


def test_three_runs_each_are_not_tested() -> None:
    # 3 vs 3: the most extreme of C(6, 3) = 20 splits, both ways: p >= 2/20 = 0.1 > 0.05
    pair = judge("f1 x", group_fault("a", [1.0, 1.1, 1.2]), group_fault("b", [5.0, 5.1, 5.2]))

    assert pair.p_value is None and pair.significant is None
    assert pair.basis == "too_few_runs" and not pair.decisive_loss
    assert "4 per group are the fewest that can reach p < 0.05" in pair.sentence


def test_permutation_p_value_is_seeded_and_sane() -> None:
    a, b = [float(i) for i in range(8)], [float(i) + 20 for i in range(8)]  # 12870 splits
    p = permutation_p_value(a, b)
    assert p == permutation_p_value(a, b)  # fixed seed
    assert p < 0.001
    assert permutation_p_value([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]) == 1.0


def test_an_unrecovered_fault_loses(tmp_path: Path) -> None:
    docker = make_runs(tmp_path, "docker", [0.5, None, 0.6])
    swarm = make_runs(tmp_path, "swarm", [6.0, 6.5, 7.0])
    comparison = compare_runs(load_runs([*docker, *swarm], "target"), "target")
    fault = comparison.faults[0]
    (pair,) = fault.pairs

    assert pair.winner == "swarm" and pair.loser == "docker"
    assert pair.basis == "unrecovered" and pair.difference_s is None
    assert fault.ranking == ("swarm", "docker")
    docker_fault = fault.group("docker")
    assert docker_fault.unrecovered == ("docker-1",)
    assert docker_fault.stat("ttr_s").values == pytest.approx((0.5, 0.6))  # no 0, no run end
    assert "docker never recovered in 1 of 3 runs" in pair.sentence
    assert "an unrecovered fault loses" in pair.sentence
    assert comparison.losses("docker") == [pair.sentence]
    assert comparison.losses("swarm") == []


def test_both_unrecovered_everywhere_has_no_winner() -> None:
    pair = judge("f1 x", group_fault("a", [None]), group_fault("b", [None]))
    assert pair.winner is None and pair.basis == "unrecovered"
    assert "neither group recovered in every run" in pair.sentence


# -- the report and the command --------------------------------------------------------------


@pytest.fixture(scope="module")
def report_dir(separated: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "cmp"
    assert compare_command(separated, "target", out, None) == 0
    return out


def test_report_is_self_contained_with_the_verdict(report_dir: Path) -> None:
    html = (report_dir / "compare.html").read_text(encoding="utf-8")

    assert html.count("data:image/png;base64,") == 2
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""src=["'](?!data:)""", html), "an external resource is referenced"
    assert "<link" not in html and "<script" not in html
    verdict = html.index("<h2>Verdict</h2>")
    assert verdict < html.index("<h2>f1 container_kill</h2>") < html.index("<h2>Phases</h2>")
    assert "docker recovered faster than swarm by 4.900 s" in html
    assert "significant (p=0.00794, n=5 vs 5" in html
    assert "swarm-0" in html and "docker-4" in html


def test_compare_json_is_strict_and_complete(report_dir: Path) -> None:
    data = strict_json(report_dir / "compare.json")

    assert data["by"] == "target"
    groups = data["groups"]
    assert isinstance(groups, list) and [g["name"] for g in groups] == ["swarm", "docker"]
    faults = data["faults"]
    assert isinstance(faults, list)
    fault = faults[0]
    assert fault["key"] == "f1 container_kill"
    assert fault["groups"]["docker"]["ttr_s"]["median"] == pytest.approx(1.1)
    assert fault["groups"]["swarm"]["runs"] == 5
    (pair,) = fault["comparisons"]
    assert pair["faster"] == "docker" and pair["significant"] is True
    assert pair["difference_s"] == pytest.approx(4.9)
    phases = data["phases"]
    assert isinstance(phases, dict)
    assert phases["docker"]["baseline"]["p50_ms"]["median"] == pytest.approx(LATENCY_MS)
    assert phases["docker"]["after"]["error_rate"]["median"] == 0.0


def test_figures_exist(report_dir: Path) -> None:
    for name in ("timelines.png", "ttr_distribution.png"):
        data = (report_dir / "figures" / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 10_000


def test_summary_is_computed_when_missing(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", 1.0)
    assert not (run / "summary.json").exists()
    (loaded,) = load_runs([run], "target")
    assert (run / "summary.json").exists()
    assert loaded.summary["run_id"] == "r"


def test_one_group_says_there_is_nothing_to_compare(tmp_path: Path) -> None:
    runs = make_runs(tmp_path, "docker", [1.0, 2.0])
    assert compare_command(runs, "target", tmp_path / "out", None) == 0
    data = strict_json(tmp_path / "out" / "compare.json")
    assert data["verdicts"] == [
        "only one group (docker, by target): nothing to compare; give runs of two groups or "
        "group them differently with --by"
    ]


def test_fail_if_slower_gates_on_significant_losses(
    separated: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert compare_command(separated, "target", tmp_path / "a", None, "docker") == 0
    assert compare_command(separated, "target", tmp_path / "b", None, "swarm") == 1
    assert "--fail-if-slower swarm: f1 container_kill: docker recovered faster" in (
        capsys.readouterr().err
    )
    assert compare_command(separated, "target", tmp_path / "c", None, "podman") == 2
    assert "'podman': no such group" in capsys.readouterr().err


def test_fail_if_slower_does_not_gate_on_single_runs(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / "s", 3.0, "swarm"), make_run(tmp_path / "d", 1.0, "docker")]
    assert compare_command(runs, "target", tmp_path / "out", None, "swarm") == 0


@pytest.mark.parametrize(
    ("by", "label", "expected"),
    [
        ("node", None, "unknown --by 'node': use one of target, scenario, label"),
        ("label", None, "--by label needs --label KEY"),
        ("label", "variant", "no label 'variant' in manifest.json"),
    ],
)
def test_bad_grouping_exits_2(
    by: str,
    label: str | None,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = make_run(tmp_path / "run-a", 1.0)
    assert compare_command([run], by, tmp_path / "out", label) == 2
    err = capsys.readouterr().err
    assert expected in err
    if by == "label" and label:
        assert str(run) in err
    assert not (tmp_path / "out").exists()


def test_bad_directories_exit_2_naming_every_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = make_run(tmp_path / "good", 1.0)
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.mkdir()
    assert compare_command([good, missing, empty, good], "target", tmp_path / "out", None) == 2
    err = capsys.readouterr().err
    assert f"{missing}: not a directory" in err
    assert f"{empty}: no summary.json, and cannot compute it: manifest.json not found" in err
    assert f"{good}: given twice" in err
    assert compare_command([], "target", None, None) == 2
    assert "no run directory given" in capsys.readouterr().err


def test_load_runs_raises_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_runs([tmp_path / "nope"], "target")
    assert info.value.exit_code == 2


def test_typer_wrapper(separated: list[Path], tmp_path: Path) -> None:
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("compare")(compare)
    out = tmp_path / "cli"
    args = ["compare", *map(str, separated[:4]), "--by", "target", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--fail-if-slower", "swarm"])

    assert result.exit_code == 0, result.output  # 2 vs 2 runs: too few to call it
    assert result.stdout.strip().splitlines()[-1] == str(out / "compare.html")
    assert (out / "compare.json").is_file()
    assert CliRunner().invoke(app, ["compare"]).exit_code == 2


def test_a_fault_missing_from_a_group_is_not_compared() -> None:
    pair = judge("f2 cpu_stress", group_fault("a", [1.0]), group_fault("b", []))
    assert pair.winner is None and pair.basis == "missing"
    assert pair.sentence == (
        "f2 cpu_stress: only in a; b has no run with this fault, nothing to compare."
    )


# -- before and after: thresholds ------------------------------------------------------------


def latency_run(run_dir: Path, ttr_s: float, after_ms: float, variant: str) -> Path:
    """make_run's kill, with requests after the recovery taking `after_ms`."""
    make_run(run_dir, ttr_s, labels={"variant": variant})
    frame = pd.read_parquet(run_dir / "requests.parquet")
    late = frame["start_ns"] > ns(KILL_AT + ttr_s + 1.0)
    frame.loc[late, "latency_ms"] = after_ms
    frame.to_parquet(run_dir / "requests.parquet", index=False)
    return run_dir


def before_after(root: Path, before: Sequence[float], after: Sequence[float]) -> list[Path]:
    """Runs labelled variant=before / variant=after with these times to recover."""
    runs = [
        *(make_run(root / f"before-{i}", t, labels={"variant": "before"}) for i, t in
          enumerate(before)),
        *(make_run(root / f"after-{i}", t, labels={"variant": "after"}) for i, t in
          enumerate(after)),
    ]  # fmt: skip
    return runs


def checks_of(runs: list[Path], *specs: str, reference: str = "before") -> list[Check]:
    comparison = compare_runs(load_runs(runs, "label", "variant"), "label", "variant")
    return regression_checks(comparison, parse_thresholds(list(specs)), reference)


def test_thresholds_are_parsed_with_every_problem_at_once() -> None:
    assert parse_thresholds(["ttr_s=10%", "p95_ms[after]=5%", "ttd_s[f1]=0.25"]) == [
        Threshold("ttr_s", None, 0.10, True),
        Threshold("p95_ms", "after", 0.05, True),
        Threshold("ttd_s", "f1", 0.25, False),
    ]
    with pytest.raises(ScenarioError) as caught:
        parse_thresholds(["ttr=10%", "p95_ms[f1]=5%", "ttr_s=ten%", "ttr_s"])
    assert caught.value.problems == [
        "--threshold 'ttr=10%': unknown metric 'ttr'; known: ttr_s, ttd_s, failed_requests, "
        "availability, lost_requests, kill_to_die_s, die_to_start_s, start_to_healthy_s, "
        "to_degraded_s, "
        "to_replacement_running_s, to_full_strength_s, response_s, p50_ms, p95_ms, p99_ms, "
        "error_rate, throughput_rps",
        "--threshold 'p95_ms[f1]=5%': p95_ms is per phase: the subject is one of baseline, "
        "fault, recovery, after",
        "--threshold 'ttr_s=ten%': amount 'ten%' is not a number nor a percentage",
        "--threshold 'ttr_s': expected METRIC=AMOUNT or METRIC[SUBJECT]=AMOUNT, e.g. ttr_s=10%",
    ]


def test_a_faster_after_is_better_with_the_interval_of_the_difference(tmp_path: Path) -> None:
    runs = before_after(tmp_path, [2.0, 2.1, 2.2, 2.3, 2.4], [1.0, 1.1, 1.2, 1.3, 1.4])
    (check,) = checks_of(runs, "ttr_s=10%")

    assert check.verdict == "better" and not check.regression
    assert check.difference == pytest.approx(-1.0)
    assert check.p_value == pytest.approx(2 / 252)  # exact: the most extreme of 252 splits
    # resampled medians differ by at most 1.4 and at least 0.6; the interval excludes 0
    assert check.ci95 is not None
    assert -1.4 - 1e-9 <= check.ci95[0] < -1.0 < check.ci95[1] <= -0.6 + 1e-9
    assert check.reason.startswith("2.2 s -> 1.2 s (-1 s, -45.5 %), threshold 10 % (0.22 s)")


def test_worse_needs_both_the_threshold_and_significance(tmp_path: Path) -> None:
    before, after = [1.00, 1.01, 1.02, 1.03, 1.04], [1.05, 1.06, 1.07, 1.08, 1.09]
    slower = before_after(tmp_path / "a", before, after)
    (small,) = checks_of(slower, "ttr_s=10%")
    # every after run is slower (significant), but by 5 %: within the threshold
    assert small.verdict == "no detectable difference"
    assert "significant" in small.reason and "within the threshold" in small.reason
    (zero,) = checks_of(slower, "ttr_s=0%")
    assert zero.verdict == "worse" and zero.regression

    noisy = before_after(tmp_path / "b", [1.0, 3.0, 1.2, 2.8, 1.4], [1.5, 2.9, 1.1, 3.1, 1.6])
    (check,) = checks_of(noisy, "ttr_s=10%")
    assert check.verdict == "no detectable difference" and "not significant" in check.reason

    few = before_after(tmp_path / "c", [1.0, 1.1], [3.0, 3.1])
    (check,) = checks_of(few, "ttr_s=10%")
    assert check.verdict == "no detectable difference"
    assert "too few values to test (n=2 vs 2, 4 per group are the fewest" in check.reason


def test_an_after_that_never_recovers_is_worse_whatever_the_threshold(tmp_path: Path) -> None:
    runs = before_after(tmp_path, [1.0, 1.1, 1.2], [0.5, None, 0.6])
    (check,) = checks_of(runs, "ttr_s=1000%")
    assert check.verdict == "worse"
    assert check.reason == ("more runs never recovered (before: 0 of 3 unrecovered, after: 1 of 3)")


def test_phase_thresholds_compare_latency(tmp_path: Path) -> None:
    runs = [
        *(latency_run(tmp_path / f"b{i}", 1.0, 5.0 + i * 0.1, "before") for i in range(4)),
        *(latency_run(tmp_path / f"a{i}", 1.0, 9.0 + i * 0.1, "after") for i in range(4)),
    ]
    checks = {c.name: c for c in checks_of(runs, "p95_ms[after]=5%", "p50_ms=50%")}

    assert checks["p95_ms[after]"].verdict == "worse"
    assert checks["p95_ms[after]"].reference_median == pytest.approx(5.15, abs=0.01)
    assert checks["p95_ms[after]"].candidate_median == pytest.approx(9.15, abs=0.01)
    # without a subject: every phase both groups have; baseline latencies are the same 5 ms
    assert checks["p50_ms[baseline]"].verdict == "no detectable difference"
    assert checks["p50_ms[after]"].verdict == "worse"  # +78 %, beyond 50 %


@pytest.mark.parametrize(("first", "code"), [("before", 0), ("after", 1)])
def test_fail_on_regression_gates_only_on_a_worse_verdict(
    tmp_path: Path, first: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = before_after(tmp_path, [2.0, 2.1, 2.2, 2.3, 2.4], [1.0, 1.1, 1.2, 1.3, 1.4])
    ordered = sorted(runs, key=lambda p: not p.name.startswith(first))  # first group given first
    gates = Gates(thresholds=("ttr_s=10%",), fail_on_regression=True)
    assert compare_command(ordered, "label", tmp_path / "out", "variant", gates=gates) == code
    err = capsys.readouterr().err
    if code:
        assert "--fail-on-regression: ttr_s[f1] (before vs after): worse" in err
    else:
        assert "ttr_s[f1] (after vs before): better" in err
    data = strict_json(tmp_path / "out" / "compare.json")
    (check,) = data["regression_checks"]
    assert check["verdict"] == ("worse" if code else "better")
    assert "Before and after" in (tmp_path / "out" / "compare.html").read_text()


def test_fail_on_regression_needs_a_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = before_after(tmp_path, [2.0], [1.0])
    gates = Gates(fail_on_regression=True, baseline="nope")
    assert compare_command(runs, "label", tmp_path / "out", "variant", gates=gates) == 2
    assert "--fail-on-regression needs at least one --threshold" in capsys.readouterr().err
    gates = Gates(thresholds=("ttr_s=5%",), baseline="nope")
    assert compare_command(runs, "label", tmp_path / "out", "variant", gates=gates) == 2
    assert "--baseline 'nope': no such group" in capsys.readouterr().err


def test_trials_directories_are_accepted_as_runs(tmp_path: Path) -> None:
    from tests.test_trials import completed, write_ledger

    before = tmp_path / "before"
    runs = [
        make_run(before / f"r{i}", t, labels={"variant": "before"})
        for i, t in enumerate([2.0, 2.2])
    ]
    failed = {"index": 3, "outcome": "failed", "run_dir": None, "error": "x"}
    write_ledger(before, [completed(1, runs[0]), completed(2, runs[1]), failed])
    after = make_run(tmp_path / "after", 1.0, labels={"variant": "after"})
    expanded = expand_run_dirs([before, after])
    assert expanded == [*runs, after]


# -- runs measured differently are not ranked ------------------------------------------------


def measured_as(run_dir: Path, routing: str | None, window_s: float | None) -> Path:
    """The run's summary rewritten as if its load took `routing` and its analysis used a
    `window_s` window (None: a summary from before the field was recorded)."""
    read_run_summary(run_dir)  # computed and written
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    load, analysis = summary["load"], summary["analysis"]
    load.pop("routing", None)
    analysis.pop("window_s", None)
    if routing is not None:
        load["routing"] = routing
    if window_s is not None:
        analysis["window_s"] = window_s
    summary.update(load=load, analysis=analysis)
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run_dir


def test_runs_on_different_routing_or_windows_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = measured_as(make_run(tmp_path / "docker-0", 1.0, "docker"), "per_instance", 10.0)
    kube = measured_as(make_run(tmp_path / "k8s-0", 1.0, "kubernetes"), "service", 10.0)
    assert compare_command([docker, kube], "target", tmp_path / "out", None) == 2
    err = capsys.readouterr().err
    assert "load.routing differs: per_instance (docker-0) vs service (k8s-0)" in err
    assert not (tmp_path / "out").exists()

    wide = measured_as(make_run(tmp_path / "k8s-1", 1.0, "kubernetes"), "per_instance", 30.0)
    assert compare_command([docker, wide], "target", tmp_path / "out", None) == 2
    assert "analysis.window_s differs: 10 s (docker-0) vs 30 s (k8s-1)" in capsys.readouterr().err


def test_runs_without_the_fields_compare_only_with_runs_equally_without(tmp_path: Path) -> None:
    new = measured_as(make_run(tmp_path / "new", 1.0, "docker"), "service", 10.0)
    old = measured_as(make_run(tmp_path / "old", 2.0, "swarm"), "service", None)
    with pytest.raises(ScenarioError) as info:
        compare_runs(load_runs([new, old], "target"), "target")
    assert "analysis.window_s differs: 10 s (new) vs not recorded (old)" in info.value.problems

    older = measured_as(make_run(tmp_path / "older", 3.0, "podman"), "service", None)
    comparison = compare_runs(load_runs([old, older], "target"), "target")
    assert comparison.measurement is not None
    description = comparison.measurement.describe()
    assert "analysis.window_s not recorded" in description
    assert "compared only with runs equally without it" in description


def test_a_run_without_faults_agrees_with_any_view(tmp_path: Path) -> None:
    calm = tmp_path / "calm"
    write_run(calm, series(0.0, END_AT, 0.1), load_s=(0.0, END_AT))
    faulted = make_run(tmp_path / "kill", 1.0, "swarm")
    runs = load_runs(
        [measured_as(calm, "service", 10.0), measured_as(faulted, "service", 10.0)], "target"
    )
    comparison = compare_runs(runs, "target")  # no view in calm: nothing to disagree with
    assert comparison.measurement is not None
    assert comparison.measurement.views == ("instance",)  # the synthetic kill's view
