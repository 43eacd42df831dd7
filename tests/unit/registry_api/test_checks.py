"""Lookup and compatibility routes: the registry's own gates, answered in Confluent's shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kafkalake.schema.registry import Registry
from tests.unit.registry_api.conftest import TEMPERATURE, body, door, fridge
from tests.unit.schema.test_registry import folder_digest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "schemas"
REQUIRED_HUMIDITY = {"name": "humidity", "type": "double"}  # no default: old records lack it
OPTIONAL_DOOR = {"name": "door", "type": ["null", "string"], "default": None}


def test_lookup_finds_the_version_whatever_the_formatting(client: TestClient, registry: Registry) -> None:
    compact = json.dumps(json.loads(fridge()), separators=(",", ":"))
    response = client.post("/subjects/fridge?normalize=False&deleted=True", json=body(compact))
    assert response.status_code == 200, response.text
    doc = response.json()
    assert (doc["subject"], doc["version"], doc["id"]) == ("fridge", 1, registry.get("fridge", 1).schema_id)
    assert json.loads(doc["schema"]) == json.loads(fridge())


@pytest.mark.parametrize(
    ("subject", "schema_text", "status", "code", "message"),
    [
        ("fridge", fridge(OPTIONAL_DOOR), 404, 40403, "Schema not found"),
        ("nope", fridge(), 404, 40401, "Subject 'nope' not found."),
        ("fridge", (FIXTURES / "fridge_v2_missing_comma.avsc").read_text(), 422, 42201,
         "Invalid schema: fridge schema: invalid JSON at line 9 column 5: Expecting ',' delimiter "
         "(is a comma missing before it?)"),
        ("fridge", (FIXTURES / "fridge_v2_string_default_on_null_union.avsc").read_text(), 422, 42201, None),
    ],
)
def test_lookup_errors(client: TestClient, subject: str, schema_text: str, status: int, code: int,
                       message: str | None) -> None:
    response = client.post(f"/subjects/{subject}", json=body(schema_text))
    assert response.status_code == status
    assert response.json()["error_code"] == code
    if message is not None:
        assert response.json()["message"] == message


@pytest.mark.parametrize(
    ("payload", "status", "code", "fragment"),
    [
        (b"not json", 400, 400, "not JSON"),
        (b'{"schemaType": "AVRO"}', 422, 42201, 'a "schema" string'),
        (json.dumps(body('{"type": "string"}', schemaType="PROTOBUF")).encode(), 422, 42201, "Avro only"),
        (json.dumps(body('{"type": "string"}', references=[{"name": "x", "subject": "y", "version": 1}])).encode(),
         422, 42201, "references are not supported"),
    ],
)
def test_bad_request_bodies(client: TestClient, payload: bytes, status: int, code: int, fragment: str) -> None:
    response = client.post("/subjects/fridge", content=payload,
                           headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    assert response.status_code == status
    assert response.json()["error_code"] == code and fragment in response.json()["message"]


def test_compatible_and_incompatible_against_latest(client: TestClient, registry: Registry) -> None:
    before = folder_digest(registry.path)
    url = "/compatibility/subjects/fridge/versions/latest"
    good = client.post(url, json=body(fridge(TEMPERATURE, OPTIONAL_DOOR)))
    assert good.status_code == 200 and good.json() == {"is_compatible": True}
    bad = client.post(url, json=body(fridge(TEMPERATURE, REQUIRED_HUMIDITY)))
    assert bad.json() == {"is_compatible": False}
    # confluent-kafka's test_compatibility sends Python's spelling of booleans
    verbose = client.post(f"{url}?normalize=False&verbose=True", json=body(fridge(TEMPERATURE, REQUIRED_HUMIDITY)))
    doc = verbose.json()
    assert doc["is_compatible"] is False and len(doc["messages"]) == 1
    assert "field 'humidity' at /fields/4 has no default" in doc["messages"][0]
    assert client.post(f"{url}?verbose=true", json=body(fridge(TEMPERATURE))).json() == {"is_compatible": True,
                                                                                         "messages": []}
    assert folder_digest(registry.path) == before  # checking writes nothing


def test_a_version_route_checks_that_version_only(client: TestClient) -> None:
    """Dropping temperature's default: v1 records lack the field, so BACKWARD refuses it against
    v1; every v2 record has it, so against v2 alone it is compatible."""
    no_default = {"name": "temperature", "type": ["null", "double"]}
    against_v1 = client.post("/compatibility/subjects/fridge/versions/1?verbose=true", json=body(fridge(no_default)))
    assert against_v1.json()["is_compatible"] is False
    assert "field 'temperature'" in against_v1.json()["messages"][0]
    # the same change, checked against v2 (which has temperature): every v2 record has it
    against_v2 = client.post("/compatibility/subjects/fridge/versions/2", json=body(fridge(no_default)))
    assert against_v2.json() == {"is_compatible": True}


def test_all_versions_route_follows_the_transitive_mode(client: TestClient, registry: Registry) -> None:
    registry.register("door", door({"name": "locked", "type": ["null", "boolean"], "default": None}))
    # FULL_TRANSITIVE: dropping 'open' (no default in v1 or v2) breaks readers of both versions
    dropped_doc = json.loads(door())
    dropped_doc["fields"] = [{"name": "locked", "type": ["null", "boolean"], "default": None}]
    response = client.post("/compatibility/subjects/door/versions?verbose=true", json=body(json.dumps(dropped_doc)))
    doc = response.json()
    assert doc["is_compatible"] is False
    assert len(doc["messages"]) == 2  # v1 readers and v2 readers both miss 'open'
    assert client.post("/compatibility/subjects/nope/versions", json=body(door())).json() == {"is_compatible": True}


def test_mode_none_accepts_anything(client: TestClient, registry: Registry) -> None:
    registry.set_compatibility("fridge", "NONE")
    response = client.post("/compatibility/subjects/fridge/versions/latest", json=body(door()))
    assert response.json() == {"is_compatible": True}


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/compatibility/subjects/nope/versions/latest", 404, 40401),
        ("/compatibility/subjects/fridge/versions/7", 404, 40402),
        ("/compatibility/subjects/fridge/versions/x", 422, 42202),
        ("/compatibility/subjects/_registry/versions", 422, 42208),
        ("/compatibility/subjects/_registry/versions/1", 404, 40401),
    ],
)
def test_compatibility_errors(client: TestClient, path: str, status: int, code: int) -> None:
    response = client.post(path, json=body(fridge()))
    assert (response.status_code, response.json()["error_code"]) == (status, code)


def test_an_invalid_candidate_is_42201_with_the_validators_line(client: TestClient) -> None:
    text = (FIXTURES / "fridge_v2_string_default_on_null_union.avsc").read_text()
    response = client.post("/compatibility/subjects/fridge/versions/latest", json=body(text))
    assert response.status_code == 422
    doc = response.json()
    assert doc["error_code"] == 42201 and doc["message"].startswith("Invalid schema: fridge schema: ")
    assert "\n" not in doc["message"]
