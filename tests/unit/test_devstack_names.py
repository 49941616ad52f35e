"""Names from the `unique_name` fixture: unique per test, legal as Kafka topics, subjects and group ids."""

from __future__ import annotations

import re

import pytest

from devstack.pytest_plugin import unique_name_for

_SAFE = re.compile(r"^t-[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*-[0-9a-f]{8}$")


@pytest.mark.parametrize(
    "test_name",
    [
        "test_plain",
        "test_params[a/b c-1.5]",
        "test_" + "x" * 300,
        "[]",
        "test_ünïcode[✓]",
    ],
)
def test_names_are_legal_topic_names_of_bounded_length(test_name: str) -> None:
    name = unique_name_for(test_name)
    assert _SAFE.match(name), name
    assert len(name) <= 60


def test_the_test_name_is_readable_in_the_name() -> None:
    assert unique_name_for("test_orders[v2]").startswith("t-test-orders-v2-")


def test_each_call_gives_a_new_name() -> None:
    names = {unique_name_for("test_same") for _ in range(1000)}
    assert len(names) == 1000


def test_the_fixture_names_the_running_test(unique_name: str) -> None:
    assert _SAFE.match(unique_name)
    assert unique_name.startswith("t-test-the-fixture-names-the-running-t")
