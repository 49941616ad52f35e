"""Every Faust, mode and aiokafka internal the worker relies on, and the check that they are still there.

The worker reaches past Faust's public API in a few places (the fast path's dispatch and fetch loop, the
batch reader, the idempotent producer, the acking of a batch, the worker's signal handlers, the
security settings handed to aiokafka, the codec registry). Each such reach is a `Hook` in `HOOKS`:
what it is, where it lives, the shape the worker needs (a callable taking these parameters, an
attribute, or an instance attribute a method still assigns or reads) and what it is for.

`check` runs before the worker connects to anything (and again when the app is built). A release
that renamed or removed a hook fails the start with one line, `HookMissing`, naming the hook and the
installed faust-streaming, mode-streaming and aiokafka versions, instead of a worker that runs on
without the guarantee or crashes later on an ``AttributeError``. The fast path's hooks are only
checked when the fast path is on (``AVROFLOW_FAUST_FAST_PATH``): turning it off is the way to run on a
release whose internals moved.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from types import CodeType
from typing import Any, Final

#: The distributions whose internals the hooks are; named, with their versions, in every failure.
DISTRIBUTIONS: Final = ("faust-streaming", "mode-streaming", "aiokafka")

_MISSING: Final = object()

#: The features a hook may be needed for (`Hook.needed_for`); "always" hooks are checked in any case.
FAST_PATH: Final = "fast_path"
IDEMPOTENT: Final = "idempotent_producer"
ALWAYS: Final = "always"


class HookMissing(RuntimeError):
    """A Faust, mode or aiokafka internal the worker relies on is gone or changed shape (a new release).

    The message is one line naming the hook, what changed and the installed versions.
    """


@dataclass(frozen=True, slots=True)
class Hook:
    """One internal the worker relies on.

    Attributes:
        name: the dotted name shown in a failure (``faust.App.flow_control``).
        owner: loads the class or module that holds it (an import error is reported as the hook missing).
        attribute: its name on `owner`.
        purpose: what the worker uses it for.
        needed_for: `ALWAYS`, `FAST_PATH` or `IDEMPOTENT`.
        params: parameter names a callable must (still) take.
        assigned_in: for an instance attribute: the method of `owner` whose code must still use it.
        is_callable: whether it must be callable (a method or function).
    """

    name: str
    owner: Callable[[], Any]
    attribute: str
    purpose: str
    needed_for: str = ALWAYS
    params: tuple[str, ...] = ()
    assigned_in: str | None = None
    is_callable: bool = True


def installed_versions() -> str:
    """Return ``faust-streaming 0.15.3, mode-streaming 0.7.1, aiokafka 0.14.0`` for what is installed."""
    parts = []
    for name in DISTRIBUTIONS:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def check(hooks: Iterable[Hook] | None = None, *, features: Iterable[str] = (FAST_PATH, IDEMPOTENT)) -> None:
    """Check that every hook needed for `features` (and every `ALWAYS` hook) exists with its shape.

    Raises:
        HookMissing: naming the first hook that does not, and the installed versions.
    """
    wanted = {ALWAYS, *features}
    for hook in HOOKS if hooks is None else hooks:
        if hook.needed_for not in wanted:
            continue
        problem = _problem(hook)
        if problem is not None:
            hint = "; AVROFLOW_FAUST_FAST_PATH=false runs without it" if hook.needed_for == FAST_PATH else ""
            raise HookMissing(
                f"Faust hook {hook.name} {problem} ({installed_versions()}): "
                f"the worker relies on it for {hook.purpose}{hint}"
            )


def _problem(hook: Hook) -> str | None:
    try:
        owner = hook.owner()
    except (ImportError, AttributeError) as exc:
        return f"cannot be loaded ({type(exc).__name__}: {exc})"
    if hook.assigned_in is not None:
        method = getattr(owner, hook.assigned_in, None)
        code = getattr(method, "__code__", None)
        if code is None or hook.attribute not in set(_names(code)):
            return f"is no longer set or read by {hook.assigned_in}"
        return None
    value = getattr(owner, hook.attribute, _MISSING)
    if value is _MISSING:
        return "is missing"
    if not hook.is_callable:
        return None
    if not callable(value):
        return "is no longer callable"
    return _signature_problem(value, hook.params)


def _signature_problem(value: Any, params: tuple[str, ...]) -> str | None:
    if not params:
        return None
    try:
        taken = inspect.signature(value).parameters
    except (TypeError, ValueError):
        return "has no signature to check"
    missing = [p for p in params if p not in taken]
    if missing:
        return f"no longer takes {', '.join(missing)} (takes {', '.join(taken) or 'nothing'})"
    return None


def _names(code: CodeType) -> Iterator[str]:
    """The attribute and global names a function's code uses, its nested functions' included."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _names(const)


def _load(module: str, qualname: str = "") -> Callable[[], Any]:
    def owner() -> Any:
        found: Any = importlib.import_module(module)
        for part in filter(None, qualname.split(".")):
            found = getattr(found, part)
        return found

    return owner


