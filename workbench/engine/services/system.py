"""System facts: version, info, disk usage. Knows nothing of HTTP."""

from __future__ import annotations

import ipaddress
import os
import platform
import socket
import sys
import time
from typing import Any

from workbench import API_VERSION, MIN_API_VERSION, __version__
from workbench.oci.image import go_arch
from workbench.oci.registry_hosts import registry_entry


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


class SystemService:
    def __init__(self, config: Any, engine_id: str, images: Any, containers: Any,
                 runtime_name: str, extras: dict[str, Any] | None = None) -> None:
        self.config = config
        self.engine_id = engine_id
        self.images = images
        self.containers = containers
        self.runtime_name = runtime_name
        self.extras = extras or {}
        self.started = time.time()

    def version(self) -> dict[str, Any]:
        details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Arch": go_arch(),
                   "BuildTime": "", "Experimental": "false", "GitCommit": "workbench",
                   "GoVersion": f"python{sys.version.split()[0]}", "KernelVersion": platform.release(),
                   "Os": "linux"}
        return {
            "Platform": {"Name": "Workbench Engine"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "workbench", "GoVersion": details["GoVersion"], "Os": "linux", "Arch": go_arch(),
            "KernelVersion": platform.release(), "BuildTime": "", "Experimental": False,
        }

    def info(self) -> dict[str, Any]:
        counts = self.containers.counts()
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        cgv = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
        return {
            "ID": self.engine_id, "Name": socket.gethostname(), "ServerVersion": __version__,
            "Containers": sum(counts.values()), "ContainersRunning": counts.get("running", 0),
            "ContainersPaused": counts.get("paused", 0),
            "ContainersStopped": sum(v for k, v in counts.items() if k not in ("running", "paused")),
            "Images": self.images.count(), "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
            "DockerRootDir": str(self.config.root), "OperatingSystem": _os_name(), "OSType": "linux",
            "OSVersion": "", "KernelVersion": platform.release(), "Architecture": platform.machine(),
            "NCPU": os.cpu_count() or 1, "MemTotal": mem, "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": _registry_config(self.config.insecure_registries),
            "Runtimes": {self.runtime_name: {"path": self.runtime_name}},
            "DefaultRuntime": self.runtime_name, "CgroupDriver": "cgroupfs", "CgroupVersion": cgv,
            "LoggingDriver": "json-file", "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True,
            "CpuCfsQuota": True, "PidsLimit": True, "IPv4Forwarding": True, "Debug": False,
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                        "Log": ["json-file"], "Authorization": None},
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "Labels": [], "ExperimentalBuild": False, "LiveRestoreEnabled": True,
            "Isolation": "", "InitBinary": "", "ProductLicense": "", "Warnings": [],
            "SystemTime": _rfc3339(time.time()), "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            **{k: v for k, v in self.extras.items() if not k.startswith("_")},
        }

    def df(self) -> dict[str, Any]:
        return {
            "LayersSize": self.images.layers_size(),
            "Images": self.images.df_entries(),
            "Containers": self.containers.df_entries(),
            "Volumes": self.extras.get("_volumes_df", lambda: [])(),
            "BuildCache": [],
        }


def _os_name() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _registry_config(insecure: tuple[str, ...]) -> dict[str, Any]:
    """/info's RegistryConfig as dockerd fills it: loopback and the configured CIDRs are insecure;
    every configured host name has an IndexConfig with Secure false, docker.io one that is official."""
    cidrs = ["::1/128", "127.0.0.0/8"]
    index = {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True}}
    for entry in insecure:
        entry = registry_entry(entry)
        try:
            net = str(ipaddress.ip_network(entry, strict=False)) if "/" in entry else None
        except ValueError:
            net = None
        if net is None:
            index[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
        elif net not in cidrs:
            cidrs.append(net)
    return {"AllowNondistributableArtifactsCIDRs": None, "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": index, "Mirrors": []}
