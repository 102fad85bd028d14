"""Records built from Docker's JSON, and Docker's time formats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workbench.client import (
    Change, ChangeKind, ContainerDetails, ContainerSummary, ImageSummary, Port, PruneReport, WaitResult,
)
from workbench.client._records import parse_time


@pytest.mark.parametrize("value,expected", [
    (1700000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ("2024-05-01T12:00:00.123456789Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    ("2024-05-01T12:00:00.5+02:00", datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    (None, datetime(1, 1, 1, tzinfo=UTC)),
    ("garbage", datetime(1, 1, 1, tzinfo=UTC)),
])
def test_parse_time(value, expected):
    assert parse_time(value) == expected


def test_image_summary_keeps_everything_and_hides_none_tags():
    doc = {"Id": "sha256:" + "a" * 64, "RepoTags": ["<none>:<none>"], "RepoDigests": None, "Created": 10,
           "Size": 5, "Labels": None, "Containers": -1, "SharedSize": -1}
    image = ImageSummary.from_wire(doc)
    assert image.short_id == "a" * 12 and image.tags == () and image.labels == {}
    assert image.attrs is doc and image.created.year == 1970


def test_container_summary_ports_and_names():
    doc = {"Id": "c" * 64, "Names": ["/web"], "Image": "busybox", "ImageID": "sha256:x", "Command": "httpd",
           "Created": 1, "State": "running", "Status": "Up 2 seconds", "Labels": {"a": "b"},
           "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"},
                     {"PrivatePort": 443, "Type": "tcp"}],
           "NetworkSettings": {"Networks": {"bridge": {}}}}
    c = ContainerSummary.from_wire(doc)
    assert c.name == "web" and c.short_id == "c" * 12 and c.networks == ("bridge",)
    assert [str(p) for p in c.ports] == ["127.0.0.1:18080->80/tcp", "443/tcp"]
    assert str(Port(53, "udp", 5353, "::1")) == "[::1]:5353->53/udp"


def test_container_details():
    doc = {"Id": "c" * 64, "Name": "/web", "Image": "sha256:i", "Created": "2024-01-01T00:00:00Z",
           "State": {"Status": "exited", "ExitCode": 137, "OOMKilled": True, "Pid": 0,
                     "StartedAt": "2024-01-01T00:00:01Z", "FinishedAt": "0001-01-01T00:00:00Z"},
           "Config": {"Tty": True, "Labels": {"x": "y"}}, "HostConfig": {"Memory": 1},
           "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "1"}], "81/tcp": None}},
           "Mounts": [{"Type": "volume"}], "RestartCount": 2}
    c = ContainerDetails.from_wire(doc)
    assert c.name == "web" and c.tty and c.labels == {"x": "y"} and c.restart_count == 2
    assert c.state.exit_code == 137 and c.state.oom_killed and c.state.status == "exited"
    assert c.ports["81/tcp"] is None and c.mounts == ({"Type": "volume"},)


def test_wait_result_error_shapes():
    assert WaitResult.from_wire({"StatusCode": 0, "Error": None}) == WaitResult(0, None)
    assert WaitResult.from_wire({"StatusCode": 1, "Error": {"Message": "boom"}}) == WaitResult(1, "boom")


def test_changes_and_prune_reports():
    assert Change.from_wire({"Path": "/tmp/x", "Kind": 1}) == Change("/tmp/x", ChangeKind.ADDED)
    assert [k.letter for k in ChangeKind] == ["C", "A", "D"]
    images = PruneReport.from_wire({"ImagesDeleted": [{"Untagged": "a:1"}, {"Deleted": "sha256:x"}],
                                    "SpaceReclaimed": 9}, "ImagesDeleted")
    assert images == PruneReport(("sha256:x",), 9, ("a:1",))
    assert PruneReport.from_wire({"ContainersDeleted": None, "SpaceReclaimed": 0},
                                 "ContainersDeleted") == PruneReport((), 0)
