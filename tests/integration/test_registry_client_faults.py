"""RegistryClient against scripted HTTP servers on loopback: the answers a healthy local registry never gives.

Fail-over, timeouts, fail-then-recover, 429/5xx/50003 retried, 404/409/422/401 not retried (counted on the
server), Karapace's plain-text bodies, auth headers as received, secrets kept out of messages, logs and
reprs, the negative cache, the latest-version TTL and stale serving during an outage.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from registry_fakes import Received, Reply, ScriptedRegistry, closed_port_url

from registry_codecs.errors import (
    IncompatibleSchema,
    InvalidSchema,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
)
from registry_codecs.metrics import CodecMetrics
from registry_codecs.registry import RegistryClient
from registry_codecs.schemas import SchemaReference

pytestmark = pytest.mark.integration

SECRET = "pw-9f3e-SECRET"
TOKEN = "tok-77aa-SECRET"
STRING = '"string"'
VND = "application/vnd.schemaregistry.v1+json"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[ScriptedRegistry]:
    with ScriptedRegistry() as scripted:
        yield scripted


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(urls: str | list[str], **kwargs: Any) -> RegistryClient:
    options: dict[str, Any] = {
        "connect_timeout": 2.0,
        "read_timeout": 2.0,  # generous: a loaded machine must not turn a test into a timeout test
        "max_retries": 2,
        "backoff_base": 0.005,
        "backoff_max": 0.02,
    }
    options.update(kwargs)
    return RegistryClient(urls, **options)


def by_id(schema: str = STRING, **extra: Any) -> Reply:
    return Reply(200, {"schema": schema, **extra})


def error(status: int, code: int | None = None, message: str = "boom", **kwargs: Any) -> Reply:
    body: Any = message if code is None else {"error_code": code, "message": message}
    return Reply(status, body, **kwargs)


# ----- protocol ---------------------------------------------------------------------------------------


def test_headers_body_and_paths(server: ScriptedRegistry) -> None:
    server.on("POST", "/subjects/a%2Fb%20c/versions", Reply(200, {"id": 12}))
    server.on("GET", "/schemas/ids/12", by_id())
    with make_client(server.url) as client:
        ref = SchemaReference("com.acme.Money", "money", 2)
        assert client.register("a/b c", STRING, references=(ref,)) == 12
        assert client.get_schema(12).schema_str == STRING
    post, get = server.received
    assert post.headers["Content-Type"] == VND
    assert post.headers["Accept"].startswith(VND)
    assert post.json() == {
        "schema": STRING,
        "references": [{"name": "com.acme.Money", "subject": "money", "version": 2}],
    }
    assert get.headers["Accept"].startswith(VND)
    assert "Content-Type" not in get.headers  # no body, no content type


def test_base_url_with_a_path_prefix(server: ScriptedRegistry) -> None:
    # Apicurio serves the Confluent API below /apis/ccompat/v7.
    server.on("GET", "/apis/ccompat/v7/schemas/ids/3", by_id())
    with make_client(server.url + "/apis/ccompat/v7/") as client:
        assert client.get_schema(3).schema_type == "AVRO"


# ----- fail-over, timeouts, retries ----------------------------------------------------------------------


def test_fail_over_from_a_dead_url_and_a_failing_url() -> None:
    with ScriptedRegistry() as failing, ScriptedRegistry() as healthy:
        failing.on("GET", "/schemas/ids/1", error(503, 50003, "forwarding to the leader failed"))
        healthy.on("GET", "/schemas/ids/1", by_id())
        healthy.on("GET", "/schemas/ids/2", by_id('"int"'))
        with make_client([closed_port_url(), failing.url, healthy.url], max_retries=0) as client:
            assert client.get_schema(1).schema_str == STRING
            # The URL that answered is tried first from now on.
            assert client.get_schema(2).schema_str == '"int"'
        assert failing.count() == 1
        assert healthy.count() == 2


def test_an_error_answer_also_marks_a_url_as_the_one_to_try_first() -> None:
    with ScriptedRegistry() as failing, ScriptedRegistry() as healthy:
        failing.on("GET", "/schemas/ids/1", error(503))
        healthy.on("GET", "/schemas/ids/1", error(404, 40403))
        healthy.on("GET", "/schemas/ids/2", by_id())
        with make_client([failing.url, healthy.url], max_retries=0) as client:
            with pytest.raises(SchemaNotFound):
                client.get_schema(1)
            assert client.get_schema(2).schema_str == STRING
        assert failing.count() == 1


def test_a_server_that_sleeps_past_the_read_timeout_is_retried(server: ScriptedRegistry) -> None:
    server.on("GET", "/schemas/ids/1", Reply(200, {"schema": STRING}, delay=5.0), by_id())
    with make_client(server.url, read_timeout=0.5) as client:
        assert client.get_schema(1).schema_str == STRING
    assert server.count("GET", "/schemas/ids/1") == 2


def test_a_server_that_always_times_out_gives_registry_unavailable(server: ScriptedRegistry) -> None:
    server.on("GET", "/schemas/ids/1", Reply(200, {"schema": STRING}, delay=3.0))
    with make_client(server.url, read_timeout=0.2, max_retries=1) as client:
        with pytest.raises(RegistryUnavailable, match="timed out") as info:
            client.get_schema(1)
    assert info.value.retriable
    assert isinstance(info.value.__cause__, RegistryUnavailable)
    assert server.count() == 2


@pytest.mark.parametrize(
    "failure",
    [
        error(500, 50001, "store error"),
        error(500, 50003, "forwarding"),
        error(503, None, "<html>Service Unavailable</html>"),
        error(502, None, "bad gateway"),
        error(429, 429, "slow down", headers={"Retry-After": "0"}),
        error(408, None, "request timeout"),
    ],
    ids=["50001", "50003", "503-html", "502", "429", "408"],
)
def test_fail_then_recover(server: ScriptedRegistry, failure: Reply) -> None:
    server.on("GET", "/schemas/ids/1", failure, failure, by_id())
    with make_client(server.url, max_retries=2) as client:
        assert client.get_schema(1).schema_str == STRING
    assert server.count() == 3


def test_retry_budget_exhausted(server: ScriptedRegistry) -> None:
    server.on("GET", "/schemas/ids/1", error(500, 50003, "forwarding"))
    with make_client(server.url, max_retries=3) as client:
        with pytest.raises(RegistryUnavailable, match="after 4 attempts") as info:
            client.get_schema(1)
    assert (info.value.status_code, info.value.error_code) == (500, 50003)
    assert server.count() == 4


@pytest.mark.parametrize(
    ("method", "path", "reply", "expected", "codes"),
    [
        ("GET", "/schemas/ids/9", error(404, 40403, "Schema 9 not found"), SchemaNotFound, (404, 40403)),
        ("GET", "/schemas/ids/9", error(404, None, "404: Not Found"), SchemaNotFound, (404, None)),
        ("GET", "/subjects/s/versions/latest", error(404, None, "Not Found"), SubjectNotFound, (404, None)),
        ("GET", "/subjects/s/versions/latest", error(404, 40401), SubjectNotFound, (404, 40401)),
        ("POST", "/subjects/s/versions", error(409, 409, "incompatible"), IncompatibleSchema, (409, 409)),
        ("POST", "/subjects/s/versions", error(422, 42201, "bad"), InvalidSchema, (422, 42201)),
        ("POST", "/subjects/s/versions", error(422, None, "Unprocessable"), InvalidSchema, (422, None)),
        ("POST", "/subjects/s/versions", error(401, 40101, "who"), RegistryAuthError, (401, 40101)),
        ("POST", "/subjects/s/versions", error(403, None, "Forbidden"), RegistryAuthError, (403, None)),
        ("POST", "/subjects/s/versions", error(400, 400, "bad request"), RegistryError, (400, 400)),
    ],
)
def test_client_errors_are_typed_and_not_retried(
    server: ScriptedRegistry,
    method: str,
    path: str,
    reply: Reply,
    expected: type[RegistryError],
    codes: tuple[int, int | None],
) -> None:
    server.on(method, path, reply)
    with make_client(server.url, max_retries=3) as client:
        with pytest.raises(expected) as info:
            if path.startswith("/schemas/ids/"):
                client.get_schema(9)
            elif method == "GET":
                client.get_latest("s")
            else:
                client.register("s", STRING)
    assert type(info.value) is expected
    assert (info.value.status_code, info.value.error_code) == codes
    assert not info.value.retriable
    assert server.count() == 1


def test_a_success_that_is_not_json_is_an_error_not_a_crash(server: ScriptedRegistry) -> None:
    server.on("GET", "/subjects", Reply(200, "<html>login page</html>"))
    with make_client(server.url) as client, pytest.raises(RegistryError, match="not JSON"):
        client.get_subjects()


def test_ping_makes_one_pass_without_backoff_rounds(server: ScriptedRegistry) -> None:
    server.on("GET", "/config", error(503))
    with make_client([server.url, closed_port_url()], max_retries=5) as client:
        with pytest.raises(RegistryUnavailable):
            client.ping()
        assert server.count() == 1
        server.on("GET", "/config", error(401, 40101))
        with pytest.raises(RegistryAuthError):
            client.ping()
        server.on("GET", "/config", Reply(200, {"compatibilityLevel": "BACKWARD"}))
        client.ping()


def test_subject_without_config_falls_back_to_global(server: ScriptedRegistry) -> None:
    server.on("GET", "/config/s", error(404, 40408, "Subject 's' does not have subject-level compatibility"))
    server.on("GET", "/config", Reply(200, {"compatibilityLevel": "FULL"}))
    with make_client(server.url) as client:
        assert client.get_compatibility("s") == "FULL"
    assert [r.path for r in server.received] == ["/config/s", "/config"]
    assert server.received[0].query == "defaultToGlobal=true"


# ----- credentials --------------------------------------------------------------------------------------


def _echo_auth(request: Received) -> Reply:
    # A badly behaved server that echoes the credentials it got into its error message.
    return Reply(401, {"error_code": 40101, "message": f"rejected {request.headers.get('Authorization')}"})


def test_basic_auth_from_url_user_info_and_explicit(server: ScriptedRegistry) -> None:
    server.on("GET", "/subjects", Reply(200, []))
    host = server.url.removeprefix("http://")
    with make_client(f"http://alice:{SECRET}@{host}") as client:
        client.get_subjects()
    with make_client(server.url, basic_auth=("bob", SECRET)) as client:
        client.get_subjects()
    with make_client(server.url, bearer_token=TOKEN) as client:
        client.get_subjects()
    sent = [r.headers["Authorization"] for r in server.received]
    assert sent == [
        "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode(),
        "Basic " + base64.b64encode(f"bob:{SECRET}".encode()).decode(),
        f"Bearer {TOKEN}",
    ]


def test_no_secret_in_messages_logs_or_reprs(
    server: ScriptedRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3's and ours
    server.on("GET", "/schemas/ids/1", _echo_auth)
    server.on("GET", "/schemas/ids/2", error(503, 50003, "down"))
    host = server.url.removeprefix("http://")
    texts: list[str] = []
    for client in (
        make_client([f"http://alice:{SECRET}@{closed_port_url()[7:]}", f"http://alice:{SECRET}@{host}"]),
        make_client(server.url, bearer_token=TOKEN),
    ):
        with client:
            texts.append(repr(client))
            for schema_id, kind in ((1, RegistryAuthError), (2, RegistryUnavailable)):
                with pytest.raises(kind) as info:
                    client.get_schema(schema_id)
                texts += [str(info.value), repr(info.value), repr(info.value.__cause__)]
    assert "rejected Basic ***" in texts[1]  # the echoed header was masked, the rest of the message kept
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(getattr(record, "args", "")) for record in caplog.records]
    basic = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    leaks = [t for t in texts if SECRET in t or TOKEN in t or basic in t or "alice:" in t]
    assert leaks == []
    assert any(host in t for t in texts)  # the URLs are there, without their user info


# ----- caches -------------------------------------------------------------------------------------------


def test_negative_cache_of_unknown_ids(server: ScriptedRegistry, clock: FakeClock) -> None:
    server.on("GET", "/schemas/ids/404", error(404, 40403, "Schema 404 not found"))
    with make_client(server.url, negative_ttl=5.0, clock=clock) as client:
        for _ in range(50):
            with pytest.raises(SchemaNotFound) as info:
                client.get_schema(404)
            assert info.value.error_code == 40403
        assert server.count() == 1
        clock.now += 5.0
        with pytest.raises(SchemaNotFound):
            client.get_schema(404)
        assert server.count() == 2


def test_schema_by_id_is_fetched_once_even_under_concurrency(server: ScriptedRegistry) -> None:
    server.on("GET", "/schemas/ids/5", Reply(200, {"schema": STRING}, delay=0.2))
    results: list[str] = []
    with make_client(server.url) as client:
        threads = [
            threading.Thread(target=lambda: results.append(client.get_schema(5).schema_str))
            for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        for _ in range(100):
            client.get_schema(5)
    assert results == [STRING] * 20
    assert server.count() == 1


def _latest(version: int, schema_id: int) -> dict[str, Any]:
    schema = f'{{"type": "fixed", "size": {version}, "name": "F"}}'
    return {"subject": "s", "version": version, "id": schema_id, "schema": schema}


def test_latest_is_cached_for_its_ttl_then_refreshed(server: ScriptedRegistry, clock: FakeClock) -> None:
    server.on("GET", "/subjects/s/versions/latest", Reply(200, _latest(1, 10)), Reply(200, _latest(2, 11)))
    with make_client(server.url, latest_ttl=30.0, clock=clock) as client:
        assert client.get_latest("s").version == 1
        clock.now += 29.9
        assert client.get_latest("s").version == 1  # a new version is not seen before the TTL...
        assert server.count() == 1
        clock.now += 0.1
        latest = client.get_latest("s")  # ...and is seen once it has passed
        assert (latest.version, latest.schema_id, latest.subject) == (2, 11, "s")
        assert server.count() == 2
        # The answer also filled the by-id cache: decoding a frame written with it costs no request.
        assert client.get_schema(11).schema_str == latest.schema_str
        assert server.count() == 2


def test_stale_latest_keeps_serving_during_an_outage(
    server: ScriptedRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    state = {"up": True, "version": 1}

    def latest(_: Received) -> Reply:
        return Reply(200, _latest(state["version"], 10 + state["version"])) if state["up"] else error(503)

    server.on("GET", "/subjects/s/versions/latest", latest)
    collector = CollectorRegistry()
    metrics = CodecMetrics.create(collector)
    stale = ("avroflow_stale_schema_served_total", {"subject": "s"})
    caplog.set_level(logging.WARNING, logger="registry_codecs.registry")
    with make_client(server.url, latest_ttl=10.0, clock=clock, metrics=metrics, max_retries=1) as client:
        assert client.get_latest("s").version == 1
        state["up"] = False
        served = []
        for _ in range(5):
            clock.now += 11.0
            served += [client.get_latest("s").version for _ in range(3)]
        assert served == [1] * 15
        assert collector.get_sample_value(*stale) == 15
        warnings = [r for r in caplog.records if "serving the cached latest schema" in r.getMessage()]
        assert len(warnings) == 1  # once per outage, not once per call
        # The registry is not asked once per call while down: one refresh (with its retries) per interval.
        requests_while_down = server.count() - 1
        assert requests_while_down == 5 * 2
        state.update(up=True, version=2)
        clock.now += 11.0
        assert client.get_latest("s").version == 2
        assert collector.get_sample_value(*stale) == 15


def test_latest_without_a_cached_value_raises_when_down(server: ScriptedRegistry) -> None:
    server.on("GET", "/subjects/s/versions/latest", error(503))
    with make_client(server.url, max_retries=0) as client, pytest.raises(RegistryUnavailable):
        client.get_latest("s")


@pytest.mark.parametrize(
    ("failure", "expected"),
    [(error(404, 40401, "gone"), SubjectNotFound), (error(401, 40101, "expired"), RegistryAuthError)],
    ids=["deleted", "auth"],
)
def test_only_unavailability_is_served_stale(
    server: ScriptedRegistry, clock: FakeClock, failure: Reply, expected: type[RegistryError]
) -> None:
    # A deleted subject or revoked credentials are answers, not an outage: they must surface.
    server.on("GET", "/subjects/s/versions/latest", Reply(200, _latest(1, 11)), failure)
    with make_client(server.url, latest_ttl=1.0, clock=clock) as client:
        client.get_latest("s")
        clock.now += 1.0
        with pytest.raises(expected):
            client.get_latest("s")


def test_metrics_by_endpoint_outcome_and_cache(server: ScriptedRegistry) -> None:
    server.on("GET", "/schemas/ids/1", error(503), by_id())
    server.on("GET", "/schemas/ids/2", error(404, 40403))
    collector = CollectorRegistry()
    with make_client(server.url, metrics=CodecMetrics.create(collector)) as client:
        for _ in range(3):
            client.get_schema(1)
        with pytest.raises(SchemaNotFound):
            client.get_schema(2)

    def value(name: str, **labels: str) -> float | None:
        return collector.get_sample_value(name, labels)

    assert value("avroflow_registry_requests_total", endpoint="schema_by_id", outcome="server_error") == 1
    assert value("avroflow_registry_requests_total", endpoint="schema_by_id", outcome="ok") == 1
    assert value("avroflow_registry_requests_total", endpoint="schema_by_id", outcome="not_found") == 1
    assert value("avroflow_schema_cache_hits_total", cache="by_id") == 2
    assert value("avroflow_schema_cache_misses_total", cache="by_id") == 2
    assert value("avroflow_registry_request_duration_seconds_count", endpoint="schema_by_id") == 2
    # Labels stay low-cardinality: no id or subject appears in any label.
    labels = {v for metric in collector.collect() for s in metric.samples for v in s.labels.values()}
    assert not labels & {"1", "2"}


def _version_with_refs(subject: str, refs: list[tuple[str, str]]) -> Reply:
    body = {
        "subject": subject,
        "version": 1,
        "id": len(subject),
        "schema": f'"{subject}-text"',
        "references": [{"name": name, "subject": sub, "version": 1} for name, sub in refs],
    }
    return Reply(200, body)


def _refs(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "subject": subject, "version": 1} for name, subject in pairs]


def test_references_diamond_resolves_dependencies_first_and_once(server: ScriptedRegistry) -> None:
    # order -> (money, address); money -> currency; address -> currency.
    server.on("GET", "/subjects/money/versions/1", _version_with_refs("money", [("Currency", "currency")]))
    server.on(
        "GET", "/subjects/address/versions/1", _version_with_refs("address", [("Currency", "currency")])
    )
    server.on("GET", "/subjects/currency/versions/1", _version_with_refs("currency", []))
    server.on(
        "GET",
        "/schemas/ids/40",
        by_id('"order"', references=_refs(("Money", "money"), ("Address", "address"))),
    )
    with make_client(server.url) as client:
        schema = client.get_schema(40)
        assert client.get_schema(40) is schema
    assert [name for name, _ in schema.resolved_references] == ["Currency", "Money", "Address"]
    assert dict(schema.resolved_references)["Money"] == '"money-text"'
    assert server.count() == 4  # each referenced version fetched once, the id once


def test_reference_cycles_terminate(server: ScriptedRegistry) -> None:
    # A cycle a real registry would refuse to store; the client must still not loop on it.
    server.on("GET", "/subjects/a/versions/1", _version_with_refs("a", [("B", "b")]))
    server.on("GET", "/subjects/b/versions/1", _version_with_refs("b", [("A", "a")]))
    server.on("GET", "/schemas/ids/41", by_id('"root"', references=_refs(("A", "a"))))
    with make_client(server.url) as client:
        schema = client.get_schema(41)
    assert sorted(name for name, _ in schema.resolved_references) == ["A", "B"]
    assert server.count() == 3


def test_lookup_keeps_the_references_an_answer_omits(server: ScriptedRegistry) -> None:
    # Some registries answer a lookup with subject, version, id and schema only. The schema found is the
    # one asked about, references included: without them it could not be parsed.
    server.on("GET", "/subjects/currency/versions/1", _version_with_refs("currency", []))
    server.on(
        "POST",
        "/subjects/orders-value",
        Reply(200, {"subject": "orders-value", "version": 3, "id": 12, "schema": '"order"'}),
    )
    refs = (SchemaReference("Currency", "currency", 1),)
    with make_client(server.url) as client:
        found = client.lookup("orders-value", '"order"', references=refs)
    assert (found.schema_id, found.version, found.references) == (12, 3, refs)
    assert found.resolved_references == (("Currency", '"currency-text"'),)


def test_compatibility_against_a_missing_subject_from_an_older_registry(server: ScriptedRegistry) -> None:
    # Confluent 5.x and Karapace answer 40401 (or 40402) for "latest" of a subject that does not exist;
    # Confluent 7.x answers compatible. The client gives the 7.x answer either way; a numbered version
    # that does not exist stays an error.
    latest = "/compatibility/subjects/new-value/versions/latest"
    server.on("POST", latest, error(404, 40401, "Subject 'new-value' not found."))
    server.on("POST", "/compatibility/subjects/other-value/versions/latest", error(404, 40402, "no"))
    server.on("POST", "/compatibility/subjects/new-value/versions/2", error(404, 40401, "Subject not found"))
    with make_client(server.url) as client:
        assert client.test_compatibility("new-value", STRING)
        assert client.test_compatibility("other-value", STRING, verbose=True).messages == ()
        with pytest.raises(SubjectNotFound):
            client.test_compatibility("new-value", STRING, version=2)
