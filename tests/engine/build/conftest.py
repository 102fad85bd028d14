"""Fixtures of the build tests (helpers are in build_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.engine.build.build_support import remove_image


@pytest.fixture
def images(engine: Any) -> Iterator[list[str]]:
    """Images a test built (see build_support.make); removed afterwards."""
    made: list[str] = []
    yield made
    for ref in made:
        remove_image(engine, ref)
