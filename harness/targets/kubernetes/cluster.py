"""Which Kubernetes cluster a run talks to, and one connection to it through the official client.

A target names its cluster by `target.kubeconfig` (+ `target.context`), or, without one, the
local lab (`harness lab up --kind kubernetes`), whose kubeconfig the lab writes. There is no
silent fallback to ~/.kube/config or $KUBECONFIG: a chaos run pointed at a user's own
(production) cluster by accident would be the worst kind of surprise, so that takes an
explicit `target.kubeconfig`.

`host_access` says whether the cluster's containers are processes of this machine (the local
lab, or any kubeconfig whose API server is an address of this machine: a kind or minikube
cluster on this host), so the host-side faults can reach them; a remote cluster gets only the
API-level faults.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
import yaml
from kubernetes import config as kube_config
from kubernetes.client import (
    ApiClient,
    AppsV1Api,
    CoreV1Api,
    DiscoveryV1Api,
    VersionApi,
)
from kubernetes.client.exceptions import ApiException, OpenApiException
from kubernetes.config.config_exception import ConfigException

from harness.errors import HarnessError, TargetError
from harness.hostsys import host_access_allowed
from harness.labs.kubernetes.session import lab_kubeconfig
from harness.specs import TargetSpec
from harness.targets.kubernetes.host import server_is_local
from harness.targets.kubernetes.spec import kube_spec

CONNECT_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 30.0
TIMEOUT = (CONNECT_TIMEOUT_S, CALL_TIMEOUT_S)

T = TypeVar("T")


@dataclass(frozen=True)
class ClusterRef:
    """Where a cluster is, before connecting: its kubeconfig, context and API server."""

    kubeconfig: Path
    context: str | None
    server: str
    lab: bool  # the local lab's own kubeconfig

    @property
    def host_access(self) -> bool:
        # CHAOS_HARNESS_HOST_ACCESS=none: even the lab is treated as a cluster elsewhere
        return (self.lab or server_is_local(self.server)) and host_access_allowed()

    def describe(self) -> str:
        where = "the local Kubernetes lab" if self.lab else str(self.kubeconfig)
        context = f", context {self.context}" if self.context else ""
        return f"{where}{context} ({self.server})"


def kubeconfig_server(path: Path, context: str | None) -> str:
    """The API server URL a kubeconfig's context points at (read, not connected)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TargetError(f"cannot read the kubeconfig {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise TargetError(f"{path} is not a kubeconfig (no mapping at its top)")
    name = context or raw.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in raw.get("contexts") or []}
    if name not in contexts:
        known = ", ".join(str(c) for c in contexts) or "none"
        raise TargetError(f"{path} has no context {name!r} (contexts: {known})")
    cluster_name = contexts[name].get("cluster")
    clusters = {c.get("name"): c.get("cluster") or {} for c in raw.get("clusters") or []}
    server = clusters.get(cluster_name, {}).get("server")
    if not server:
        raise TargetError(f"{path}: context {name!r} names no cluster with a server")
    return str(server)


def resolve(kubeconfig: str | None, context: str | None, lab_wanted: bool) -> ClusterRef | None:
    """The cluster a target spec means; None when that is a lab that is not up (yet)."""
    lab = lab_kubeconfig()
    if kubeconfig is not None:
        path = Path(kubeconfig).expanduser()
        is_lab = lab is not None and path.resolve() == lab.resolve()
        return ClusterRef(path, context, kubeconfig_server(path, context), is_lab)
    if lab is None:
        if lab_wanted:
            return None
        raise TargetError(
            "no Kubernetes cluster: the local lab is not up and the scenario names no "
            "kubeconfig; run 'harness lab up --kind kubernetes --nodes 1', give "
            "target.lab (a lab brought up for the run), or target.kubeconfig"
        )
    return ClusterRef(lab, context, kubeconfig_server(lab, context), lab=True)


def api_call(
    error: type[HarnessError], what: str, function: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """One API call with the harness's timeouts; a failure is `error` saying `what` failed."""
    try:
        return function(*args, _request_timeout=TIMEOUT, **kwargs)
    except API_ERRORS as exc:
        raise error(f"{what} failed: {describe_api_error(exc)}") from exc


def api_call_unless(
    error: type[HarnessError],
    statuses: Collection[int],
    what: str,
    function: Callable[..., T],
    *args: Any,
    **kwargs: Any,
) -> T | None:
    """As api_call, but None when the API answers one of `statuses` (404: gone; 409: exists)."""
    try:
        return function(*args, _request_timeout=TIMEOUT, **kwargs)
    except ApiException as exc:
        if exc.status in statuses:
            return None
        raise error(f"{what} failed: {describe_api_error(exc)}") from exc
    except API_ERRORS as exc:
        raise error(f"{what} failed: {describe_api_error(exc)}") from exc


def describe_api_error(exc: Exception) -> str:
    """The API server's own message when it sent one, else the transport's error."""
    if isinstance(exc, ApiException):
        message = ""
        with contextlib.suppress(ValueError, TypeError):
            message = str(json.loads(exc.body or "").get("message") or "")
        return f"{exc.status} {exc.reason}: {message}" if message else f"{exc.status} {exc.reason}"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"


API_ERRORS = (ApiException, OpenApiException, urllib3.exceptions.HTTPError, OSError)


def status_of(exc: Exception) -> int | None:
    return exc.status if isinstance(exc, ApiException) else None


class Cluster:
    """One connection (an ApiClient of its own, never the module-global configuration)."""

    def __init__(self, ref: ClusterRef) -> None:
        self.ref = ref
        try:
            self.client: ApiClient = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(ref.kubeconfig), context=ref.context, persist_config=False
            )
        except (ConfigException, OSError, ValueError) as exc:
            raise TargetError(f"cannot load the kubeconfig {ref.kubeconfig}: {exc}") from exc
        self.core = CoreV1Api(self.client)
        self.apps = AppsV1Api(self.client)
        self.discovery = DiscoveryV1Api(self.client)
        self.version = self._server_version()

    def _server_version(self) -> str:
        try:
            info = VersionApi(self.client).get_code(_request_timeout=TIMEOUT)
        except API_ERRORS as exc:
            raise TargetError(
                f"cannot reach the Kubernetes API at {self.ref.describe()}: "
                f"{describe_api_error(exc)}"
            ) from exc
        return str(info.git_version)

    def call(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One API call with the harness's timeouts; errors become TargetError saying `what`."""
        return api_call(TargetError, what, function, *args, **kwargs)

    def call_unless(
        self,
        statuses: Collection[int],
        what: str,
        function: Callable[..., T],
        *args: Any,
        **kwargs: Any,
    ) -> T | None:
        """As call(), but None when the API answers one of `statuses` (404: already gone...)."""
        return api_call_unless(TargetError, statuses, what, function, *args, **kwargs)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()  # type: ignore[no-untyped-call]


def remote_cluster_of(spec: TargetSpec) -> str | None:
    """The API server of a cluster not on this machine; None for the lab or a local one."""
    spec = kube_spec(spec)
    if spec.kubeconfig is None:
        return None
    try:
        ref = resolve(spec.kubeconfig, spec.context, lab_wanted=True)
    except TargetError:
        return None  # an unreadable kubeconfig is reported when the run connects
    if ref is None or ref.host_access:
        return None
    return ref.server
