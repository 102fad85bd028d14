"""Find and remove an engine's kernel state by its tag: for tests, for deleted roots, for GC.

An engine's kernel objects are all named after its per-root tag (bridges `wb<tag>-*`, veths
`wv<tag>*`, the nftables table `wb_<tag>`, namespace files under `<run dir>/netns`), so they can be
listed and removed without its metadata. Bridges carry their engine's run dir in their alias;
`gc_orphans` removes the state of engines whose root no longer exists (a test root deleted after
its daemon stopped), so such leftovers never accumulate or hold address space.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from workbench.engine.network import bridge as br
from workbench.engine.network import netns
from workbench.engine.network.firewall import Firewall


def _links(ipr: Any) -> list[tuple[str, str]]:
    out = []
    for link in ipr.get_links():
        out.append((link.get_attr("IFLA_IFNAME") or "", link.get_attr("IFLA_IFALIAS") or ""))
    return out


def leftovers(tag: str, run_dir: Path | None = None) -> dict[str, Any]:
    """Every kernel object of the engine with this tag: {"links": [...], "netns": [...], "table": bool}."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = [n for n, _ in _links(ipr) if n.startswith((br.bridge_glob(tag), br.veth_prefix(tag)))]
    ns: list[str] = []
    if run_dir is not None and (run_dir / "netns").is_dir():
        ns = [str(f) for f in (run_dir / "netns").iterdir()]
    return {"links": sorted(links), "netns": sorted(ns), "table": Firewall(tag).exists()}


def remove_engine_state(tag: str, run_dir: Path | None = None) -> None:
    """Delete every kernel object of the engine with this tag (it must not be running)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for name, _ in _links(ipr):
            if name.startswith((br.bridge_glob(tag), br.veth_prefix(tag))):
                with contextlib.suppress(Exception):
                    br.delete_link(ipr, name)
    Firewall(tag).destroy()
    if run_dir is not None:
        netns.release_dir(run_dir / "netns")


def gc_orphans(ipr: Any) -> list[str]:
    """Remove the state of engines whose run dir (recorded in their bridges' alias) is gone."""
    gone: set[str] = set()
    for name, alias in _links(ipr):
        if name.startswith("wb") and alias.startswith(br.OWNER_PREFIX):
            if not Path(alias[len(br.OWNER_PREFIX):]).exists():
                gone.add(name[2:8])
    for tag in gone:
        for name, _ in _links(ipr):
            if name.startswith((br.bridge_glob(tag), br.veth_prefix(tag))):
                with contextlib.suppress(Exception):
                    br.delete_link(ipr, name)
        Firewall(tag).destroy()
    return sorted(gone)
