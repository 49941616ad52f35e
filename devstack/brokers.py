"""Which local broker to run: Apache Kafka (what the project is proven on) or Tansu (zero-install).

`Broker` is what the tests, `LocalStack`, the benchmarks and ``python -m devstack up`` need of either;
`new_broker(kind)` makes one. The test suite's choice is ``AVROFLOW_TEST_BROKER`` (`test_broker_kind`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from devstack.broker import TansuBroker
from devstack.kafka import KafkaBroker

__all__ = ["BROKER_KINDS", "Broker", "new_broker", "test_broker_kind"]

BROKER_KINDS = ("kafka", "tansu")
TEST_BROKER_ENV = "AVROFLOW_TEST_BROKER"


class Broker(Protocol):
    """A local Kafka-protocol broker in child processes."""

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def running(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    def start(self, timeout: float = ...) -> None: ...

    def stop(self) -> None: ...

    def log_tail(self, chars: int = ...) -> str: ...

    def create_topics(self, names: Iterable[str], partitions: int = ..., timeout: float = ...) -> None: ...


def new_broker(
    kind: str, *, log_dir: Path | None = None, port: int | None = None
) -> TansuBroker | KafkaBroker:
    """A broker of `kind` (``kafka`` or ``tansu``), not started; `log_dir` keeps its log (and Kafka's data).

    Raises:
        ValueError: `kind` is neither, or a port was asked of Kafka (whose nodes pick theirs).
    """
    if kind == "tansu":
        return TansuBroker(port=port, log_path=None if log_dir is None else log_dir / "tansu.log")
    if kind == "kafka":
        if port is not None:
            raise ValueError("--port applies to Tansu; Kafka's listeners take free ports")
        return KafkaBroker(data_dir=None if log_dir is None else log_dir / "kafka")
    raise ValueError(f"unknown broker {kind!r}: choose one of {', '.join(BROKER_KINDS)}")


def test_broker_kind() -> str:
    """The broker the integration tests run on: ``$AVROFLOW_TEST_BROKER``, ``kafka`` by default.

    Raises:
        ValueError: The variable names neither broker.
    """
    kind = os.environ.get(TEST_BROKER_ENV, "kafka").strip().lower() or "kafka"
    if kind not in BROKER_KINDS:
        raise ValueError(f"{TEST_BROKER_ENV}={kind!r}: choose one of {', '.join(BROKER_KINDS)}")
    return kind
