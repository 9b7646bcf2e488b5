"""Prometheus: SLOs read from a server after the run (`client`, `evaluate`), the run's own
metrics served while it lasts (`exporter`), and a local server for labs and tests (`server`)."""
