"""One HTTP probe, standard library only: the harness's probers and the fault agent's (whose
image has no pandas, so it cannot import harness.observe) use this one."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit


def probe_once(url: str, timeout_s: float) -> tuple[bool, str | None]:
    """One GET on a fresh connection: (ok, error kind)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        connection.request("GET", parts.path or "/")
        status = connection.getresponse().status
        return (200 <= status < 400), (None if status < 400 else f"HTTP {status}")
    except TimeoutError:
        return False, "timeout"
    except OSError as exc:
        return False, type(exc).__name__
    except http.client.HTTPException as exc:
        return False, type(exc).__name__
    finally:
        connection.close()
