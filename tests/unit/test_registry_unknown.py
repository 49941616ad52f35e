"""When a registry's "no schema with this id" is final (`registry_codecs.registry_unknown`)."""

from __future__ import annotations

import pytest

from registry_codecs.errors import SchemaNotFound, SchemaNotFoundYet
from registry_codecs.registry_unknown import UnknownIds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answer(schema_id: int) -> SchemaNotFound:
    return SchemaNotFound(f"Schema {schema_id} not found", status_code=404, error_code=40403)


def table(clock: Clock, grace: float = 30.0, maxsize: int = 10) -> UnknownIds:
    return UnknownIds(
        grace=grace, negative_ttl=5.0, backoff=(0.2, 5.0), maxsize=maxsize, clock=clock, rand=lambda: 0.5
    )


def test_not_found_is_not_final_until_the_grace_is_over_and_the_last_ask_is_at_its_end() -> None:
    clock = Clock()
    ids = table(clock)
    verdict = ids.not_found(1, answer(1))
    assert isinstance(verdict, SchemaNotFoundYet) and verdict.retriable
    asks = 1
    while True:
        try:
            ids.check(1)
        except SchemaNotFoundYet:
            clock.now += 0.05
            continue
        verdict = ids.not_found(1, answer(1))
        asks += 1
        if not isinstance(verdict, SchemaNotFoundYet):
            break
    assert isinstance(verdict, SchemaNotFound) and clock.now == pytest.approx(30.0, abs=0.06)
    assert asks < 15  # backoff (0.2 s doubling to 5 s), not one ask per 50 ms check
    with pytest.raises(SchemaNotFound):  # final, and remembered without asking
        ids.check(1)


def test_a_confirmed_unknown_id_is_final_at_once_when_asked_again_later() -> None:
    clock = Clock()
    ids = table(clock, grace=1.0)
    ids.not_found(2, answer(2))
    clock.now = 1.0
    assert type(ids.not_found(2, answer(2))) is SchemaNotFound
    clock.now = 7.0  # past the negative TTL: the caller asks the registry again
    ids.check(2)
    assert type(ids.not_found(2, answer(2))) is SchemaNotFound  # no new grace


def test_found_forgets_and_no_grace_means_final_at_once() -> None:
    clock = Clock()
    ids = table(clock)
    ids.not_found(3, answer(3))
    ids.found(3)
    ids.check(3)  # nothing known: ask
    assert type(table(clock, grace=0.0).not_found(4, answer(4))) is SchemaNotFound


def test_the_pending_table_is_bounded() -> None:
    clock = Clock()
    ids = table(clock, maxsize=3)
    for schema_id in range(100):
        ids.not_found(schema_id, answer(schema_id))
    assert len(ids._pending) == 3  # ids come off the wire: never more than maxsize tracked
