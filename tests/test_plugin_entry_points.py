"""A target kind and a fault kind added by entry points alone: a throwaway package, installed
with pip and never importing anything but the harness's public modules, is validated and run
with no file under harness/ or faults/ edited.

The package goes into a directory of its own (`pip install --target`), put on PYTHONPATH for
the harness's subprocesses: that is where the entry points are found, and the shared venv,
which other test sessions use at the same time, never sees the plugin.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from harness.targets.base import RUN_LABEL
from tests.abort import REPO
from tests.helpers import harness_cli

PACKAGE = "chaos_plugin_example"

TARGET_MODULE = '''
"""A target kind of its own: the workload as containers of the host's Docker engine, through
the Docker target's public modules, offering one capability of its own ("example.freeze")."""

from typing import Literal

from harness import capabilities
from harness.specs import TargetSpec
from harness.targets.base import TargetKind
from harness.targets.docker.spec import EngineSpec
from harness.targets.docker.target import DockerTarget

FREEZE = "example.freeze"


class PlainSpec(EngineSpec):
    kind: Literal["plain"] = "plain"
    freeze_note: str = "frozen by the plugin"


class PlainTarget(DockerTarget):
    kind = "plain"


def provides(spec: TargetSpec) -> capabilities.Capabilities:
    engine = capabilities.one_engine("target plain")
    return capabilities.Capabilities(
        engine.provided - {capabilities.API_PAUSE} | {FREEZE},
        {**engine.reasons, capabilities.API_PAUSE: "the plain target pauses as example_freeze"},
    )


TARGET = TargetKind(
    name="plain",
    spec=PlainSpec,
    target="chaos_plugin_example.target:PlainTarget",
    capabilities=provides,
    may_provide=capabilities.ENGINE_ON_THIS_HOST | {FREEZE},
    unit="container",
)
'''

FAULT_MODULE = '''
"""A fault kind of its own: the selected replicas frozen through the target's API for a while,
needing the plugin target's own capability."""

from collections.abc import Sequence

from pydantic import Field

from faults.base import Fault, FaultContext, FaultParams, RevertRecord
from harness.targets.base import Instance


class FreezeParams(FaultParams):
    reason: str = Field(default="example", max_length=40)


class ExampleFreeze(Fault[FreezeParams]):
    kind = "example_freeze"
    summary = "freeze the selected replicas through the plain target (a plugin's fault)"
    params_model = FreezeParams
    requires = ("example.freeze",)

    def plan(self, ctx: FaultContext, fault_id: str, instances: Sequence[Instance]) -> RevertRecord:
        names = tuple(i.name for i in instances)
        return RevertRecord(fault_id, self.kind, names, "engine API pause")

    def apply(self, ctx: FaultContext, record: RevertRecord) -> None:
        current = {i.name: i for i in ctx.target.instances()}
        ctx.mark_action()
        for name in record.targets:
            ctx.target.pause_instance(current[name])

    @classmethod
    def revert(cls, ctx: FaultContext, record: RevertRecord) -> None:
        current = {i.name: i for i in ctx.target.instances()}
        for name in record.targets:
            if name in current and current[name].state == "paused":
                ctx.target.unpause_instance(current[name])
'''

ENTRY_POINTS = f"""\
[chaos_harness.targets]
plain = {PACKAGE}.target:TARGET

[chaos_harness.faults]
example_freeze = {PACKAGE}.fault:ExampleFreeze
"""


def _wheel(directory: Path) -> Path:
    """The package as a wheel, written by hand (the venv has no `wheel` to build one with,
    and no index to fetch it from): its modules and a dist-info with the entry points."""
    dist = "chaos_plugin_example-0.0.1.dist-info"
    files = {
        f"{PACKAGE}/__init__.py": "",
        f"{PACKAGE}/target.py": textwrap.dedent(TARGET_MODULE),
        f"{PACKAGE}/fault.py": textwrap.dedent(FAULT_MODULE),
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: chaos-plugin-example\nVersion: 0.0.1\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": ENTRY_POINTS,
    }
    records = [f"{name},{_digest(text)},{len(text.encode())}" for name, text in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*records, f"{dist}/RECORD,,"]) + "\n"
    path = directory / "chaos_plugin_example-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a harness that has the plugin installed."""
    root = tmp_path_factory.mktemp("plugin")
    site = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    done = subprocess.run(
        [*pip, "--target", str(site), str(_wheel(root))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(site.glob("chaos_plugin_example-*.dist-info/entry_points.txt"))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def _scenario(tmp_path: Path, name: str, **changes: Any) -> Path:
    data: dict[str, Any] = {
        "name": name,
        "target": {"kind": "plain", "freeze_note": "a setting only the plugin knows"},
        "workload": {"image": "demo", "replicas": 2, "restart": "always"},
        "load": {"users": 4, "spawn_rate": 4, "duration": "14s"},
        "probes": {"interval": "100ms"},
        "analysis": {"stable_for": "1s", "detection_horizon": "3s"},
        "faults": [{"kind": "example_freeze", "at": "5s", "duration": "2s", "reason": "demo"}],
    }
    data.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _harness(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return harness_cli(*args, env=env)


def test_the_plugins_kinds_validate(plugin_env: dict[str, str], tmp_path: Path) -> None:
    done = _harness(plugin_env, "validate", str(_scenario(tmp_path, "plugin-ok")))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_plugins_capabilities_refuse_with_their_reasons(
    plugin_env: dict[str, str], tmp_path: Path
) -> None:
    faults = [
        {"kind": "container_pause", "at": "2s", "duration": "1s"},
        {"kind": "node_down", "at": "3s", "duration": "1s"},
    ]
    done = _harness(plugin_env, "validate", str(_scenario(tmp_path, "plain", faults=faults)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "faults.0 (container_pause): the plain target pauses as example_freeze" in (done.stderr)
    assert "faults.1 (node_down): acts on whole nodes, and target plain is one engine" in (
        done.stderr
    )
    on_docker = _scenario(tmp_path, "docker", target={"kind": "docker"})
    done = _harness(plugin_env, "validate", str(on_docker))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "faults.0 (example_freeze): works only on target plain, not docker" in done.stderr


def test_a_setting_of_the_plugins_target_means_nothing_to_another(
    plugin_env: dict[str, str], tmp_path: Path
) -> None:
    scenario = _scenario(tmp_path, "s", target={"kind": "docker", "freeze_note": "x"})
    done = _harness(plugin_env, "validate", str(scenario))
    assert done.returncode == 2
    assert "target.freeze_note has no meaning for kind docker; remove it" in done.stderr


def test_without_the_plugin_its_kinds_are_unknown(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = _harness(env, "validate", str(_scenario(tmp_path, "s")))
    assert done.returncode == 2
    assert "unknown target kind 'plain'" in done.stderr


@pytest.mark.docker
def test_a_short_run_on_the_plugins_target_with_its_fault(
    plugin_env: dict[str, str], tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    done = _harness(
        plugin_env, "run", str(_scenario(tmp_path, "plugin-run")), "--out", str(tmp_path)
    )
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert manifest["target"] == "plain", done.stderr
    [fault] = summary["faults"]
    assert fault["kind"] == "example_freeze" and fault["mechanism"] == "engine API pause"
    # two replicas, one frozen for 2 s: its probes saw it, and saw it come back
    assert fault["targets"] and fault["impact"] == "visible" and fault["recovered"], fault
    label = {"label": f"{RUN_LABEL}={run_dir.name}"}
    assert docker_client.containers.list(all=True, filters=label) == []
