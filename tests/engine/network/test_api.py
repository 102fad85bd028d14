"""The /networks and /volumes routes in an in-process aiohttp app: status codes and Docker's JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from workbench.engine.api import networks as api_networks
from workbench.engine.api import volumes as api_volumes
from workbench.engine.api.errors import error_middleware
from workbench.engine.services.volumes import VolumeService
from workbench.engine.store.metadata import Metadata


def _run(netsvc, vols, scenario):
    async def main():
        app = web.Application(middlewares=[error_middleware])
        for r in [*api_networks.routes(netsvc), *api_volumes.routes(vols)]:     # bare and versioned, as app.py
            app.router.add_route(r.method, r.path, r.handler)
            app.router.add_route(r.method, "/v{api_version:[0-9]+\\.[0-9]+}" + r.path, r.handler)
        async with TestClient(TestServer(app)) as client:
            await scenario(client)
    asyncio.run(main())


def test_network_routes(netsvc, boxes, tmp_path: Path):
    vols = VolumeService(Metadata(tmp_path / "v.db"), tmp_path / "volumes")

    async def scenario(c):
        r = await c.post("/v1.41/networks/create", json={"Name": "api-net", "Driver": "bridge", "CheckDuplicate": True,
                                                         "Labels": {"k": "v"}, "Attachable": False, "Ingress": False,
                                                         "IPAM": {"Driver": "default", "Config": []}, "Options": {}})
        assert r.status == 201
        body = await r.json()
        assert set(body) == {"Id", "Warning"} and body["Warning"] == ""
        nid = body["Id"]
        r = await c.post("/networks/create", json={"Name": "api-net"})
        assert r.status == 409 and "already exists" in (await r.json())["message"]
        for f in ({"name": {"api-net": True}}, {"name": ["api-net"]}):
            r = await c.get("/v1.41/networks", params={"filters": json.dumps(f)})
            assert [n["Name"] for n in await r.json()] == ["api-net"]
        r = await c.get(f"/networks/{nid[:12]}")
        doc = await r.json()
        assert doc["Id"] == nid and doc["Labels"] == {"k": "v"} and doc["Containers"] == {}
        b = boxes("apibox")
        b.setup(netsvc)
        r = await c.post(f"/networks/{nid}/connect", json={"Container": b.cid,
                                                           "EndpointConfig": {"Aliases": ["x"]}})
        assert r.status == 200, await r.text()
        doc = await (await c.get("/networks/api-net")).json()
        prefix = doc["IPAM"]["Config"][0]["Subnet"].split("/")[1]   # the pool's next free subnet
        assert doc["Containers"][b.cid]["IPv4Address"].endswith("/" + prefix)
        r = await c.delete("/networks/api-net")
        assert r.status == 403 and "has active endpoints" in (await r.json())["message"]
        r = await c.post(f"/networks/{nid}/disconnect", json={"Container": b.cid, "Force": False})
        assert r.status == 200
        assert (await c.delete("/networks/bridge")).status == 403
        assert (await c.get("/networks/nosuch")).status == 404
        assert (await c.delete("/v1.41/networks/api-net")).status == 204
        r = await c.post("/networks/prune")
        assert r.status == 200 and (await r.json()) == {"NetworksDeleted": None}

    _run(netsvc, vols, scenario)


def test_volume_routes(netsvc, tmp_path: Path):
    users: dict[str, list[str]] = {}
    vols = VolumeService(Metadata(tmp_path / "v.db"), tmp_path / "volumes", in_use=lambda n: users.get(n, []))

    async def scenario(c):
        r = await c.post("/v1.41/volumes/create", json={"Name": "v1", "Driver": "local", "Labels": {"a": "b"},
                                                        "DriverOpts": {}})
        assert r.status == 201
        v = await r.json()
        assert v["Name"] == "v1" and v["Scope"] == "local" and v["Mountpoint"].endswith("/volumes/v1/_data")
        r = await c.post("/volumes/create", json={})
        assert r.status == 201 and len((await r.json())["Name"]) == 64
        for f in ({"label": {"a=b": True}}, {"label": ["a=b"]}):
            body = await (await c.get("/volumes", params={"filters": json.dumps(f)})).json()
            assert body["Warnings"] is None and [x["Name"] for x in body["Volumes"]] == ["v1"]
        assert (await (await c.get("/volumes/v1")).json()) == v
        assert (await c.get("/volumes/nope")).status == 404
        users["v1"] = ["cafe"]
        r = await c.delete("/volumes/v1")
        assert r.status == 409 and (await r.json())["message"] == "remove v1: volume is in use - [cafe]"
        users.clear()
        assert (await c.delete("/volumes/v1", params={"force": "1"})).status == 204
        r = await c.post("/volumes/prune")
        assert r.status == 200 and len((await r.json())["VolumesDeleted"]) == 1
        assert (await c.delete("/volumes/v1")).status == 404

    _run(netsvc, vols, scenario)
