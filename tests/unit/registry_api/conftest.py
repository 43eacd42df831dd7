"""A registry folder built with ``Registry.register`` and the API over it, through TestClient."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kafkalake.registry_api import create_app
from kafkalake.schema.registry import Registry

FRIDGE_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "action", "type": ["string", "null"]},
    {"name": "sendtime", "type": ["int", "null"]},
]
TEMPERATURE = {"name": "temperature", "type": ["null", "double"], "default": None}


def fridge(*extra: dict) -> str:
    """The fridge record with ``extra`` fields appended (pretty JSON, as a person writes it)."""
    doc = {"namespace": "example.avro", "type": "record", "name": "User", "fields": [*FRIDGE_FIELDS, *extra]}
    return json.dumps(doc, indent=2)


def door(*extra: dict) -> str:
    doc = {"type": "record", "name": "Door", "namespace": "t", "fields": [{"name": "open", "type": "boolean"}, *extra]}
    return json.dumps(doc)


def body(schema_text: str, **extra: object) -> dict[str, object]:
    """What confluent-kafka's ``Schema.to_dict`` sends."""
    return {"schema": schema_text, "schemaType": "AVRO", "references": [], **extra}


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """fridge v1 (id 1), v2 (id 2, + temperature); door v1 (id 3) under FULL_TRANSITIVE."""
    reg = Registry(tmp_path / "schemas")
    reg.register("fridge", fridge())
    reg.register("fridge", fridge(TEMPERATURE))
    reg.register("door", door())
    reg.set_compatibility("door", "FULL_TRANSITIVE")
    return reg


@pytest.fixture
def client_for(registry: Registry) -> Callable[..., TestClient]:
    def make(*, allow_register: bool = False) -> TestClient:
        return TestClient(create_app(registry.path, allow_register=allow_register), raise_server_exceptions=False)

    return make


@pytest.fixture
def client(client_for: Callable[..., TestClient]) -> TestClient:
    """Read-only, the default."""
    return client_for()
