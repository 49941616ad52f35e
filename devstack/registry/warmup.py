"""Warm-up mode: the registry answers as one that has just restarted and not yet reloaded its store.

Karapace, after a restart, serves requests while it replays its ``_schemas`` topic, and until it has
caught up it answers "schema not found" (40403) and "subject not found" (40401) for ids and subjects that
exist. ``--warmup-seconds N`` makes this registry do the same for its first N seconds, so that clients
can be tested against it: reads of schemas by id answer 40403, reads and lookups under a subject 40401,
and the list of subjects is empty. Writes, configuration and compatibility checks are served as usual;
after N seconds everything is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from devstack.registry.errors import ApiError, subject_not_found

__all__ = ["WarmUp"]

_SCHEMA_BY_ID = re.compile(r"/schemas/ids/([^/]+)(/.*)?")
_UNDER_SUBJECT = re.compile(r"/subjects/([^/]+)(/versions(/.*)?)?")


class WarmUp:
    """Which requests a registry in its first `seconds` answers as if its store were still empty.

    Args:
        seconds: how long the warm-up lasts from now; 0 or less: no warm-up.
        clock: monotonic clock.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = clock() + max(0.0, seconds)

    @property
    def active(self) -> bool:
        """Whether the registry is still warming up."""
        return self._clock() < self._until

    def answer(self, method: str, path: str) -> tuple[int, Any] | None:
        """The warm-up's answer to `method path`, or None to serve it as usual.

        Raises:
            ApiError: 40403 or 40401, for what exists but is "not loaded yet".
        """
        if not self.active:
            return None
        if method == "GET" and path == "/subjects":
            return 200, []
        by_id = _SCHEMA_BY_ID.fullmatch(path)
        if method == "GET" and by_id:
            raise ApiError(404, 40403, f"Schema {by_id.group(1)} not found")
        under = _UNDER_SUBJECT.fullmatch(path)
        reading = method == "GET" or (method == "POST" and under is not None and under.group(2) is None)
        if under and reading:
            raise subject_not_found(under.group(1))
        return None
