"""The local registry's REST API, exercised over HTTP against a real `python -m devstack.registry` process.

One registry process serves the module; each test works on its own subjects (a per-test prefix), so the
tests do not depend on each other's order.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.registry import RegistryProcess

pytestmark = pytest.mark.integration

TIMEOUT = 5.0
_counter = itertools.count()


def record(name: str, *fields: tuple[str, Any] | tuple[str, Any, Any]) -> str:
    """A record schema's JSON text; a field is (name, type) or (name, type, default)."""
    out = []
    for f in fields:
        item: dict[str, Any] = {"name": f[0], "type": f[1]}
        if len(f) == 3:
            item["default"] = f[2]
        out.append(item)
    return json.dumps({"type": "record", "name": name, "fields": out})


V1 = record("User", ("id", "long"))
V2 = record("User", ("id", "long"), ("email", "string", ""))
V2_NO_DEFAULT = record("User", ("id", "long"), ("email", "string"))


class Api:
    """A thin requests wrapper: every call has a timeout and answers (status, JSON)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        response = self.session.request(
            method,
            self.base + path,
            json=body,
            params={k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()},
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
            timeout=TIMEOUT,
        )
        assert response.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
        return response.status_code, response.json()

    def register(self, subject: str, schema: str, **extra: Any) -> tuple[int, Any]:
        return self.call("POST", f"/subjects/{subject}/versions", {"schema": schema, **extra})


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryProcess]:
    with RegistryProcess() as proc:
        yield proc


@pytest.fixture
def api(registry: RegistryProcess) -> Iterator[Api]:
    client = Api(registry.url)
    yield client
    client.session.close()


@pytest.fixture
def subject() -> str:
    return f"s{next(_counter)}-value"


def test_ids_are_global_and_registering_again_adds_no_version(api: Api, subject: str) -> None:
    status, first = api.register(subject, V1)
    assert status == 200
    spaced = json.dumps(json.loads(V1), indent=4)  # same schema, different text
    assert api.register(subject, spaced) == (200, first)
    assert api.register(f"{subject}-other", V1) == (200, first)
    assert api.call("GET", f"/subjects/{subject}/versions") == (200, [1])
    status, second = api.register(subject, V2)
    assert status == 200
    assert second["id"] != first["id"]
    assert api.call("GET", f"/subjects/{subject}/versions") == (200, [1, 2])
    assert api.call("GET", f"/schemas/ids/{first['id']}/versions")[1] == [
        {"subject": subject, "version": 1},
        {"subject": f"{subject}-other", "version": 1},
    ]


def test_a_changed_default_is_a_different_schema(api: Api, subject: str) -> None:
    _, with_a = api.register(subject, record("Conf", ("mode", "string", "a")))
    _, with_b = api.register(subject, record("Conf", ("mode", "string", "b")))
    assert with_a["id"] != with_b["id"]
    assert api.call("GET", f"/subjects/{subject}/versions")[1] == [1, 2]


def test_versions_and_schemas_are_served_as_confluent_does(api: Api, subject: str) -> None:
    _, reg = api.register(subject, V1)
    api.register(subject, V2)
    status, latest = api.call("GET", f"/subjects/{subject}/versions/latest")
    assert status == 200
    assert latest["subject"] == subject and latest["version"] == 2
    assert json.loads(latest["schema"]) == json.loads(V2)
    assert "schemaType" not in latest and "references" not in latest
    assert api.call("GET", f"/subjects/{subject}/versions/-1")[1] == latest
    assert api.call("GET", f"/subjects/{subject}/versions/1")[1]["id"] == reg["id"]
    assert api.call("GET", f"/subjects/{subject}/versions/1/schema") == (200, json.loads(V1))
    status, by_id = api.call("GET", f"/schemas/ids/{reg['id']}")
    assert status == 200 and json.loads(by_id["schema"]) == json.loads(V1)
    assert subject in api.call("GET", "/subjects")[1]
    assert api.call("GET", "/schemas/types") == (200, ["AVRO", "JSON", "PROTOBUF"])


def test_lookup_finds_the_version_or_says_why_not(api: Api, subject: str) -> None:
    _, reg = api.register(subject, V1)
    status, found = api.call("POST", f"/subjects/{subject}", {"schema": V1})
    assert status == 200
    assert (found["subject"], found["id"], found["version"]) == (subject, reg["id"], 1)
    assert json.loads(found["schema"]) == json.loads(V1)
    status, err = api.call("POST", f"/subjects/{subject}", {"schema": V2})
    assert (status, err["error_code"]) == (404, 40403)
    status, err = api.call("POST", f"/subjects/{subject}-missing", {"schema": V1})
    assert (status, err["error_code"]) == (404, 40401)


def test_soft_then_permanent_delete_of_a_version(api: Api, subject: str) -> None:
    _, first = api.register(subject, V1)
    api.register(subject, V2)
    assert api.call("DELETE", f"/subjects/{subject}/versions/1", permanent=True)[1]["error_code"] == 40407
    assert api.call("DELETE", f"/subjects/{subject}/versions/1") == (200, 1)
    assert api.call("GET", f"/subjects/{subject}/versions") == (200, [2])
    assert api.call("GET", f"/subjects/{subject}/versions", deleted=True) == (200, [1, 2])
    assert api.call("GET", f"/subjects/{subject}/versions/1")[1]["error_code"] == 40402
    assert api.call("GET", f"/subjects/{subject}/versions/1", deleted=True)[1]["version"] == 1
    api.call("DELETE", f"/subjects/{subject}/versions/2")
    assert api.call("GET", f"/subjects/{subject}/versions/latest")[1]["error_code"] == 40401
    assert api.call("GET", f"/subjects/{subject}/versions/latest", deleted=True)[1]["version"] == 2
    # A deserializer still needs the id of soft-deleted data.
    assert api.call("GET", f"/schemas/ids/{first['id']}")[0] == 200
    assert api.call("DELETE", f"/subjects/{subject}/versions/1")[1]["error_code"] == 40406
    assert api.call("DELETE", f"/subjects/{subject}/versions/1", permanent=True) == (200, 1)
    assert api.call("GET", f"/subjects/{subject}/versions", deleted=True) == (200, [2])
    assert api.call("GET", f"/subjects/{subject}/versions")[1]["error_code"] == 40401  # all soft-deleted
    assert api.call("GET", f"/subjects/{subject}/versions/9")[1]["error_code"] == 40401


def test_soft_then_permanent_delete_of_a_subject(api: Api, subject: str) -> None:
    only_here = record("OnlyHere", ("id", "long"))
    _, reg = api.register(subject, only_here)
    api.register(subject, record("OnlyHere", ("id", "long"), ("n", "int", 0)))
    assert api.call("DELETE", f"/subjects/{subject}", permanent=True)[1]["error_code"] == 40405
    assert api.call("DELETE", f"/subjects/{subject}") == (200, [1, 2])
    assert subject not in api.call("GET", "/subjects")[1]
    assert subject in api.call("GET", "/subjects", deleted=True)[1]
    assert api.call("GET", f"/subjects/{subject}/versions")[1]["error_code"] == 40401
    assert api.call("DELETE", f"/subjects/{subject}")[1]["error_code"] == 40404
    assert api.call("DELETE", f"/subjects/{subject}", permanent=True) == (200, [1, 2])
    assert subject not in api.call("GET", "/subjects", deleted=True)[1]
    assert api.call("GET", f"/schemas/ids/{reg['id']}")[1]["error_code"] == 40403
    # Registering again starts a fresh history but the schema keeps its global id.
    assert api.register(subject, only_here) == (200, reg)
    assert api.call("GET", f"/subjects/{subject}/versions") == (200, [1])


def test_config_levels_globally_and_per_subject(api: Api, subject: str) -> None:
    assert api.call("GET", "/config") == (200, {"compatibilityLevel": "BACKWARD"})
    status, err = api.call("GET", f"/config/{subject}")
    assert (status, err["error_code"]) == (404, 40408)
    assert api.call("GET", f"/config/{subject}", defaultToGlobal=True) == (
        200,
        {"compatibilityLevel": "BACKWARD"},
    )
    assert api.call("PUT", f"/config/{subject}", {"compatibility": "FULL_TRANSITIVE"}) == (
        200,
        {"compatibility": "FULL_TRANSITIVE"},
    )
    assert api.call("GET", f"/config/{subject}") == (200, {"compatibilityLevel": "FULL_TRANSITIVE"})
    status, err = api.call("PUT", f"/config/{subject}", {"compatibility": "SIDEWAYS"})
    assert (status, err["error_code"]) == (422, 42203)
    assert api.call("DELETE", f"/config/{subject}") == (200, {"compatibilityLevel": "FULL_TRANSITIVE"})
    assert api.call("GET", f"/config/{subject}")[1]["error_code"] == 40408


def test_an_incompatible_schema_is_refused_with_409_and_reasons(api: Api, subject: str) -> None:
    api.register(subject, V1)
    status, err = api.register(subject, V2_NO_DEFAULT)
    assert status == 409 and err["error_code"] == 409
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in err["message"] and "email" in err["message"]
    assert api.call("GET", f"/subjects/{subject}/versions") == (200, [1])
    api.call("PUT", f"/config/{subject}", {"compatibility": "NONE"})
    assert api.register(subject, V2_NO_DEFAULT)[0] == 200


def test_forward_level_checks_the_other_direction(api: Api, subject: str) -> None:
    api.call("PUT", f"/config/{subject}", {"compatibility": "FORWARD"})
    api.register(subject, V2)
    # Dropping a field that has a default in the old schema: old readers fill it in.
    assert api.register(subject, V1)[0] == 200
    # Changing id to string breaks old readers.
    status, err = api.register(subject, record("User", ("id", "string")))
    assert status == 409 and "TYPE_MISMATCH" in err["message"]


def test_transitive_level_checks_every_live_version(api: Api, subject: str) -> None:
    api.call("PUT", f"/config/{subject}", {"compatibility": "BACKWARD_TRANSITIVE"})
    api.register(subject, record("T", ("a", "int"), ("b", "string", "x")))
    api.register(subject, record("T", ("a", "int")))
    readds_b_as_int = record("T", ("a", "int"), ("b", "int", 0))
    status, err = api.register(subject, readds_b_as_int)
    assert status == 409 and "version 1" in err["message"]
    api.call("PUT", f"/config/{subject}", {"compatibility": "BACKWARD"})
    assert api.register(subject, readds_b_as_int)[0] == 200


def test_compatibility_endpoints(api: Api, subject: str) -> None:
    api.register(subject, V1)
    path = f"/compatibility/subjects/{subject}/versions"
    assert api.call("POST", f"{path}/latest", {"schema": V2}) == (200, {"is_compatible": True})
    assert api.call("POST", f"{path}/1", {"schema": V2_NO_DEFAULT}) == (200, {"is_compatible": False})
    status, verbose = api.call("POST", f"{path}/latest", {"schema": V2_NO_DEFAULT}, verbose=True)
    assert status == 200 and verbose["is_compatible"] is False
    assert any("/fields/1" in m and "email" in m for m in verbose["messages"])
    assert api.call("POST", f"{path}/latest", {"schema": V2}, verbose=True)[1] == {
        "is_compatible": True,
        "messages": [],
    }
    assert api.call("POST", path, {"schema": V2_NO_DEFAULT}) == (200, {"is_compatible": False})
    assert api.call("POST", f"{path}/7", {"schema": V2})[1]["error_code"] == 40402
    # A subject that does not exist, as Confluent 7.x answers (test_registry_conformance.py says more).
    missing = f"/compatibility/subjects/{subject}-none/versions"
    assert api.call("POST", f"{missing}/latest", {"schema": V2}) == (200, {"is_compatible": True})
    assert api.call("POST", missing, {"schema": V2}, verbose=True) == (
        200,
        {"is_compatible": True, "messages": []},
    )
    assert api.call("POST", f"{missing}/1", {"schema": V2})[1]["error_code"] == 40402


def test_references_resolve_and_are_served(api: Api, subject: str) -> None:
    address = json.dumps(
        {
            "type": "record",
            "name": "Address",
            "namespace": "com.acme",
            "fields": [{"name": "street", "type": "string"}],
        }
    )
    api.register(f"{subject}-address", address)
    customer = json.dumps(
        {
            "type": "record",
            "name": "Customer",
            "namespace": "com.acme",
            "fields": [{"name": "home", "type": "Address"}],
        }
    )
    refs = [{"name": "com.acme.Address", "subject": f"{subject}-address", "version": 1}]
    status, reg = api.register(subject, customer, references=refs)
    assert status == 200
    assert api.call("GET", f"/subjects/{subject}/versions/1")[1]["references"] == refs
    assert api.call("GET", f"/schemas/ids/{reg['id']}")[1]["references"] == refs
    assert api.call("GET", f"/subjects/{subject}-address/versions/1/referencedby") == (200, [reg["id"]])
    # The referenced version cannot go while a live schema needs it.
    assert api.call("DELETE", f"/subjects/{subject}-address/versions/1")[1]["error_code"] == 42206
    assert api.call("DELETE", f"/subjects/{subject}-address")[1]["error_code"] == 42206
    api.call("DELETE", f"/subjects/{subject}")
    assert api.call("DELETE", f"/subjects/{subject}-address") == (200, [1])
    status, err = api.register(f"{subject}-2", customer)
    assert (status, err["error_code"]) == (422, 42201)
    missing = [{"name": "com.acme.Address", "subject": f"{subject}-address", "version": 5}]
    assert api.register(f"{subject}-3", customer, references=missing)[1]["error_code"] == 42201


def test_json_and_protobuf_schemas_are_stored_as_text(api: Api, subject: str) -> None:
    proto = 'syntax = "proto3";\nmessage Ping { int64 at = 1; }\n'
    status, reg = api.register(subject, proto, schemaType="PROTOBUF")
    assert status == 200
    assert api.register(subject, proto.replace("\n", "\n  "), schemaType="PROTOBUF") == (200, reg)
    assert api.call("GET", f"/schemas/ids/{reg['id']}")[1] == {"schema": proto, "schemaType": "PROTOBUF"}
    _, as_json = api.register(f"{subject}-json", '{"type": "object"}', schemaType="JSON")
    assert as_json["id"] != reg["id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/subjects/{s}/versions", {"schema": "{not json"}, 422, 42201),
        ("POST", "/subjects/{s}/versions", {"schema": '{"type": "record", "name": "X"}'}, 422, 42201),
        ("POST", "/subjects/{s}/versions", {"schema": '{"type": "nosuchtype"}'}, 422, 42201),
        ("POST", "/subjects/{s}/versions", {"schemaType": "AVRO"}, 422, 42201),
        ("POST", "/subjects/{s}/versions", {"schema": '["int", "int"]'}, 422, 42201),
        ("POST", "/subjects/{s}/versions", {"schema": '[["int"], "null"]'}, 422, 42201),
        (
            "POST",
            "/subjects/{s}/versions",
            {"schema": '{"type": "enum", "name": "E", "symbols": "AB"}'},
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/{s}/versions",
            {"schema": '{"type": "fixed", "name": "F", "size": "8"}'},
            422,
            42201,
        ),
        ("POST", "/subjects/{s}/versions", {"schema": "[" * 5000 + "]" * 5000}, 422, 42201),
        (
            "POST",
            "/subjects/{s}/versions",
            {"schema": '{"type": "array", "items": ' * 500 + '"int"' + "}" * 500},
            422,
            42201,
        ),
        ("POST", "/subjects/{s}/versions", ["not", "an", "object"], 422, 422),
        ("POST", "/subjects/{s}/versions", {"schema": V1, "schemaType": "XML"}, 422, 422),
        ("GET", "/subjects/{s}/versions/zero", None, 422, 42202),
        ("GET", "/subjects/{s}/versions/0", None, 422, 42202),
        ("GET", "/subjects/{s}/versions/%C2%B2", None, 422, 42202),
        ("GET", "/schemas/ids/%C2%B2", None, 404, 404),
        ("GET", "/subjects/{s}/versions/1", None, 404, 40401),
        ("GET", "/schemas/ids/999999", None, 404, 40403),
        ("GET", "/no/such/path", None, 404, 404),
        ("PUT", "/subjects", None, 405, 405),
        ("DELETE", "/schemas/types", None, 405, 405),
        ("PUT", "/config", {"compatibility": 7}, 422, 42203),
    ],
)
def test_errors_use_confluent_codes(
    api: Api, subject: str, method: str, path: str, body: Any, status: int, code: int
) -> None:
    got_status, err = api.call(method, path.format(s=subject), body)
    assert (got_status, err["error_code"]) == (status, code)
    assert isinstance(err["message"], str) and err["message"]


def test_malformed_requests_never_stop_the_server(registry: RegistryProcess, api: Api, subject: str) -> None:
    url = f"{registry.url}/subjects/{subject}/versions"
    bad_json = requests.post(
        url, data=b"{oops", headers={"Content-Type": "application/json"}, timeout=TIMEOUT
    )
    assert (bad_json.status_code, bad_json.json()["error_code"]) == (422, 422)
    form = requests.post(url, data={"schema": V1}, timeout=TIMEOUT)
    assert (form.status_code, form.json()["error_code"]) == (415, 415)
    for garbage in (b"\x00\xff garbage\r\n\r\n", b"GET /subjects HTTP/1.1\r\nContent-Length: -5\r\n\r\n"):
        with socket.create_connection((registry.host, registry.port), timeout=TIMEOUT) as sock:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: sock.recv(4096), b""))  # the server closes after an error
            status_line, _, rest = answer.partition(b"\r\n")
            assert status_line.split(b" ")[1] == b"400"
            assert json.loads(rest.partition(b"\r\n\r\n")[2])["error_code"] == 400
    assert api.register(subject, V1)[0] == 200
    assert registry.running


_PATH_WORDS = (
    "subjects versions schemas ids config compatibility latest -1 1 0 x %2F schema types referencedby"
)
_SEGMENTS = st.sampled_from([*_PATH_WORDS.split(), "mode", "99999999999999999999", "%FF", "..", "-5", ""])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["schema", "schemaType", "references", "compatibility", "version"]), inner
        )
    ),
    max_leaves=8,
)
_BODIES = st.one_of(
    _JSON,
    st.builds(lambda text: {"schema": text}, st.text(max_size=30)),
    st.builds(lambda refs: {"schema": '"int"', "references": refs}, _JSON),
)
_QUERIES = st.dictionaries(
    st.sampled_from(
        ["deleted", "permanent", "verbose", "offset", "limit", "defaultToGlobal", "subjectPrefix"]
    ),
    st.sampled_from(["true", "True", "x", "-1", "5", ""]),
    max_size=3,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    segments=st.lists(_SEGMENTS, max_size=6),
    body=_BODIES,
    query=_QUERIES,
)
def test_random_requests_get_a_coded_answer_never_a_crash(
    registry: RegistryProcess, method: str, segments: list[str], body: Any, query: dict[str, str]
) -> None:
    answer = requests.request(
        method, registry.url + "/" + "/".join(segments), json=body, params=query, timeout=TIMEOUT
    )
    assert answer.status_code < 500, answer.text
    payload = answer.json()
    assert answer.status_code == 200 or isinstance(payload["error_code"], int)
