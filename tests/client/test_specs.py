"""Create-request pieces: `-p`, `--mount`, `--restart` syntax and the ContainerSpec body."""

from __future__ import annotations

import pytest

from workbench.client import ContainerSpec, Mount, RestartPolicy, parse_publish
from workbench.client._specs import env_list, label_map, port_bindings
from workbench.errors import InvalidArgument


@pytest.mark.parametrize("spec,expected", [
    ("8080:80", [("80/tcp", 8080)]),
    ("80", [("80/tcp", None)]),
    ("127.0.0.1:8080:80/udp", [("80/udp", ("127.0.0.1", "8080"))]),
    ("127.0.0.1::80", [("80/tcp", ("127.0.0.1", None))]),
    ("[::1]:8080:80", [("80/tcp", ("::1", "8080"))]),
    ("8000-8001:80-81", [("80/tcp", 8000), ("81/tcp", 8001)]),
])
def test_parse_publish(spec, expected):
    assert parse_publish(spec) == expected


@pytest.mark.parametrize("bad", ["a:b", "1:2:3:4", "80/xyz", "70000", "8000-8002:80-81"])
def test_parse_publish_rejects(bad):
    with pytest.raises(InvalidArgument):
        parse_publish(bad)


def test_port_bindings_from_docker_py_shape():
    assert port_bindings({80: None, "53/udp": [5353, ("127.0.0.1",)], "443/tcp": ("0.0.0.0", 8443)}) == {
        "80/tcp": [{"HostIp": "", "HostPort": ""}],
        "53/udp": [{"HostIp": "", "HostPort": "5353"}, {"HostIp": "127.0.0.1", "HostPort": ""}],
        "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8443"}],
    }


def test_mount_parse_and_wire():
    m = Mount.parse("type=volume,source=data,target=/data,readonly,volume-label=a=b")
    assert m == Mount(target="/data", source="data", type="volume", read_only=True, labels=(("a", "b"),))
    assert m.to_wire() == {"Type": "volume", "Target": "/data", "Source": "data", "ReadOnly": True,
                           "VolumeOptions": {"NoCopy": False, "Labels": {"a": "b"}}}
    b = Mount.parse("type=bind,src=/host,dst=/c,bind-propagation=rshared")
    assert b.to_wire()["BindOptions"] == {"Propagation": "rshared"}
    t = Mount.parse("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770")
    assert t.to_wire()["TmpfsOptions"] == {"SizeBytes": 1 << 20, "Mode": 0o1770}
    with pytest.raises(InvalidArgument):
        Mount.parse("type=volume,source=x")
    with pytest.raises(InvalidArgument):
        Mount.parse("target=/x,bogus=1")


@pytest.mark.parametrize("text,wire", [
    ("no", {"Name": "", "MaximumRetryCount": 0}),
    ("always", {"Name": "always", "MaximumRetryCount": 0}),
    ("on-failure:3", {"Name": "on-failure", "MaximumRetryCount": 3}),
    ("unless-stopped", {"Name": "unless-stopped", "MaximumRetryCount": 0}),
])
def test_restart_policy(text, wire):
    assert RestartPolicy.parse(text).to_wire() == wire


@pytest.mark.parametrize("bad", ["sometimes", "always:3", "on-failure:x"])
def test_restart_policy_rejects(bad):
    with pytest.raises(InvalidArgument):
        RestartPolicy.parse(bad)


def test_spec_wire_binds_anonymous_volumes_and_networks():
    spec = ContainerSpec(image="busybox", command=["true"], volumes=["data:/data:ro", "/anon"],
                         network="appnet", network_aliases=["web"], ipv4_address="10.1.0.5", cpus=1.5,
                         memory=1024, pids_limit=10, entrypoint="", labels=["a=b", "c"], tty=True)
    body = spec.to_wire()
    assert body["HostConfig"]["Binds"] == ["data:/data:ro"] and body["Volumes"] == {"/anon": {}}
    assert body["HostConfig"]["NetworkMode"] == "appnet"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"appnet": {
        "Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}}}}
    assert body["HostConfig"]["NanoCpus"] == 1_500_000_000 and body["HostConfig"]["PidsLimit"] == 10
    assert body["Labels"] == {"a": "b", "c": ""} and body["Tty"] is True
    assert body["Entrypoint"] == []


def test_spec_defaults_use_image_command_and_default_network():
    body = ContainerSpec(image="busybox").to_wire()
    assert body["Cmd"] is None and body["Entrypoint"] is None and body["Env"] is None
    assert body["HostConfig"]["NetworkMode"] == "default" and body["NetworkingConfig"] is None
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "", "MaximumRetryCount": 0}


def test_spec_rejects_aliases_off_user_networks_and_bad_volumes():
    with pytest.raises(InvalidArgument):
        ContainerSpec(image="b", network="host", network_aliases=["x"]).to_wire()
    with pytest.raises(InvalidArgument):
        ContainerSpec(image="b", network="bridge", network_aliases=["x"]).to_wire()
    with pytest.raises(InvalidArgument):
        ContainerSpec(image="b", volumes=["relative"]).to_wire()


def test_env_and_labels_helpers():
    assert env_list({"A": "1", "B": "x=y"}) == ["A=1", "B=x=y"]
    assert env_list(None) is None
    assert label_map({"k": "v"}) == {"k": "v"}
