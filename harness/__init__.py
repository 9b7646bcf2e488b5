"""chaos-harness: benchmark and chaos-test container orchestrators under real load."""

from __future__ import annotations

__version__ = "0.1.0"