_MODE_SERVICE = _load("mode.services", "Service")
_CONSUMER = _load("faust.transport.consumer", "Consumer")
_AIOKAFKA_DRIVER = "faust.transport.drivers.aiokafka"
_MESSAGE = _load("faust.types", "Message")
_WORKER = _load("faust", "Worker")
_FASTPATH = "eager per-message dispatch (workers/faust/fastpath.py)"
_PROMPT = "resuming a paused partition promptly (workers/faust/fastpath.py)"
_FETCH = "AVROFLOW_KAFKA_FETCH_MAX_WAIT_SECONDS (workers/faust/fastpath.py)"
_BATCHES = "reading batches off the agent's channel (workers/faust/batches.py)"
_ACKS = "acking a batch only once its results are durable (workers/faust/acks.py)"
_STOP = "the bounded shutdown on SIGTERM/SIGINT (workers/faust/worker.py)"

HOOKS: Final[tuple[Hook, ...]] = (
    Hook("mode.services.Service.wait_first", _MODE_SERVICE, "wait_first", _FASTPATH, FAST_PATH,
         params=("coros", "timeout")),
    Hook("mode.services.Service._stopped", _MODE_SERVICE, "_stopped", _FASTPATH, FAST_PATH,
         assigned_in="__init__"),
    Hook("mode.services.Service._crashed", _MODE_SERVICE, "_crashed", _FASTPATH, FAST_PATH,
         assigned_in="__init__"),
    Hook("mode.services.WaitResults", _load("mode.services"), "WaitResults", _FASTPATH, FAST_PATH,
         params=("done", "results", "stopped")),
    Hook(f"{_AIOKAFKA_DRIVER}.Consumer._new_consumer_thread", _load(_AIOKAFKA_DRIVER, "Consumer"),
         "_new_consumer_thread", _FETCH, FAST_PATH),
    Hook(f"{_AIOKAFKA_DRIVER}.AIOKafkaConsumerThread._create_consumer",
         _load(_AIOKAFKA_DRIVER, "AIOKafkaConsumerThread"), "_create_consumer", _FETCH, FAST_PATH,
         params=("loop",)),
    Hook("aiokafka.AIOKafkaConsumer._fetch_max_wait_ms", _load("aiokafka", "AIOKafkaConsumer"),
         "_fetch_max_wait_ms", _FETCH, FAST_PATH, assigned_in="start"),
    Hook("faust.transport.consumer.Consumer._wait_next_records", _CONSUMER, "_wait_next_records", _PROMPT,
         FAST_PATH, params=("timeout",)),
    Hook("faust.transport.consumer.Consumer._get_active_partitions", _CONSUMER, "_get_active_partitions",
         _PROMPT, FAST_PATH),
    Hook("faust.transport.consumer.Consumer._buffered_partitions", _CONSUMER, "_buffered_partitions",
         _PROMPT, FAST_PATH, assigned_in="__init__"),
    Hook("faust.transport.consumer.Consumer.on_buffer_drop", _CONSUMER, "on_buffer_drop", _PROMPT,
         FAST_PATH, params=("tp",)),
    Hook("faust.transport.consumer.Consumer.flow_active", _CONSUMER, "flow_active", _PROMPT, FAST_PATH,
         is_callable=False),
    Hook("faust.App.flow_control", _load("faust", "App"), "flow_control", _BATCHES, FAST_PATH,
         is_callable=False),
    Hook("faust.App.consumer_generation_id", _load("faust", "App"), "consumer_generation_id", _BATCHES,
         FAST_PATH, is_callable=False),
    Hook("faust.channels.Channel.queue", _load("faust.channels", "Channel"), "queue", _BATCHES, FAST_PATH,
         is_callable=False),
    Hook("faust.types.Message.generation_id", _MESSAGE, "generation_id", _BATCHES, FAST_PATH,
         is_callable=False),
    Hook("faust.sensors.Monitor.stream_inbound_time", _load("faust.sensors", "Monitor"),
         "stream_inbound_time", _BATCHES, FAST_PATH, assigned_in="__init__"),
    Hook(f"{_AIOKAFKA_DRIVER}.Producer._settings_extra", _load(_AIOKAFKA_DRIVER, "Producer"),
         "_settings_extra", "the idempotent producer (workers/faust/producer.py)", IDEMPOTENT),
    Hook("faust.types.Message.acked", _MESSAGE, "acked", _ACKS, is_callable=False),
    Hook("faust.types.Message.refcount", _MESSAGE, "refcount", _ACKS, is_callable=False),
    Hook("faust.types.Message.decref", _MESSAGE, "decref", _ACKS, params=("n",)),
    Hook("faust.Worker._on_sigterm", _WORKER, "_on_sigterm", _STOP),
    Hook("faust.Worker._on_sigint", _WORKER, "_on_sigint", _STOP),
    Hook("faust.Worker.on_setup_root_logger", _WORKER, "on_setup_root_logger", _STOP,
         params=("logger", "level")),
    Hook("faust.Worker.spinner", _WORKER, "spinner", _STOP, assigned_in="__init__"),
    Hook("faust.models.fields.FieldDescriptor.required", _load("faust.models.fields", "FieldDescriptor"),
         "required", "typed faust.Record agents (workers/typed.py)", assigned_in="__init__"),
    Hook(f"{_AIOKAFKA_DRIVER}.credentials_to_aiokafka_auth", _load(_AIOKAFKA_DRIVER),
         "credentials_to_aiokafka_auth", "the Kafka security settings (workers/faust/credentials.py)",
         params=("credentials",)),
)  # fmt: skip

__all__ = ["ALWAYS", "FAST_PATH", "HOOKS", "IDEMPOTENT", "Hook", "HookMissing", "check", "installed_versions"]
