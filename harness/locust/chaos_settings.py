"""The harness's settings (CHAOS_HARNESS_* variables) carried from the master to its workers.

A worker on another machine (`harness worker --master HOST:PORT`) has none of the run's
settings in its environment. Locust sends the master's custom command-line options to every
worker inside each "spawn" message, before the worker fires test_start and spawns users; so the
recorder registers one such option, ``--chaos-harness-settings`` (JSON, defaulting to the
process's own CHAOS_HARNESS_* variables), and `apply` copies the master's into the worker's
environment. The bundled locustfile calls `apply` in its own test_start listener before reading
its settings; a user's locustfile reads them in ``on_start`` (or later) to see them on remote
workers. A worker keeps its own name, record dir and process count.
"""

from __future__ import annotations

import json
import os
from typing import Any

OPTION = "chaos_harness_settings"
_PREFIX = "CHAOS_HARNESS_"
_OWN = frozenset({"CHAOS_HARNESS_WORKER_NAME", "CHAOS_HARNESS_RECORD_DIR"})


def own_settings() -> str:
    """This process's CHAOS_HARNESS_* variables as JSON (the option's default)."""
    chosen = {k: v for k, v in os.environ.items() if k.startswith(_PREFIX) and k not in _OWN}
    return json.dumps(chosen, sort_keys=True)


def add_option(parser: Any) -> None:
    """The custom option Locust carries from the master to the workers."""
    parser.add_argument(
        "--chaos-harness-settings",
        default=own_settings(),
        help="chaos-harness: the run's settings (JSON), sent by the master to its workers",
        include_in_web_ui=False,
    )


def apply(environment: Any) -> None:
    """On a worker: the master's settings into this process's environment (idempotent)."""
    options = getattr(environment, "parsed_options", None)
    raw = getattr(options, OPTION, None) if options is not None else None
    if not raw:
        return
    for key, value in json.loads(raw).items():
        if key.startswith(_PREFIX) and key not in _OWN:
            os.environ[key] = str(value)
