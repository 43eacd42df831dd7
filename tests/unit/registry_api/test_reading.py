"""Read routes: Confluent's documents, its media type and its error shapes, over a real folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from kafkalake.registry_api import CONTENT_TYPE
from kafkalake.schema.registry import INDEX_FILE, Registry
from tests.unit.registry_api.conftest import TEMPERATURE, fridge


def ok(client: TestClient, path: str) -> object:
    response = client.get(path, headers={"Accept": "application/vnd.schemaregistry.v1+json"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    return response.json()


def test_root_answers_an_empty_object(client: TestClient) -> None:
    assert ok(client, "/") == {}


def test_subjects_and_their_versions(client: TestClient) -> None:
    assert ok(client, "/subjects") == ["door", "fridge"]
    assert ok(client, "/subjects?subjectPrefix=fr") == ["fridge"]
    assert ok(client, "/subjects/fridge/versions") == [1, 2]
    assert ok(client, "/subjects/door/versions") == [1]


@pytest.mark.parametrize("version", ["2", "latest", "-1"])
def test_a_version_document_is_confluents(client: TestClient, registry: Registry, version: str) -> None:
    doc = ok(client, f"/subjects/fridge/versions/{version}")
    stored = registry.get("fridge", 2)
    assert set(doc) == {"subject", "version", "id", "schema"}
    assert (doc["subject"], doc["version"], doc["id"]) == ("fridge", 2, stored.schema_id)
    # one line, as Confluent returns it; the same schema as the folder's pretty file
    assert "\n" not in doc["schema"] and json.loads(doc["schema"]) == json.loads(stored.schema_json)
    assert ok(client, f"/subjects/fridge/versions/{version}/schema") == json.loads(stored.schema_json)
    assert ok(client, f"/subjects/fridge/versions/{version}/referencedby") == []


def test_schemas_by_id(client: TestClient, registry: Registry) -> None:
    v1 = registry.get("fridge", 1)
    assert ok(client, f"/schemas/ids/{v1.schema_id}") == {"schema": json.dumps(json.loads(v1.schema_json),
                                                                                 separators=(",", ":"))}
    assert ok(client, f"/schemas/ids/{v1.schema_id}/schema") == json.loads(v1.schema_json)
    assert ok(client, f"/schemas/ids/{v1.schema_id}/versions") == [{"subject": "fridge", "version": 1}]
    door = registry.latest("door")
    assert ok(client, f"/schemas/ids/{door.schema_id}/subjects") == ["door"]
    assert [(d["subject"], d["version"], d["id"]) for d in ok(client, "/schemas")] == [
        ("fridge", 1, 1), ("fridge", 2, 2), ("door", 1, 3)]
    assert ok(client, "/schemas/types") == ["AVRO"]


def test_compatibility_levels_and_mode(client: TestClient, client_for) -> None:
    assert ok(client, "/config") == {"compatibilityLevel": "BACKWARD"}
    assert ok(client, "/config/fridge") == {"compatibilityLevel": "BACKWARD"}
    assert ok(client, "/config/door") == {"compatibilityLevel": "FULL_TRANSITIVE"}
    assert ok(client, "/config/nope?defaultToGlobal=true") == {"compatibilityLevel": "BACKWARD"}
    assert ok(client, "/mode") == {"mode": "READONLY"}
    assert ok(client, "/mode/fridge") == {"mode": "READONLY"}
    assert ok(client_for(allow_register=True), "/mode") == {"mode": "READWRITE"}


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "message"),
    [
        ("GET", "/subjects/nope/versions", 404, 40401, "Subject 'nope' not found."),
        ("GET", "/subjects/nope/versions/1", 404, 40401, "Subject 'nope' not found."),
        ("GET", "/subjects/nope/versions/latest/schema", 404, 40401, "Subject 'nope' not found."),
        ("GET", "/subjects/fridge/versions/3", 404, 40402, "Version 3 not found."),
        ("GET", "/subjects/fridge/versions/3/schema", 404, 40402, "Version 3 not found."),
        ("GET", "/subjects/fridge/versions/0", 422, 42202,
         "The specified version '0' is not a valid version id. Allowed values are between [1, 2^31-1] and the "
         'string "latest"'),
        ("GET", "/subjects/fridge/versions/abc", 422, 42202, None),
        ("GET", "/subjects/fridge/versions/2147483648", 422, 42202, None),
        ("GET", "/schemas/ids/999", 404, 40403, "Schema 999 not found"),
        ("GET", "/schemas/ids/abc", 404, 40403, "Schema abc not found"),
        ("GET", "/schemas/ids/999/versions", 404, 40403, "Schema 999 not found"),
        ("GET", "/schemas/ids/999/subjects", 404, 40403, "Schema 999 not found"),
        ("GET", "/schemas/ids/999/schema", 404, 40403, "Schema 999 not found"),
        ("GET", "/config/nope", 404, 40408, "Subject 'nope' does not have subject-level compatibility configured"),
        ("GET", "/no/such/route", 404, 404, "HTTP 404 Not Found"),
        ("PATCH", "/subjects", 405, 405, "HTTP 405 Method Not Allowed"),
        ("DELETE", "/subjects/fridge", 422, 42205, None),
        ("DELETE", "/subjects/fridge/versions/1", 422, 42205, None),
        ("PUT", "/config/fridge", 422, 42205, None),
        ("PUT", "/mode", 422, 42205, None),
    ],
)
def test_errors_have_confluents_shape(
    client: TestClient, method: str, path: str, status: int, code: int, message: str | None
) -> None:
    response = client.request(method, path, json={"compatibility": "NONE"} if method == "PUT" else None)
    assert response.status_code == status
    assert response.headers["content-type"] == CONTENT_TYPE
    doc = response.json()
    assert set(doc) == {"error_code", "message"} and doc["error_code"] == code
    if message is not None:
        assert doc["message"] == message
    if code == 42205:
        assert "schema_migration" in doc["message"]


def test_a_file_edited_after_registration_is_a_store_error_not_a_trace(client: TestClient, registry: Registry) -> None:
    path = registry.path / "fridge" / "v1.avsc"
    path.write_text(path.read_text().replace('"sendtime"', '"sent"'))
    response = client.get("/subjects/fridge/versions/1")
    assert response.status_code == 500
    doc = response.json()
    assert doc["error_code"] == 50001
    assert "changed after registration" in doc["message"] and "Traceback" not in response.text
    assert ok(client, "/subjects/fridge/versions/2")["version"] == 2  # the rest is still served


def test_a_broken_index_is_a_store_error(client: TestClient, registry: Registry) -> None:
    registry.index_path.write_text("{ not json")
    response = client.get("/subjects")
    assert response.status_code == 500
    assert response.json()["error_code"] == 50001 and "not valid JSON" in response.json()["message"]


def test_a_version_written_by_another_process_is_served_without_restart(
    client: TestClient, registry: Registry, tmp_path
) -> None:
    """A version merged in git = files written by someone else: the next request serves it."""
    assert ok(client, "/subjects/fridge/versions/latest")["version"] == 2
    before = tmp_path / "before"
    shutil.copytree(registry.path, before)
    new = tmp_path / "v3.avsc"
    new.write_text(fridge(TEMPERATURE, {"name": "door", "type": ["null", "string"], "default": None}))
    result = subprocess.run(
        [sys.executable, "-m", "kafkalake.cli", "schema", "--schemas-dir", str(registry.path), "register", "fridge",
         str(new)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    latest = ok(client, "/subjects/fridge/versions/latest")
    assert (latest["version"], latest["id"]) == (3, 4)
    assert "door" in latest["schema"]
    assert ok(client, "/schemas/ids/4/versions") == [{"subject": "fridge", "version": 3}]
    assert ok(client, "/subjects/fridge/versions") == [1, 2, 3]

    # and back, as a `git checkout` of the older index would do it
    shutil.copyfile(before / INDEX_FILE, registry.index_path)
    assert ok(client, "/subjects/fridge/versions") == [1, 2]
    assert client.get("/schemas/ids/4").json()["error_code"] == 40403
