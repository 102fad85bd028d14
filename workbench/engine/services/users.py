"""Resolve `USER` strings (name, uid, name:group, uid:gid) against an image's /etc/passwd and /etc/group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def _read(root: Path, rel: str) -> list[list[str]]:
    try:
        text = (root / rel).read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(rootfs: Path, user: str | None, group_add: Sequence[str] = ()) -> ResolvedUser:
    """Resolve as Docker does; unknown names are an error, unknown numeric IDs are allowed.

    The supplementary groups start with the primary one, then the user's memberships in
    /etc/group, then `group_add` (`HostConfig.GroupAdd`: names from /etc/group, or numbers), as
    dockerd sets them since 20.10.18 (CVE-2022-36109: without the primary group among them, a
    process could drop it and slip past a file's group-denying permissions).
    """
    user = (user or "").strip()
    passwd = _read(rootfs, "etc/passwd")
    groups = _read(rootfs, "etc/group")
    if not user:
        user = "0"
    name, _, group = user.partition(":")
    entry = None
    if name.isdigit():
        uid = int(name)
        entry = next((p for p in passwd if len(p) > 3 and p[2] == name), None)
        gid = int(entry[3]) if entry else 0
    else:
        entry = next((p for p in passwd if p and p[0] == name), None)
        if entry is None or len(entry) < 4:
            raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid = int(entry[2]), int(entry[3])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            g = next((g for g in groups if g and g[0] == group), None)
            if g is None:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
            gid = int(g[2])
    uname = entry[0] if entry else None
    member_of = sorted({int(g[2]) for g in groups if len(g) > 3 and uname and uname in g[3].split(",")
                        and g[2].isdigit() and int(g[2]) != gid})
    added = []
    for want in group_add:
        if want.isdigit():
            added.append(int(want))
            continue
        g = next((g for g in groups if len(g) > 2 and g[0] == want and g[2].isdigit()), None)
        if g is None:
            raise InvalidArgument(f"Unable to find group {want}: no matching entries in group file")
        added.append(int(g[2]))
    extra = tuple(dict.fromkeys([gid, *member_of, *added]))
    home = entry[5] if entry and len(entry) > 5 else "/"
    return ResolvedUser(uid, gid, extra, home or "/")
