"""config.json from a RunSpec: Docker's defaults, the limits, the seccomp profile resolved per container."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.engine.runtime.bundle import (
    DEFAULT_CAPS,
    DEFAULT_PATH,
    READONLY_PATHS,
    RunSpec,
    build_config,
    effective_caps,
    seccomp_profile,
    write_bundle,
)
from workbench.errors import InvalidArgument

CID = "c0ffee" * 4


def cfg(**kw: object) -> dict:
    kw.setdefault("args", ["sh"])
    kw.setdefault("rootfs", Path("/tmp/rootfs"))
    return build_config(CID, RunSpec(**kw))  # type: ignore[arg-type]


def _names(profile: dict) -> set[str]:
    return {n for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for n in rule["names"]}


def test_write_bundle_is_valid_json_at_bundle_path(tmp_path: Path) -> None:
    path = write_bundle(tmp_path, CID, RunSpec(args=["echo", "hi"], rootfs=tmp_path / "rootfs", hostname="h"))
    assert path == tmp_path / "config.json"
    doc = json.loads(path.read_text())
    assert doc["ociVersion"].startswith("1.0") and doc["process"]["args"] == ["echo", "hi"]
    assert doc["root"] == {"path": str((tmp_path / "rootfs").resolve()), "readonly": False}
    assert not list(tmp_path.glob(".tmp*"))


def test_docker_defaults() -> None:
    doc = cfg(hostname="abc")
    proc, linux = doc["process"], doc["linux"]
    assert proc["terminal"] is False and proc["noNewPrivileges"] is False
    assert proc["user"] == {"uid": 0, "gid": 0} and proc["cwd"] == "/"
    assert proc["env"] == [DEFAULT_PATH]
    caps = proc["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == list(DEFAULT_CAPS)
    assert "inheritable" not in caps and "ambient" not in caps
    assert len(DEFAULT_CAPS) == 14
    nofile = proc["rlimits"][0]
    assert nofile["type"] == "RLIMIT_NOFILE" and 0 < nofile["soft"] == nofile["hard"] <= 1048576
    assert [n["type"] for n in linux["namespaces"]] == ["mount", "pid", "uts", "ipc", "network"]
    assert linux["cgroupsPath"] == f"/workbench/{CID}"
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]
    assert linux["readonlyPaths"] == list(READONLY_PATHS)
    assert doc["hostname"] == "abc"
    dests = [m["destination"] for m in doc["mounts"]]
    assert dests == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    shm = doc["mounts"][-1]
    assert "size=67108864" in shm["options"] and "mode=1777" in shm["options"]
    assert linux["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert "memory" not in linux["resources"] and "cpu" not in linux["resources"]


def test_env_keeps_given_path_and_user() -> None:
    doc = cfg(env=["PATH=/bin", "A=1"], uid=1000, gid=100, additional_gids=[5, 6], cwd="/w")
    assert doc["process"]["env"] == ["PATH=/bin", "A=1"]
    assert doc["process"]["user"] == {"uid": 1000, "gid": 100, "additionalGids": [5, 6]}
    assert doc["process"]["cwd"] == "/w"


@pytest.mark.parametrize(("network", "expected"), [
    ("none", {"type": "network"}),
    ("host", None),
    ("/proc/42/ns/net", {"type": "network", "path": "/proc/42/ns/net"}),
])
def test_network_namespace(network: str, expected: dict | None) -> None:
    ns = [n for n in cfg(network=network)["linux"]["namespaces"] if n["type"] == "network"]
    assert ns == ([expected] if expected else [])


def test_bad_network_and_empty_command() -> None:
    with pytest.raises(InvalidArgument):
        cfg(network="bridge")
    with pytest.raises(InvalidArgument, match="No command specified"):
        cfg(args=[])


def test_limits() -> None:
    res = cfg(memory=8 << 20, nano_cpus=1_500_000_000, pids_limit=64)["linux"]["resources"]
    assert res["memory"]["limit"] == 8 << 20
    assert res["memory"].get("swap", 16 << 20) == 16 << 20          # Docker: swap defaults to 2x memory
    assert res["cpu"] == {"quota": 150_000, "period": 100_000}
    assert res["pids"] == {"limit": 64}
    assert cfg(memory=8 << 20, memory_swap=-1)["linux"]["resources"]["memory"].get("swap", -1) == -1
    assert "pids" not in cfg(pids_limit=-1)["linux"]["resources"]
    with pytest.raises(InvalidArgument, match="Minimum memory limit"):
        cfg(memory=1 << 20)
    with pytest.raises(InvalidArgument, match="memoryswap"):
        cfg(memory=16 << 20, memory_swap=8 << 20)


def test_mounts_readonly_rootfs_and_annotations() -> None:
    doc = cfg(mounts=[("/srv/data", "/data", "bind", ["rbind", "ro"])], readonly_rootfs=True, stdin=True,
              stdin_once=True, shm_size=1 << 20, oom_score_adj=500)
    assert doc["mounts"][-1] == {"destination": "/data", "type": "bind", "source": "/srv/data",
                                 "options": ["rbind", "ro"]}
    assert doc["root"]["readonly"] is True
    assert "size=1048576" in [m for m in doc["mounts"] if m["destination"] == "/dev/shm"][0]["options"]
    assert doc["process"]["oomScoreAdj"] == 500
    assert doc["annotations"]["io.workbench.stdin"] == "true"
    assert doc["annotations"]["io.workbench.stdin-once"] == "true"
    assert doc["annotations"]["io.workbench.cgroup"] == f"/workbench/{CID}"
    with pytest.raises(InvalidArgument):
        cfg(mounts=[("/x", "relative", "bind", ["rbind"])])


def test_cap_tweaks_follow_docker() -> None:
    assert effective_caps([], [], False) == list(DEFAULT_CAPS)
    assert effective_caps(["net_admin"], ["CAP_MKNOD"], False) == \
        [c for c in DEFAULT_CAPS if c != "CAP_MKNOD"] + ["CAP_NET_ADMIN"]
    assert effective_caps(["NET_ADMIN"], ["ALL"], False) == ["CAP_NET_ADMIN"]
    all_but_chown = effective_caps(["ALL"], ["CHOWN"], False)
    assert "CAP_CHOWN" not in all_but_chown and "CAP_SYS_ADMIN" in all_but_chown
    assert "CAP_SYS_ADMIN" in effective_caps([], [], True)
    with pytest.raises(InvalidArgument, match="unknown capability"):
        effective_caps(["NOT_A_CAP"], [], False)


def test_privileged_drops_confinement() -> None:
    doc = cfg(privileged=True)
    linux = doc["linux"]
    assert "seccomp" not in linux and "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "ro" not in [m for m in doc["mounts"] if m["destination"] == "/sys"][0]["options"]


def test_seccomp_is_dockers_default_resolved_for_caps() -> None:
    profile = cfg()["linux"]["seccomp"]
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert "SCMP_ARCH_X86_64" in profile["architectures"] or "SCMP_ARCH_AARCH64" in profile["architectures"]
    allowed = _names(profile)
    assert {"read", "write", "execve", "clone", "socket", "personality"} <= allowed
    assert not {"mount", "kcmp", "reboot", "unshare", "setns", "bpf", "kexec_load", "open_by_handle_at"} & allowed
    assert "ptrace" in allowed          # Docker allows it on kernels >= 4.8 (the minKernel rule)
    clone3 = [r for r in profile["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    for rule in profile["syscalls"]:
        assert set(rule) <= {"names", "action", "args", "errnoRet"}     # OCI form only
    ptrace = _names(seccomp_profile(list(DEFAULT_CAPS) + ["CAP_SYS_PTRACE"]))
    assert {"ptrace", "process_vm_readv", "kcmp"} <= ptrace
    admin = seccomp_profile(list(DEFAULT_CAPS) + ["CAP_SYS_ADMIN"])
    assert {"mount", "unshare", "setns", "clone3"} <= _names(admin)
    assert not [r for r in admin["syscalls"] if r["names"] == ["clone3"] and r["action"] != "SCMP_ACT_ALLOW"]


def test_seccomp_data_file_is_loaded_once() -> None:
    from workbench.engine.runtime import bundle
    bundle._seccomp_source.cache_clear()
    seccomp_profile(DEFAULT_CAPS)
    seccomp_profile(DEFAULT_CAPS)
    assert bundle._seccomp_source.cache_info().misses == 1
