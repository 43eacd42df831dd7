"""POST /subjects/{s}/versions: refused by default, the CLI's gates when allowed."""

from __future__ import annotations

import json
import socket

import pytest
from fastapi.testclient import TestClient

from kafkalake.cli import main
from kafkalake.config import LOOPBACK
from kafkalake.registry_api.server import bind
from kafkalake.schema.registry import Registry
from tests.unit.registry_api.conftest import TEMPERATURE, body, fridge
from tests.unit.schema.test_registry import folder_digest

OPTIONAL_DOOR = {"name": "door", "type": ["null", "string"], "default": None}
REQUIRED_HUMIDITY = {"name": "humidity", "type": "double"}


def test_refused_by_default_naming_the_migration_dag(client: TestClient, registry: Registry) -> None:
    before = folder_digest(registry.path)
    response = client.post("/subjects/fridge/versions", json=body(fridge(TEMPERATURE, OPTIONAL_DOOR)))
    assert response.status_code == 422
    doc = response.json()
    assert doc["error_code"] == 42205
    assert doc["message"].startswith("Subject 'fridge' is in read-only mode")
    assert "schema_migration DAG" in doc["message"] and "KAFKALAKE_REGISTRY_ALLOW_REGISTER=true" in doc["message"]
    assert client.post("/subjects/new/versions", json=body(fridge())).json()["error_code"] == 42205
    assert folder_digest(registry.path) == before


def test_read_only_still_answers_the_id_of_a_registered_schema(client: TestClient, registry: Registry) -> None:
    """A producer with auto.register.schemas=true (Confluent's default) works for known schemas."""
    before = folder_digest(registry.path)
    compact = json.dumps(json.loads(fridge(TEMPERATURE)), separators=(",", ":"))
    response = client.post("/subjects/fridge/versions?normalize=False", json=body(compact))
    assert response.status_code == 200 and response.json() == {"id": registry.get("fridge", 2).schema_id}
    assert folder_digest(registry.path) == before


def test_allowed_registration_runs_the_clis_gates(client_for, registry: Registry) -> None:
    client = client_for(allow_register=True)
    response = client.post("/subjects/fridge/versions", json=body(fridge(TEMPERATURE, OPTIONAL_DOOR)))
    assert response.status_code == 200, response.text
    assert response.json() == {"id": 4}
    assert registry.latest("fridge").version == 3 and (registry.path / "fridge" / "v3.avsc").is_file()
    assert client.get("/subjects/fridge/versions/latest").json()["id"] == 4
    # identical again (other formatting): the existing id, no new version (Confluent behaviour)
    again = client.post("/subjects/fridge/versions", json=body(json.dumps(json.loads(fridge(TEMPERATURE,
                                                                                             OPTIONAL_DOOR)))))
    assert again.json() == {"id": 4} and registry.versions("fridge") == [1, 2, 3]
    # a new subject gets the next global id and its subject.yaml
    created = client.post("/subjects/door-events/versions", json=body('{"type": "string"}'))
    assert created.json() == {"id": 5}
    assert client.get("/config/door-events").json() == {"compatibilityLevel": "BACKWARD"}


def test_an_incompatible_schema_is_409_and_changes_nothing(client_for, registry: Registry) -> None:
    client = client_for(allow_register=True)
    before = folder_digest(registry.path)
    response = client.post("/subjects/fridge/versions", json=body(fridge(TEMPERATURE, REQUIRED_HUMIDITY)))
    assert response.status_code == 409
    doc = response.json()
    assert doc["error_code"] == 409
    assert doc["message"].startswith(
        'Schema being registered is incompatible with an earlier schema for subject "fridge", details: [')
    assert "field 'humidity' at /fields/4 has no default" in doc["message"]
    assert folder_digest(registry.path) == before


@pytest.mark.parametrize(
    ("subject", "schema_text", "code", "fragment"),
    [
        ("fridge", '{"type": "record", "name": "x"', 42201, "Invalid schema: fridge schema: invalid JSON"),
        ("fridge", '{"type": "nosuchtype"}', 42201, "not a valid Avro schema"),
        ("_registry", '{"type": "string"}', 42208, "The specified subject '_registry' is not valid"),
    ],
)
def test_invalid_input_is_refused_in_either_mode(
    client_for, registry: Registry, subject: str, schema_text: str, code: int, fragment: str
) -> None:
    before = folder_digest(registry.path)
    for allow in (False, True):
        response = client_for(allow_register=allow).post(f"/subjects/{subject}/versions", json=body(schema_text))
        assert response.status_code == 422
        assert response.json()["error_code"] == code and fragment in response.json()["message"]
    assert folder_digest(registry.path) == before


def test_serve_on_a_taken_port_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            main(["registry", "serve", "--host", LOOPBACK, "--port", str(port)])
    assert exit_info.value.code == 3
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert err == [f"error: registry: cannot listen on {LOOPBACK}:{port} (Address already in use); stop the "
                   "process using it or choose another port with KAFKALAKE_REGISTRY_PORT (or --port)"]


def test_bind_gives_a_socket_on_a_free_port() -> None:
    sock = bind(LOOPBACK, 0)
    try:
        assert sock.getsockname()[0] == LOOPBACK and sock.getsockname()[1] > 0
    finally:
        sock.close()
