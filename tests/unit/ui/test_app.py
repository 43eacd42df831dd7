"""The app's routes refuse what their access checks refuse, whatever the route.

The checks here stand in for the api-server's (tests/integration/test_ui.py walks the same
routes against a real api-server): a header names the caller's role.
"""

from __future__ import annotations

import json

import pytest
from fastapi import Header, HTTPException
from fastapi.testclient import TestClient

from kafkalake.config import Settings
from kafkalake.ui.app import Access, create_app, deny_all
from tests.unit.ui.test_streams import write_fridge

V2 = '{"type": "record", "name": "Fridge", "fields": [{"name": "name", "type": "string"}]}'


ROLE = Header(None)


def role(x_role: str | None = ROLE) -> str:
    if x_role is None:
        raise HTTPException(401, "Not authenticated")
    return x_role


def allow(*roles: str):  # noqa: ANN201 (a FastAPI dependency)
    def check(x_role: str | None = ROLE) -> None:
        if role(x_role) not in roles:
            raise HTTPException(403, "Forbidden")
    return check


def readable(x_role: str | None = ROLE) -> set[str] | None:
    """The stream DAGs a role may read: ``fridge-only`` one, everyone else all (None)."""
    return {"stream_fridge"} if x_role == "fridge-only" else None


def fake_access() -> Access:
    return Access(authenticated=role, streams=readable, stream=allow("admin", "fridge-only"), lake=allow("admin"),
                  schemas=allow("admin"), dag_states=lambda: {})


def concrete(path: str) -> str:
    return (path.replace("{name}", "fridge").replace("{dag_id}", "stream_fridge").replace("{subject}", "fridge")
            .replace("{name}.png", "nothing.png") + ("?v1=1&v2=2" if path.endswith("/diff") else ""))


def calls(app) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(method, concrete(route.path)) for route in app.routes for method in sorted(route.methods - {"HEAD"})]


def send(client: TestClient, method: str, path: str, **headers: str):  # noqa: ANN201
    headers = {name.replace("_", "-"): value for name, value in headers.items()}
    if method == "POST":
        data = {"subject": "fridge", "candidate": V2} if not path.startswith("/api") else None
        return client.post(path, headers=headers, data=data, content=None if data else V2)
    return client.get(path, headers=headers, follow_redirects=False)


@pytest.fixture
def client(ui_settings: Settings) -> TestClient:
    write_fridge(ui_settings)
    return TestClient(create_app(fake_access(), settings_factory=lambda: ui_settings))


def test_the_app_reads_only(client: TestClient) -> None:
    methods = {(m, p) for m, p in calls(client.app) if m != "GET"}
    assert methods == {("POST", "/api/schemas/fridge/check"), ("POST", "/schemas/check")}  # they check, never write


def test_every_route_is_401_without_credentials_and_answers_with_them(client: TestClient) -> None:
    routes = calls(client.app)
    assert len(routes) >= 14
    for method, path in routes:
        assert send(client, method, path).status_code == 401, (method, path)
        answer = send(client, method, path, x_role="admin")
        assert answer.status_code in (200, 307, 404), (method, path, answer.text[:300])
        if not path.endswith(".png"):
            assert answer.status_code in (200, 307), (method, path, answer.text[:300])


def test_a_role_without_the_permission_gets_403_and_the_stream_list_is_filtered(client: TestClient) -> None:
    assert send(client, "GET", "/lake", x_role="fridge-only").status_code == 403
    assert send(client, "GET", "/api/schemas", x_role="fridge-only").status_code == 403
    assert send(client, "GET", "/api/streams/plant", x_role="nobody").status_code == 403
    names = [s["name"] for s in send(client, "GET", "/api/streams", x_role="fridge-only").json()["streams"]]
    assert names == ["fridge"]
    assert [s["name"] for s in send(client, "GET", "/api/streams", x_role="admin").json()["streams"]] == [
        "fridge", "plant"]


def test_a_refused_page_is_html_with_the_same_status_and_the_api_answers_json(client: TestClient) -> None:
    page = send(client, "GET", "/streams")
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert "Sign in to Airflow" in page.text
    api = send(client, "GET", "/api/streams")
    assert api.status_code == 401 and api.json() == {"detail": "Not authenticated"}


def test_without_airflows_checks_every_route_is_403(ui_settings: Settings) -> None:
    client = TestClient(create_app(deny_all(), settings_factory=lambda: ui_settings))
    for method, path in calls(client.app):
        assert send(client, method, path, x_role="admin").status_code == 403, (method, path)


def test_the_views_show_the_status_files_numbers(client: TestClient) -> None:
    page = send(client, "GET", "/streams", x_role="admin").text
    assert 'data-field="batch_id">2<' in page and 'data-field="input_rows">302<' in page
    assert 'data-field="lag">42<' in page and 'data-lag-partition="fridge-events-0">40<' in page
    assert "setPaused(this, 'stream_fridge', true)" in page
    assert send(client, "GET", "/dag/compaction", x_role="admin").status_code == 404  # not a stream DAG


def test_the_schema_check_changes_nothing_and_offers_the_migration_dag(client: TestClient, ui_settings) -> None:
    before = {p: p.read_bytes() for p in ui_settings.schemas_dir.rglob("*") if p.is_file()}
    v3 = ui_settings.schemas_dir.joinpath("fridge", "v2.avsc").read_text().replace(
        '"fields": [', '"fields": [{"name": "door", "type": ["null", "string"], "default": null}, ', 1)
    verdict = client.post("/api/schemas/fridge/check", content=v3, headers={"x-role": "admin"}).json()
    assert verdict["compatible"] and verdict["version"] == 3
    page = client.post("/schemas/check", data={"subject": "fridge", "candidate": v3}, headers={"x-role": "admin"})
    assert 'id="register"' in page.text and "triggerDag(this, 'schema_migration'" in page.text
    conf = json.loads(page.text.split("const MIGRATION_CONF = ")[1].split(";</script>")[0])
    assert conf == {"subject": "fridge", "schema": v3, "roll_streams": True, "dry_run": True}
    refused = client.post("/api/schemas/fridge/check", content='{"type": "record", "name": "Fridge", "fields": ['
                          '{"name": "size", "type": "int"}]}', headers={"x-role": "admin"}).json()
    assert refused["valid"] and not refused["compatible"]
    assert {p: p.read_bytes() for p in ui_settings.schemas_dir.rglob("*") if p.is_file()} == before
