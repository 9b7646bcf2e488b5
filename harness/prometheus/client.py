"""Prometheus' HTTP API through requests: readiness, instant and range queries.

Every failure is a PrometheusError that says which server, which query and what to do: a
server that does not answer, an HTTP error, a query Prometheus refuses (its own message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from harness.errors import PrometheusError, PrometheusQueryError

TIMEOUT_S = 10.0
# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and its (unix seconds, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


class PrometheusClient:
    """One server, by its base URL (http://host:port, with any path prefix)."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def ready(self) -> None:
        """Raise PrometheusError unless /-/ready answers 200."""
        try:
            response = requests.get(f"{self.url}/-/ready", timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise PrometheusError(
                f"Prometheus at {self.url} does not answer ({_short(exc)}): start it "
                "(`harness prometheus up` starts one) or correct observe.prometheus.url"
            ) from exc
        if response.status_code != 200:
            raise PrometheusError(
                f"Prometheus at {self.url} is not ready (/-/ready answered "
                f"{response.status_code}: {response.text.strip()[:200]}); wait for it or "
                "correct observe.prometheus.url"
            )

    def query(self, query: str, at_s: float | None = None) -> Any:
        """An instant query's `data` (a syntax error is refused here, as at any time)."""
        params: dict[str, str] = {"query": query}
        if at_s is not None:
            params["time"] = f"{at_s:.3f}"
        return self._get("/api/v1/query", params, query)

    def query_range(self, query: str, start_s: float, end_s: float, step_s: float) -> list[Series]:
        """The range query's series (a matrix); a scalar answer is one unlabelled series."""
        params = {
            "query": query,
            "start": f"{start_s:.3f}",
            "end": f"{end_s:.3f}",
            "step": f"{step_s:g}",
        }
        data = self._get("/api/v1/query_range", params, query)
        kind, result = data.get("resultType"), data.get("result", [])
        if kind != "matrix":
            raise PrometheusError(
                f"Prometheus at {self.url}: query {query!r} gave a {kind}, not a range of "
                "values; give an expression with a value at each instant"
            )
        return [
            Series(dict(s.get("metric", {})), [(float(t), float(v)) for t, v in s["values"]])
            for s in result
        ]

    def _get(self, path: str, params: dict[str, str], query: str) -> Any:
        try:
            response = requests.get(f"{self.url}{path}", params=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise PrometheusError(
                f"Prometheus at {self.url} does not answer {path} for {query!r} "
                f"({_short(exc)}): start it or correct observe.prometheus.url"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            error = body.get("error") or response.text.strip()[:300]
            refused = body.get("errorType") == "bad_data"
            raise (PrometheusQueryError if refused else PrometheusError)(
                f"Prometheus at {self.url} refused {query!r} ({response.status_code}: "
                f"{error}); correct the query (the server's /graph page shows the same error)"
            )
        return body.get("data", {})


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."


def check_server(url: str, queries: list[str]) -> list[tuple[int, str]]:
    """Before a run: the server is ready (else PrometheusError) and which queries it refuses,
    as (index, Prometheus' message); each is sent once as an instant query."""
    client = PrometheusClient(url)
    client.ready()
    refused = []
    for index, query in enumerate(queries):
        try:
            data = client.query(query)
        except PrometheusQueryError as exc:
            refused.append((index, str(exc)))
            continue
        if data.get("resultType") == "matrix":  # a range vector: no value at an instant
            refused.append(
                (
                    index,
                    f"{query!r} is a range vector, which has no value at each step: wrap it "
                    "in a function of one, e.g. rate(...) or max_over_time(...)",
                )
            )
    return refused
