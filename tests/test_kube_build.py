"""Kubernetes built from its own module: the wrapper module, the cache, the pause image.

The wrapper's go.mod is checked against Kubernetes' own module in the Go module cache (the
staging directories that really exist there, the etcd version its go.mod pins); the built
binary, when the cache holds one, against what it says of itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness.errors import TargetError
from harness.labs.kubernetes import build, images


@pytest.fixture(scope="module")
def kubernetes() -> build.KubernetesModule:
    try:
        return build.kubernetes_module(build.find_go())
    except Exception as exc:  # no Go, or no module cache and no proxy: nothing to check against
        pytest.skip(f"Kubernetes' module is not available here: {exc}")


def test_the_wrapper_replaces_every_staging_module_with_its_published_tag(
    kubernetes: build.KubernetesModule,
) -> None:
    go_mod = build.wrapper_go_mod(kubernetes.go_mod, kubernetes.version)
    replaced = dict(re.findall(r"^\t(k8s\.io/[\w.-]+) => \1 (v\S+)$", go_mod, re.M))
    staging = {
        line.split("=>")[0].strip()
        for line in kubernetes.go_mod.splitlines()
        if "=> ./staging/src/" in line
    }
    assert set(replaced) == staging and len(staging) >= 30
    # the tags are published modules: the ones the Go module cache holds are those very tags
    cache = kubernetes.directory.parent
    held = [m for m in staging if list(cache.glob(f"{m.removeprefix('k8s.io/')}@v*"))]
    for module in held:
        assert (cache / f"{module.removeprefix('k8s.io/')}@{replaced[module]}").is_dir()
    assert set(replaced.values()) == {"v0." + kubernetes.version.removeprefix("v1.")}
    assert "./staging" not in go_mod
    pinned = re.search(r"go\.etcd\.io/etcd/server/v3 (v\S+)", kubernetes.go_mod)
    assert pinned is not None and f"go.etcd.io/etcd/server/v3 {pinned[1]}" in go_mod
    assert f"k8s.io/kubernetes {kubernetes.version}" in go_mod


def test_the_wrapper_refuses_a_go_mod_without_staging() -> None:
    with pytest.raises(TargetError, match="staging"):
        build.wrapper_go_mod("module x\n\ngo 1.25\n")
    with pytest.raises(TargetError, match="release"):
        build.staging_version("v2.0")


def test_the_main_runs_every_component_by_name() -> None:
    main = build.wrapper_main()
    for component in build.COMPONENTS:
        assert f'case "{component}":' in main
    for upstream in ("NewAPIServerCommand", "NewKubeletCommand", "etcdmain.Main"):
        assert upstream in main


def test_version_flags_name_the_release(kubernetes: build.KubernetesModule) -> None:
    flags = build.ldflags(kubernetes)
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion={kubernetes.version}" in flags
    assert flags.startswith("-s -w ")


def test_the_cache_key_follows_the_wrapper_and_the_flags() -> None:
    key = build.build_key("a", "b", "c")
    assert key == build.build_key("a", "b", "c")
    assert len({key, build.build_key("a2", "b", "c"), build.build_key("a", "b2", "c")}) == 3
    assert build.build_key("a", "b", "c2") != key


def test_a_partial_build_is_not_valid(tmp_path: Path) -> None:
    made = build.KubeBuild(tmp_path / "v1.34.12-x", "v1.34.12", "x")
    assert not made.valid()
    made.bin_dir.mkdir(parents=True)
    binary = made.bin_dir / build.BINARY
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    for component in build.COMPONENTS[:-1]:
        (made.bin_dir / component).symlink_to(build.BINARY)
    (made.directory / "build.json").write_text("{}")
    assert not made.valid()  # one symlink missing
    (made.bin_dir / build.COMPONENTS[-1]).symlink_to(build.BINARY)
    assert made.valid()
    with pytest.raises(TargetError):
        made.path("dockerd")


def test_the_cached_build_reports_the_release(kubernetes: build.KubernetesModule) -> None:
    made, _go_mod, _flags = build.planned(kubernetes.version)
    if not made.valid():
        pytest.skip("not built on this machine yet: `harness lab build --kind kubernetes`")
    for component in ("kubelet", "kube-apiserver", "kube-proxy"):
        out = subprocess.run(
            [str(made.path(component)), "--version"], capture_output=True, text=True, timeout=60
        ).stdout
        assert out.strip() == f"Kubernetes {kubernetes.version}", component
    etcd = subprocess.run(
        [str(made.path("etcd")), "--version"], capture_output=True, text=True, timeout=60
    ).stdout
    pinned = re.search(r"go\.etcd\.io/etcd/server/v3 v(\S+)", kubernetes.go_mod)
    assert pinned is not None and f"etcd Version: {pinned[1]}" in etcd
    stamp = json.loads((made.directory / "build.json").read_text())
    assert stamp["version"] == kubernetes.version and stamp["key"] == made.key


def test_the_pause_archive_is_a_docker_save_of_one_layer() -> None:
    archive = images.docker_archive("chaos-harness/pause:3.10", b"\x7fELF...", "/pause")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        (entry,) = manifest
        assert entry["RepoTags"] == ["chaos-harness/pause:3.10"]
        layer = tar.extractfile(entry["Layers"][0]).read()  # type: ignore[union-attr]
        config = json.loads(tar.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["Entrypoint"] == ["/pause"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        member = inner.getmember("pause")
        assert member.mode == 0o755 and inner.extractfile(member).read() == b"\x7fELF..."  # type: ignore[union-attr]


def test_the_pause_binary_is_kubernetes_own_and_static(
    kubernetes: build.KubernetesModule, tmp_path: Path
) -> None:
    archive = images.pause_archive(kubernetes.directory, tmp_path)
    assert images.pause_archive(kubernetes.directory, tmp_path) == archive  # cached
    with tarfile.open(archive) as tar:
        entry = json.loads(tar.extractfile("manifest.json").read())[0]  # type: ignore[union-attr]
        with tarfile.open(fileobj=tar.extractfile(entry["Layers"][0])) as layer:
            binary = tmp_path / "pause"
            binary.write_bytes(layer.extractfile("pause").read())  # type: ignore[union-attr]
    binary.chmod(0o755)
    described = subprocess.run(["file", str(binary)], capture_output=True, text=True).stdout
    if described:
        assert "statically linked" in described
    version = subprocess.run([str(binary), "-v"], capture_output=True, text=True, timeout=10)
    assert version.stdout.startswith("pause.c v3.10")
