"""Avro agents on a Faust app: the worker's guarantees for the agents a Faust user writes.

    settings = Settings.from_env()
    app = faust.App("orders-enricher", **faust_settings(settings))
    avro = Avroflow(app, settings)

    @avro.agent("orders", sink="orders-enriched")
    def enrich(order: dict) -> dict:               # a plain function of one record
        return {**order, "name": order["name"].upper()}

    @avro.agent("payments", sink="payments-checked")
    async def check(stream):                       # or an async body over a stream, Faust's shape
        async for payment in stream:
            yield {**payment, "checked": True}

Each agent is a `workers.pipeline.Pipeline` (the decorator's arguments are the pipeline's) run by the
same machinery as the worker's own pipelines (`workers.app.create_app` builds its app with this class):
the source is consumed as raw bytes and decoded by the agent before anything is acked; a transient
failure (registry, broker) is retried without acking; a permanent one is dead-lettered with the
``dlq.*`` headers; outputs are encoded with the sink subject's latest schema and the inputs acked only
after the broker acknowledged them; the counters, /metrics, /healthz and /readyz come along.

Before an agent reads anything, its sink subjects are resolved (`workers.runtime.preflight`: waiting
while the registry is unreachable, refusing to run when a subject stays missing). `python -m workers
worker` does that before the consumer joins its group; an app started any other way (``faust -A app
worker``) does it when the agent starts.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

from registry_codecs import CodecError
from registry_codecs.faust_codec import check_serializers_at_start
from workers.agent_bodies import AsyncBody
from workers.broker_wait import BrokerWatch
from workers.deadletter import scrub
from workers.faust import hooks
from workers.faust.batches import batches
from workers.kafka_config import kafka_auth
from workers.lag import LagMetrics, LagWatch
from workers.pipeline import Pipeline, PipelineError
from workers.processing import PipelineRunner, Send
from workers.runtime import PreflightError, Runtime, add_pipeline, new_runtime, preflight
from workers.settings import Settings
from workers.typed import RecordType, TypedTransform
from workers.web import register_views

log = logging.getLogger("avroflow.worker")

F = TypeVar("F", bound=Callable[..., Any])

#: Stack of the threads created after start (the codec threads of `asyncio.to_thread`). fastavro recurses
#: on the C stack, two frames per level of a recursive record; registry_codecs.bounds caps records at
#: MAX_DEPTH levels, which an 8 MiB stack holds with less than a factor of two to spare. Reserved address
#: space, not memory: pages are committed only when touched.
CODEC_THREAD_STACK_BYTES: Final = 32 * 2**20


class Avroflow:
    """The avroflow machinery on `app`, a `faust.App` (before it starts).

    Args:
        app: the Faust app the agents run on.
        settings: the registry, batching, retry and readiness settings (default: read from the
            ``AVROFLOW_*`` environment variables).
        runtime: shared state already built (and preflighted) by the worker process; default: a new one.
    """

    def __init__(self, app: Any, settings: Settings | None = None, *, runtime: Runtime | None = None) -> None:
        if settings is None:
            settings = runtime.settings if runtime is not None else Settings.from_env()
        if getattr(app, "avroflow", None) is not None:
            raise PipelineError(f"app {app.conf.id!r} already has an Avroflow: add every agent to that one")
        self.app = app
        app.avroflow = self
        self.settings = settings
        self.runtime = runtime if runtime is not None else new_runtime(settings)
        threading.stack_size(CODEC_THREAD_STACK_BYTES)  # before the event loop's executor makes its threads
        # The Faust adapter's hooks, checked first (workers.faust): the fast path unless
        # AVROFLOW_FAUST_FAST_PATH=false, the idempotent producer unless switched off.
        hooks.install(
            app,
            fast_path=settings.faust_fast_path,
            fetch_max_wait=settings.kafka_fetch_max_wait_seconds,
            idempotent=settings.kafka_idempotent_producer,
        )
        # `faust -A app worker` / app.main(): a serializer name nobody registered stops the start.
        check_serializers_at_start(app)
        self.lag = LagMetrics.create(self.runtime.collector)
        _watch_broker(app, settings, self.runtime, self.lag)
        register_views(app, self.runtime.collector, self.runtime.readiness, self.runtime.metrics)
        self._declared = _TopicDeclarer(app, self.runtime)
        self._output_types: dict[str, RecordType] = {}
        app.timer(settings.registry_check_interval_seconds)(self._registry_check())
        for runner in self.runtime.runners.values():
            self._attach(runner)

    def add(self, pipeline: Pipeline) -> Pipeline:
        """Run `pipeline` as an agent of the app.

        Raises:
            PipelineError: a pipeline or agent of that name is already there.
            PreflightError: its reader schema cannot be read or is not a valid Avro schema.
        """
        self._attach(add_pipeline(self.runtime, pipeline))
        return pipeline

    def agent(
        self,
        source: str,
        *,
        sink: str,
        name: str | None = None,
        value_type: type | None = None,
        output_type: type | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        """Decorate a transform, or an async agent body, as the agent from `source` to `sink`.

        Args:
            source: the input topic (Avro in the Confluent wire format).
            sink: the output topic, written with the latest schema of ``<sink>-value``.
            name: the pipeline's name (default: the function's name).
            value_type: a dataclass or `faust.Record` subclass the records arrive as (default: dicts);
                checked against the reader schema, when there is one, at once.
            output_type: the type the agent returns, checked against the sink's latest schema before the
                agent reads anything. Returned dataclasses and records are written as dicts either way.
            options: the other `Pipeline` fields: ``reader_schema``, ``key_format``, ``tombstones``,
                ``dlq_topic``, ``sink_schema``.

        Returns:
            A decorator that registers the agent and returns the function unchanged.
        """

        def decorate(function: F) -> F:
            inputs = RecordType.of(value_type) if value_type is not None else None
            transform = TypedTransform(_transform_of(function), inputs)
            pipeline = Pipeline(name or function.__name__, source, sink, transform, **options)
            reader = pipeline.load_reader_schema()
            problems = inputs.problems_with(reader, output=False) if inputs and reader else []
            if problems:
                raise PipelineError(f"agent {pipeline.name}: value_type: {'; '.join(problems)}")
            self.add(pipeline)
            if output_type is not None:
                self._output_types[pipeline.name] = RecordType.of(output_type)
            return function

        return decorate

    def check_output_types(self, runners: Iterable[PipelineRunner] | None = None) -> None:
        """Hold each agent's ``output_type`` to its sink's latest schema (blocking: registry calls).

        Raises:
            PreflightError: a type does not match, naming the fields.
        """
        for runner in self.runtime.runners.values() if runners is None else runners:
            record_type = self._output_types.get(runner.pipeline.name)
            if record_type is None:
                continue
            subject = runner.pipeline.sink_value_subject
            problems = record_type.problems_with(
                self.runtime.client.get_latest(subject).schema_str, output=True
            )
            if problems:
                raise PreflightError(
                    f"agent {runner.pipeline.name}: output_type against {subject}: {'; '.join(problems)}"
                )

    def _registry_check(self) -> Callable[[], Any]:
        runtime = self.runtime

        async def check_registry() -> None:
            try:
                await asyncio.to_thread(runtime.client.ping)
            except CodecError as exc:
                runtime.readiness.registry_failed(scrub(str(exc)))
            else:
                runtime.readiness.registry_ok()

        return check_registry

    def _attach(self, runner: PipelineRunner) -> None:
        self.lag.watch_pipeline(runner.pipeline.name)
        _add_agent(self.app, runner, self.settings, self._start_pipeline, self.lag)

    async def _start_pipeline(self, runner: PipelineRunner) -> None:
        """Before the first batch: the sink and dead-letter topics, then the sink subjects if unresolved."""
        await self._declared.ensure()
        if runner.pipeline.sink_value_subject not in self.runtime.readiness.unresolved_subjects:
            return  # preflighted by the worker process before the consumer joined
        stop = threading.Event()
        try:
            await asyncio.to_thread(preflight, self.runtime, stop, [runner])
        finally:
            stop.set()  # cancelled (the app stopping): the thread stops waiting too
        await asyncio.to_thread(self.check_output_types, [runner])


def _transform_of(function: Callable[..., Any]) -> Any:
    if inspect.isasyncgenfunction(function):
        return AsyncBody(function)
    if inspect.iscoroutinefunction(function):
        raise PipelineError(
            f"agent {function.__name__}: an async agent body must yield its outputs "
            "(async for record in stream: yield output), or be a plain function of one record"
        )
    return function


def _watch_broker(app: Any, settings: Settings, runtime: Runtime, lag: LagMetrics) -> None:
    """Keep `runtime.readiness` told of the group assignment and of the brokers' answers; watch the lag."""
    readiness = runtime.readiness
    readiness.rebalancing = lambda: bool(app.rebalancing)

    async def assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Sent after every completed rebalance, with this member's partitions: none is an answer too.
        readiness.assignment_received()
        lag.rebalances.inc()

    app.on_partitions_assigned.connect(assigned)
    auth = kafka_auth(settings)
    interval = BrokerWatch.interval_for(settings.readiness_broker_timeout_seconds)
    app.task(BrokerWatch(settings.kafka_bootstrap_servers, auth, readiness, interval).run)
    lag_watch = LagWatch(
        settings.kafka_bootstrap_servers,
        auth,
        app.conf.id,
        lambda: app.consumer.assignment(),
        lag,
        settings.lag_check_interval_seconds,
    )
    app.task(lag_watch.run)


