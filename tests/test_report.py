"""The HTML report and its figures, built from a run directory's stored files alone."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from harness.analysis import load_run, summarize
from harness.analysis.report import write_report
from tests.synthetic_run import (
    Event,
    Req,
    engine,
    inject,
    realistic_run,
    revert,
    series,
    write_run,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = realistic_run(tmp_path_factory.mktemp("runs") / "20240101-quickstart")
    return write_report(run_dir)


def test_report_is_self_contained(report: Path) -> None:
    html = report.read_text(encoding="utf-8")

    assert report.name == "report.html"
    assert "data:image/png;base64," in html
    # the timeline, the latency CDF per phase and (its faults' latency was judged: 150
    # requests a second) the latency-impact figure
    assert html.count("data:image/png;base64,") == 3
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""src=["'](?!data:)""", html), "an external resource is referenced"
    assert "<link" not in html and "<script" not in html


def test_report_content(report: Path) -> None:
    html = report.read_text(encoding="utf-8")

    for text in ("20240101-quickstart", "synthetic", "docker", "slo_violated"):
        assert text in html
    assert "a dead replica&#x27;s share of requests fails" in html  # escaped load note
    assert "restart policy applies" in html
    assert "container_kill" in html and "network_partition" in html
    assert "die → start" in html
    for phase in ("baseline", "fault", "recovery", "after"):
        assert f"<b>{phase}</b>" in html
    assert "availability[f1]" in html
    assert "Baseline" in html and ">healthy<" in html
    assert "measured on requests sent to web-2 and probes of web-2" in html
    assert "intended sent/s" in html and "load lost" in html
    assert "closed loop" in html


def test_figures_are_png(report: Path) -> None:
    figures = report.parent / "figures"
    width, height = png_size(figures / "timeline.png")
    assert 1000 <= width <= 2000 and 700 <= height <= 1400
    assert 30_000 < (figures / "timeline.png").stat().st_size < 3_000_000
    assert png_size(figures / "latency_by_phase.png")[0] >= 600


def test_report_from_stored_files_alone(report: Path) -> None:
    summary = json.loads((report.parent / "summary.json").read_text(encoding="utf-8"))
    assert summary["run_id"] == "20240101-quickstart"
    assert [f["id"] for f in summary["faults"]] == ["f1", "f2"]
    assert all(f["recovered"] for f in summary["faults"])


def test_report_marks_overlaps_no_impact_and_repeats(tmp_path: Path) -> None:
    # web-1 killed twice (f1#1 at 10 s, f1#2 at 20 s); a harmless latency fault on web-2 overlaps
    down = {*range(100, 110, 2), *range(200, 210, 2)}  # web-1's requests while it is down
    requests = [Req(i / 10, 5.0, i not in down, f"web-{i % 2 + 1}") for i in range(300)]
    events = [
        inject(10.0, "f1#1", targets=("web-1",), entry="f1", occurrence=1, has_duration=False),
        inject(10.5, "f2", kind="latency", targets=("web-2",), has_duration=True),
        revert(13.0, "f2", kind="latency"),
        inject(20.0, "f1#2", targets=("web-1",), entry="f1", occurrence=2, has_duration=False),
    ]
    run_dir = write_run(tmp_path / "run", requests, events=events, load_s=(0.0, 30.0))
    html = write_report(run_dir).read_text(encoding="utf-8")

    assert "no visible impact" in html
    assert "overlapped with f2: measured on different observations" in html
    assert "Repeated faults" in html and "f1#2" in html


def test_report_with_given_summary_and_text_escaped(tmp_path: Path) -> None:
    run_dir = write_run(
        tmp_path / "run", series(0.0, 10.0, 0.1), events=[inject(5.0, "f1")], load_s=(0.0, 10.0)
    )
    measured = summarize(load_run(run_dir))
    summary = measured.model_copy(update={"run_id": "<script>alert(1)</script>", "faults": []})
    html = write_report(run_dir, summary).read_text(encoding="utf-8")

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert (run_dir / "figures" / "timeline.png").is_file()


def test_report_of_empty_run(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "empty", [], load_s=(0.0, 10.0))
    html = write_report(run_dir).read_text(encoding="utf-8")

    assert "No fault was injected" in html
    assert "no request completed in the steady baseline" in html  # not an experiment
    assert png_size(run_dir / "figures" / "timeline.png")[0] > 0


