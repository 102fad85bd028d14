"""Fixtures for the registry tests (helpers live in registry_support.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from registry_support import Registry, make_registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    yield from make_registry(tmp_path)
