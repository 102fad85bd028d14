"""Fixtures for the registry tests (helpers live in registry_support.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from registry_support import Registry, make_registry

from workbench.engine.registry.auth import make_htpasswd_line


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    yield from make_registry(tmp_path)


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    """An htpasswd file with user alice, password s3cret (bcrypt, cheap rounds)."""
    path = tmp_path / "htpasswd"
    path.write_text(make_htpasswd_line("alice", "s3cret", rounds=4) + "\n")
    return path