def test_report_shows_each_faults_window_and_the_latency_counts(report: Path) -> None:
    html = report.read_text(encoding="utf-8")

    # the kill at +20 s is one-off: [20, 30); the partition 40-45 s: its 5 s + 10 s
    assert "+20.000 s, 10.000 s" in html and "+40.000 s, 15.000 s" in html
    assert "lost requests" in html
    summary = json.loads((report.parent / "summary.json").read_text())
    recovery = summary["phases"]["recovery"]["latency_ms"]
    assert f"{recovery['successful']} / {recovery['failed']}" in html


def test_report_says_a_fault_is_censored(tmp_path: Path) -> None:
    # web-1 killed at 27 s: 27.0..27.9 fail, successes from 28.005 until the data ends at
    # 29.905, short of stable_for (2 s): censored, recovered in at least 1.005 s
    failing = [r if not 27.0 <= r.start_s < 27.95 else Req(r.start_s, 5.0, False) for r in
               series(0.0, 30.0, 0.1)]  # fmt: skip
    run_dir = write_run(tmp_path / "run", failing, events=[inject(27.0, "f1")])
    html = write_report(run_dir).read_text(encoding="utf-8")

    assert "censored: at least 1.005 s" in html
    assert "(cut by the end of the data)" in html  # [27, 37) ends with the data at 29.905


def test_report_explains_impact_kind_timers_events_and_gaps(tmp_path: Path) -> None:
    # web-1 killed at 10 s: its requests started in [10, 11) fail, those in [11, 14) succeed
    # in 305 ms (errors and latency: both); it died at 10.004 and started at 14.004, 4 s
    # later, where Docker's first back-off (0.1 s) plus 2.5 s of start work predict at most
    # 2.6 s: the verdict is 'slower'. A BackOff Event at 12 s is in its window; the pods
    # watch failed 20-26 s.
    def request(i: int) -> Req:
        return Req(i / 10, 305.0 if 110 <= i < 140 else 5.0, ok=not 100 <= i < 110)

    events = [
        engine(-4.0, "start", "web-1"),
        inject(10.0, "f1", has_duration=False),
        engine(10.004, "die", "web-1", exitCode="137"),
        engine(14.004, "start", "web-1"),
        Event(12.0, "engine", "k8s_event", "web-1", {"reason": "BackOff", "type": "Warning"}),
        Event(20.0, "engine", "watch_failing", None, {"resource": "pods", "error": "403"}),
        Event(26.0, "engine", "watch_resumed", None, {"resource": "pods", "gap_s": "6.000"}),
    ]
    run_dir = write_run(
        tmp_path / "run", [request(i) for i in range(300)], events=events, load_s=(0.0, 30.0)
    )
    html = write_report(run_dir).read_text(encoding="utf-8")

    assert '<span class="badge fail">both</span>' in html
    assert "restarted 4.00 s after it died" in html
    assert '<span class="badge fail">slower</span> die_to_start [web-1]' in html
    assert "<td>+12.000 s</td>" in html and "BackOff" in html
    assert "the orchestrator&#x27;s view of pods had a gap of 6.0 s from +20.0 s (403)" in html
    assert (run_dir / "figures" / "latency_impact.png").exists()


def test_the_timeline_marks_kubernetes_notable_events() -> None:
    from matplotlib.figure import Figure

    from harness.analysis.kube_events import KubeEvent
    from harness.analysis.plots import TimeAxis, draw_k8s_events

    def event(at_s: float, reason: str, kind: str = "Warning") -> KubeEvent:
        return KubeEvent(round(at_s * 1e9), reason, kind, "Pod/web-x", "web-1", "", None)

    ax = Figure().subplots()
    # two BackOff Events of web-1 in the same second are one mark; Unhealthy another
    events = [event(12.2, "BackOff"), event(12.7, "BackOff"), event(15.0, "Unhealthy")]
    draw_k8s_events(ax, events, TimeAxis(0, 30.0), 30.0)

    assert [line.get_xdata()[0] for line in ax.get_lines()] == [12.2, 15.0]
    assert [t.get_text() for t in ax.texts] == [" BackOff web-1", " Unhealthy web-1"]