class _TopicDeclarer:
    """Creates the sink and dead-letter topics once, when missing (the consumer never creates them)."""

    def __init__(self, app: Any, runtime: Runtime) -> None:
        self._app = app
        self._runtime = runtime
        self._done: asyncio.Future[None] | None = None

    async def ensure(self) -> None:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            runners = self._runtime.runners.values()
            for name in sorted({r.pipeline.sink for r in runners} | {r.dlq_topic for r in runners}):
                try:
                    await self._app.topic(name).maybe_declare()
                # Creating is a convenience; without the right (ACL) the topic may still exist: go on.
                except Exception as exc:  # noqa: BLE001
                    log.warning("could not create topic", extra={"topic": name, "error": scrub(str(exc))})
            self._done.set_result(None)
        await self._done


def _add_agent(
    app: Any,
    runner: PipelineRunner,
    settings: Settings,
    start: Callable[[PipelineRunner], Any],
    lag: LagMetrics,
) -> None:
    pipeline = runner.pipeline
    source = app.topic(
        pipeline.source, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    runner.bind(_sender(app), lambda message: app.consumer.ack(message))
    batch, within = settings.batch_size, settings.batch_within_seconds
    body = getattr(pipeline.transform, "inner", pipeline.transform)
    body = body if isinstance(body, AsyncBody) else None

    async def run_pipeline(stream: Any) -> None:
        try:
            await start(runner)
            if body is not None:
                body.start(asyncio.get_running_loop())
            reader = batches(app, stream, batch, within, fast_path=settings.faust_fast_path)
            async for messages in reader:
                lag.batch_started(pipeline.name, messages)
                try:
                    await runner.handle(messages)
                finally:
                    lag.batch_done(pipeline.name)
        except PreflightError as exc:
            log.critical("refusing to run: %s", exc, extra={"pipeline": pipeline.name})
            await app.crash(exc)
            raise
        except Exception as exc:
            # A bug, not a record problem (those are dead-lettered): stop the worker rather than run
            # on with a batch whose offsets can never be committed.
            log.critical(
                "pipeline crashed; stopping the worker", exc_info=True, extra={"pipeline": pipeline.name}
            )
            await app.crash(exc)
            raise
        finally:
            if body is not None:
                await body.close()

    run_pipeline.__name__ = run_pipeline.__qualname__ = f"pipeline_{pipeline.name.replace('-', '_')}"
    app.agent(source, name=f"avroflow.pipeline.{pipeline.name}")(run_pipeline)


def _sender(app: Any) -> Callable[[Send], Any]:
    async def send(record: Send) -> Any:
        return await app.producer.send(record.topic, record.key, record.value, None, None, record.headers)

    return send


__all__ = ["CODEC_THREAD_STACK_BYTES", "Avroflow"]
