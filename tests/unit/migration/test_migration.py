"""Schema migration's pure steps: params, validation, the compatibility verdict, registration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kafkalake.config import Settings
from kafkalake.migration.rollout import (
    MigrationError,
    check,
    parse_request,
    register,
    roll_streams,
    validate,
)
from kafkalake.schema.model import Compatibility
from kafkalake.schema.registry import Registry

REPO = Path(__file__).resolve().parents[3]
V1 = (REPO / "schemas" / "fridge" / "v1.avsc").read_text()
V2 = (REPO / "schemas" / "fridge" / "v2.avsc").read_text()


def _settings(tmp_path: Path) -> Settings:
    Registry(tmp_path / "schemas").register("fridge", V1)
    (tmp_path / "streams.yaml").write_text(
        json.dumps({"streams": [{"name": "fr", "topics": ["t"], "subject": "fridge"}]})
    )
    return Settings.from_env({"KAFKALAKE_STATE_DIR": str(tmp_path / "state"),
                              "KAFKALAKE_SCHEMAS_DIR": str(tmp_path / "schemas"),
                              "KAFKALAKE_STREAMS_FILE": str(tmp_path / "streams.yaml")})


def test_params_parse_with_defaults_and_a_mode_override() -> None:
    request = parse_request({"subject": "fridge", "schema": V2})
    assert (request.roll_streams, request.dry_run, request.mode) == (True, False, None)
    overridden = parse_request({"subject": "fridge", "schema": json.loads(V2), "compatibility": "none"})
    assert overridden.mode is Compatibility.NONE
    for bad, message in (({"schema": V2}, "subject is required"), ({"subject": "fridge"}, "schema is required"),
                         ({"subject": "fridge", "schema": V2, "compatibility": "SIDEWAYS"}, "SIDEWAYS")):
        with pytest.raises(Exception, match=message):
            parse_request(bad)


def test_a_compatible_schema_is_checked_registered_once_and_streams_not_running_are_left_alone(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    request = parse_request({"subject": "fridge", "schema": V2})
    assert validate(settings, request)["streams"] == ["fr"]
    checked = check(settings, request)
    assert checked["version"] == 2 and checked["tables"] == "fr: add temperature double"
    assert register(settings, request) == {"version": 2, "schema_id": 2}
    assert register(settings, request) == {"version": 2, "schema_id": 2}  # idempotent
    assert check(settings, request)["existing"] == 2
    assert roll_streams(settings, "fridge", 2, say=lambda _: None) == {
        "fr": "not running: its next start reads the new version"}


def test_a_refused_schema_lists_every_problem_with_its_location_and_writes_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    doc = json.loads(V2)
    doc["fields"] += [{"name": "humidity", "type": "double"}, {"name": "door", "type": "boolean"}]
    request = parse_request({"subject": "fridge", "schema": json.dumps(doc)})
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "schemas").rglob("*") if p.is_file())
    with pytest.raises(MigrationError) as err:
        check(settings, request)
    message = str(err.value)
    assert "2 problem(s)" in message and "/fields/4" in message and "/fields/5" in message and "\n" not in message
    # the override lets an operator take responsibility for it
    forced = parse_request({"subject": "fridge", "schema": json.dumps(doc), "compatibility": "NONE"})
    assert check(settings, forced)["mode"] == "NONE"
    assert sorted((p.name, p.read_bytes()) for p in (tmp_path / "schemas").rglob("*") if p.is_file()) == before


def test_invalid_schema_text_and_unknown_subjects_are_one_line_errors(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    for params, message in (({"subject": "fridge", "schema": '{"type": "record", "fields": [}'},
                             "invalid JSON at line 1"),
                            ({"subject": "nosuch", "schema": V2}, "no subject 'nosuch'"),
                            ({"subject": "fridge", "schema": '"string"'}, "must be a record")):
        with pytest.raises(MigrationError) as err:
            validate(settings, parse_request(params))
        assert message in str(err.value) and "\n" not in str(err.value)


def test_a_change_the_table_cannot_follow_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """docs/architecture.md: Schema changes are checked before they exist. BACKWARD lets an int
    become a double; an Iceberg column cannot."""
    settings = _settings(tmp_path)
    doc = json.loads(V1)
    doc["fields"][2]["type"] = ["double", "null"]
    request = parse_request({"subject": "fridge", "schema": json.dumps(doc)})
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "schemas").rglob("*") if p.is_file())
    with pytest.raises(Exception) as err:
        check(settings, request)
    assert str(err.value) == ("field sendtime: int -> double cannot be expressed in the Iceberg table fr "
                              "(allowed: int->long, float->double, decimal widening, new optional fields)")
    assert err.value.exit_code == 8
    assert sorted((p.name, p.read_bytes()) for p in (tmp_path / "schemas").rglob("*") if p.is_file()) == before
    # a subject no stream reads has no table to follow it
    (tmp_path / "streams.yaml").write_text(json.dumps({"streams": []}))
    assert check(settings, request)["tables"] is None
