"""Fixtures shared by the integration tests (the broker and registry ones come from devstack's plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Everything a test starts (workers, producers, registries) is stopped when it ends, pass or fail."""
    with ExitStack() as resources:
        yield resources
