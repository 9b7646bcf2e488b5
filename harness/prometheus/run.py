"""What a run does with Prometheus: serve its own metrics while it lasts, and read the
scenario's slo.prometheus checks once it has ended (into prometheus.json)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.analysis import load_run, summarize
from harness.prometheus.evaluate import evaluate_checks
from harness.prometheus.exporter import MetricsExporter
from harness.results.summary import write_prometheus_outcome
from harness.specs import ScenarioBase


def start_exporter(
    scenario: ScenarioBase, run_dir: Path, run_id: str, phase: Callable[[], str]
) -> MetricsExporter | None:
    """The run's /metrics when the scenario asks for it (observe.metrics), serving."""
    metrics = scenario.observe.metrics
    if metrics is None:
        return None
    one_off_s = scenario.analysis.detection_horizon
    identity = (run_id, scenario.name)
    return MetricsExporter(metrics.host, metrics.port, run_dir, identity, phase, one_off_s).start()


def evaluate_after_run(scenario: ScenarioBase, run_dir: Path) -> Path | None:
    """The slo.prometheus checks over the run's measured phases and fault windows, written
    to prometheus.json (the analysis reads them into summary.json); None without any."""
    server, checks = scenario.observe.prometheus, scenario.slo.prometheus
    if server is None or not checks:
        return None
    summary = summarize(load_run(run_dir))
    return write_prometheus_outcome(run_dir, evaluate_checks(server.url, checks, summary))
