"""The public surface of workbench.client is explicit, sorted and complete."""

from __future__ import annotations

import workbench.client as client_pkg


def test_all_is_unique_and_resolves():
    assert len(set(client_pkg.__all__)) == len(client_pkg.__all__)
    for name in client_pkg.__all__:
        assert getattr(client_pkg, name) is not None, name


def test_lazy_names_are_all_exported():
    assert set(client_pkg._WHERE) <= set(client_pkg.__all__)


def test_client_resources_by_composition():
    c = client_pkg.Client("unix:///nonexistent.sock")
    for resource, methods in {
        "system": ["ping", "version", "info", "df"],
        "images": ["list", "inspect", "history", "tag", "remove", "prune", "import_", "load", "save",
                   "pull", "push"],
        "containers": ["create", "start", "wait", "waiting", "logs", "stream_logs", "stop", "kill", "restart",
                       "pause", "unpause", "remove", "list", "inspect", "rename", "top", "prune", "changes",
                       "export", "put_archive", "get_archive", "stat_path", "attach", "commit"],
        "exec": ["create", "start", "start_detached", "inspect", "run"],
        "networks": ["create", "list", "inspect", "remove", "connect", "disconnect", "prune"],
        "volumes": ["create", "list", "inspect", "remove", "prune"],
        "registry": ["login", "logout", "auth_header", "catalog", "tags"],
    }.items():
        api = getattr(c, resource)
        assert getattr(c, resource) is api  # built once
        for method in methods:
            assert callable(getattr(api, method)), f"{resource}.{method}"
    assert callable(c.build)
