"""The whole local stack as one object: a broker (Tansu or Apache Kafka) and the local schema registry.

`LocalStack` is what ``python -m devstack up`` runs, and what any script needing both can use. With a
data directory the registry keeps its schemas (and ids) there across runs and the broker writes its log
there (Kafka its log dirs too); Tansu stores topics in memory only, so its messages do not survive a restart.
"""

from __future__ import annotations

from pathlib import Path

from devstack.brokers import new_broker
from devstack.children import ChildService
from devstack.registry import RegistryProcess

__all__ = ["LocalStack"]


class LocalStack(ChildService):
    """A broker and a schema registry on loopback, as one context manager.

    Args:
        data_dir: Where the registry persists schemas (``<data_dir>/registry``) and the broker writes its log
            (``<data_dir>/tansu.log``, or Kafka's nodes under ``<data_dir>/kafka``); None keeps everything in
            memory and temporary files.
        broker_port: Port for the (Tansu) broker; None picks a free one.
        registry_port: Port for the registry; None picks a free one.
        broker: ``tansu`` (the zero-install default) or ``kafka`` (Apache Kafka; needs Java and Maven).
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        broker_port: int | None = None,
        registry_port: int | None = None,
        broker: str = "tansu",
    ) -> None:
        self.data_dir = data_dir
        registry_dir = None if data_dir is None else data_dir / "registry"
        self.broker = new_broker(broker, log_dir=data_dir, port=broker_port)
        self.registry = RegistryProcess(port=registry_port, data_dir=registry_dir)

    def __repr__(self) -> str:
        return f"LocalStack(data_dir={self.data_dir!r}, broker={self.broker!r}, registry={self.registry!r})"

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of the broker."""
        return self.broker.bootstrap_servers

    @property
    def registry_url(self) -> str:
        """Base URL of the schema registry, e.g. ``http://127.0.0.1:PORT``."""
        return self.registry.url

    @property
    def running(self) -> bool:
        """True while both processes are alive."""
        return self.broker.running and self.registry.running

    def env(self) -> dict[str, str]:
        """The worker's environment variables that point it at this stack."""
        return {
            "AVROFLOW_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "AVROFLOW_SCHEMA_REGISTRY_URL": self.registry_url,
            # Tansu refuses aiokafka's idempotent producer a producer id (InitProducerId).
            "AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER": "false",
        }

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker, then the registry; if either fails, stop whatever did start.

        Raises:
            devstack.broker.BrokerStartError: The broker did not start.
            devstack.registry.RegistryStartError: The registry did not start.
        """
        if self.data_dir is not None:
            (self.data_dir / "registry").mkdir(parents=True, exist_ok=True)
        try:
            self.broker.start(timeout=timeout)
            self.registry.start(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the registry and the broker and wait for both to exit. Safe to call twice."""
        try:
            self.registry.stop()
        finally:
            self.broker.stop()
