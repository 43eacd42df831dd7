"""The schema registry: validity gates, Confluent compatibility modes, ids, atomic writes, CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kafkalake.cli.schema import schema_app
from kafkalake.schema.model import Compatibility, IncompatibleSchemaError, SchemaError, SchemaNotFoundError
from kafkalake.schema.registry import INDEX_FILE, Registry
from kafkalake.schema.validation import default_problems, validate_schema_text

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "schemas"
FIXTURES = REPO / "tests" / "fixtures" / "schemas"

#: The notebook's schema_ver1.avsc, verbatim.
NOTEBOOK_V1 = """{
  "namespace": "example.avro",
  "type": "record",
  "name": "User",
  "fields": [
    {"name": "name", "type": "string"},
    {"name": "action", "type": ["string", "null"]},
    {"name": "sendtime", "type": ["int", "null"]}
  ]
}
"""


def folder_digest(root: Path) -> str:
    """Every path and every byte under ``root``: equal digests mean nothing changed on disk."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def record(name: str, fields: list[dict], **extra: object) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "t", "fields": fields, **extra})


@pytest.fixture
def shipped_copy(tmp_path: Path) -> Registry:
    """The repo's schemas/ folder, copied so tests may write to it."""
    target = tmp_path / "schemas"
    shutil.copytree(SHIPPED, target)
    return Registry(target)


@pytest.fixture
def empty(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


# --------------------------------------------------------------------------- the shipped fridge subject


def test_shipped_registry_is_consistent() -> None:
    registry = Registry(SHIPPED)
    assert registry.check_all() == []
    assert registry.subjects() == ["fridge"]
    assert registry.versions("fridge") == [1, 2]
    assert registry.compatibility("fridge") is Compatibility.BACKWARD


def test_fridge_v1_is_the_notebook_schema_and_v2_adds_optional_temperature() -> None:
    registry = Registry(SHIPPED)
    v1, v2 = registry.get("fridge", 1), registry.get("fridge", 2)
    assert (v1.schema_id, v2.schema_id) == (1, 2)
    assert registry.by_id(1) == v1 and registry.by_id(2) == v2
    assert registry.latest("fridge") == v2
    # Same schema as the notebook's file, in Parsing Canonical Form (docs aside).
    assert v1.canonical_form == validate_schema_text(NOTEBOOK_V1).canonical_form
    v1_fields = json.loads(v1.schema_json)["fields"]
    v2_doc = json.loads(v2.schema_json)
    assert v2_doc["namespace"] == "example.avro" and v2_doc["name"] == "User"
    assert [f["name"] for f in v2_doc["fields"]] == ["name", "action", "sendtime", "temperature"]
    assert [(f["name"], f["type"]) for f in v2_doc["fields"][:3]] == [(f["name"], f["type"]) for f in v1_fields]
    temperature = v2_doc["fields"][3]
    assert temperature["type"] == ["null", "double"] and temperature["default"] is None


# --------------------------------------------------------------------------- the notebook's three v2 mistakes

NOTEBOOK_MISTAKES = [
    pytest.param(
        "fridge_v2_renamed_fields.avsc",
        IncompatibleSchemaError,
        ["refused under BACKWARD", "field 'id' at /fields/0 has no default", "renames 'name'"],
        id="renamed-fields",
    ),
    pytest.param(
        "fridge_v2_missing_comma.avsc",
        SchemaError,
        ["invalid JSON at line 9 column 5", "Expecting ',' delimiter"],
        id="missing-comma",
    ),
    pytest.param(
        "fridge_v2_string_default_on_null_union.avsc",
        SchemaError,
        ["field 'temp' at /fields/3", 'default "1"', "first branch \"null\"", 'use "default": null'],
        id="string-default-on-null-first-union",
    ),
]


@pytest.mark.parametrize(("fixture", "error", "phrases"), NOTEBOOK_MISTAKES)
def test_notebook_v2_mistakes_are_refused_and_nothing_is_written(
    shipped_copy: Registry, fixture: str, error: type[Exception], phrases: list[str]
) -> None:
    before = folder_digest(shipped_copy.path)
    text = (FIXTURES / fixture).read_text()
    with pytest.raises(error) as caught:
        shipped_copy.register("fridge", text, source=fixture)
    message = str(caught.value)
    assert "\n" not in message
    for phrase in phrases:
        assert phrase in message
    assert folder_digest(shipped_copy.path) == before
    assert shipped_copy.versions("fridge") == [1, 2]


def test_renamed_fields_report_lists_every_renamed_field(shipped_copy: Registry) -> None:
    report = shipped_copy.check("fridge", (FIXTURES / "fridge_v2_renamed_fields.avsc").read_text())
    assert not report.compatible
    assert report.checked_against == (2,)
    assert [(i.location, i.kind) for i in report.incompatibilities] == [
        ("/fields/0", "reader_field_missing_default_value"),
        ("/fields/1", "reader_field_missing_default_value"),
    ]
    assert "readers using v3 (new) cannot read v2 records" in report.incompatibilities[0].message
    assert "renames 'action'" in report.incompatibilities[1].message


def test_the_notebook_fixtures_are_each_only_one_mistake() -> None:
    """Each fixture must fail for its own reason, so each test proves one gate."""
    renamed = validate_schema_text((FIXTURES / "fridge_v2_renamed_fields.avsc").read_text())
    assert renamed.fingerprint.startswith("sha256:")  # valid JSON, valid Avro, valid defaults
    fixed_comma = (FIXTURES / "fridge_v2_missing_comma.avsc").read_text().replace(
        '["int", "null"]}\n', '["int", "null"]},\n'
    )
    validate_schema_text(fixed_comma)
    fixed_default = (FIXTURES / "fridge_v2_string_default_on_null_union.avsc").read_text().replace('"1"', "null")
    validate_schema_text(fixed_default)


# --------------------------------------------------------------------------- ids, versions, idempotency


def test_ids_are_global_sequential_and_permanent(empty: Registry) -> None:
    a1 = empty.register("a", record("A", [{"name": "x", "type": "int"}]))
    b1 = empty.register("b", record("B", [{"name": "y", "type": "string"}]))
    a2 = empty.register("a", record("A", [{"name": "x", "type": "int"}, {"name": "z", "type": "long", "default": 0}]))
    assert [(v.subject, v.version, v.schema_id) for v in (a1, b1, a2)] == [("a", 1, 1), ("b", 1, 2), ("a", 2, 3)]
    index = json.loads((empty.path / INDEX_FILE).read_text())
    assert [(e["id"], e["subject"], e["version"]) for e in index["schemas"]] == [(1, "a", 1), (2, "b", 1), (3, "a", 2)]
    # a fresh Registry object reads the same answers from disk
    again = Registry(empty.path)
    assert again.by_id(2) == b1 and again.latest("a") == a2
    assert (empty.path / "a" / "subject.yaml").read_text().endswith("compatibility: BACKWARD\n")


def test_registering_an_equal_schema_returns_the_existing_version(shipped_copy: Registry) -> None:
    before = folder_digest(shipped_copy.path)
    # same schema, other formatting, key order, fullname spelling and no doc
    reformatted = json.dumps(
        {
            "fields": [
                {"type": "string", "name": "name"},
                {"type": ["string", "null"], "name": "action"},
                {"type": ["int", "null"], "name": "sendtime"},
            ],
            "name": "example.avro.User",
            "type": "record",
        }
    )
    assert shipped_copy.register("fridge", NOTEBOOK_V1).version == 1
    assert shipped_copy.register("fridge", reformatted).schema_id == 1
    report = shipped_copy.check("fridge", reformatted)
    assert report.existing is not None and report.existing.version == 1 and report.compatible
    assert folder_digest(shipped_copy.path) == before


def test_a_changed_default_is_a_new_version_even_with_equal_canonical_form(shipped_copy: Registry) -> None:
    v2 = json.loads(shipped_copy.get("fridge", 2).schema_json)
    v2["fields"][1]["default"] = "idle"  # PCF drops defaults, readers do not
    created = shipped_copy.register("fridge", json.dumps(v2))
    assert (created.version, created.schema_id) == (3, 3)
    assert created.canonical_form == shipped_copy.get("fridge", 2).canonical_form


def test_an_invalid_avro_schema_is_refused_without_creating_the_subject(empty: Registry) -> None:
    with pytest.raises(SchemaError, match="not a valid Avro schema"):
        empty.register("oven", record("Oven", [{"name": "t", "type": "strng"}]))
    assert not (empty.path / "oven").exists()
    assert not (empty.path / INDEX_FILE).exists()


@pytest.mark.parametrize("subject", ["../escape", "_registry", "", "a/b", "has space"])
def test_subject_names_that_are_not_plain_folder_names_are_refused(empty: Registry, subject: str) -> None:
    with pytest.raises(SchemaError, match="subject name"):
        empty.register(subject, record("A", [{"name": "x", "type": "int"}]))


def test_unknown_subject_version_and_id_raise_not_found(shipped_copy: Registry) -> None:
    with pytest.raises(SchemaNotFoundError, match="no subject 'oven'"):
        shipped_copy.latest("oven")
    with pytest.raises(SchemaNotFoundError, match="has no version 7"):
        shipped_copy.get("fridge", 7)
    with pytest.raises(SchemaNotFoundError, match="schema id 99"):
        shipped_copy.by_id(99)


def test_an_unlisted_avsc_from_a_crash_is_ignored_then_replaced(shipped_copy: Registry) -> None:
    """.avsc is written before the index: a crash between them leaves a file nobody reads."""
    orphan = shipped_copy.path / "fridge" / "v3.avsc"
    orphan.write_text("{ half written")
    assert shipped_copy.versions("fridge") == [1, 2]
    assert any("v3.avsc is not in _registry.json" in p for p in shipped_copy.check_all())
    v2 = json.loads(shipped_copy.get("fridge", 2).schema_json)
    v2["fields"].append({"name": "door_open", "type": "boolean", "default": False})
    created = shipped_copy.register("fridge", json.dumps(v2))
    assert (created.version, created.schema_id) == (3, 3)
    assert json.loads(orphan.read_text())["fields"][-1]["name"] == "door_open"
    assert shipped_copy.check_all() == []
    assert not [p for p in shipped_copy.path.rglob("*.tmp")]


# --------------------------------------------------------------------------- compatibility modes

BASE = record("R", [{"name": "a", "type": "int"}])
CHANGES = {
    # change: (schema text, backward-compatible?, forward-compatible?)
    "add-field-with-default": (
        record("R", [{"name": "a", "type": "int"}, {"name": "b", "type": "string", "default": ""}]),
        True,
        True,
    ),
    "add-required-field": (record("R", [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}]), False, True),
    "remove-field": (record("R", [{"name": "c", "type": "int", "default": 0}]), True, False),
    "widen-int-to-long": (record("R", [{"name": "a", "type": "long"}]), True, False),
    "change-int-to-string": (record("R", [{"name": "a", "type": "string"}]), False, False),
}


@pytest.mark.parametrize("mode", list(Compatibility))
@pytest.mark.parametrize("change", list(CHANGES))
def test_modes_follow_confluent_semantics_against_the_latest_version(
    empty: Registry, mode: Compatibility, change: str
) -> None:
    empty.register("s", BASE)
    empty.set_compatibility("s", mode)
    text, backward_ok, forward_ok = CHANGES[change]
    expected = (backward_ok or not mode.backward) and (forward_ok or not mode.forward)
    report = empty.check("s", text)
    assert report.compatible is expected
    assert report.checked_against == (() if mode is Compatibility.NONE else (1,))
    before = folder_digest(empty.path)
    if expected:
        assert empty.register("s", text).version == 2
    else:
        with pytest.raises(IncompatibleSchemaError):
            empty.register("s", text)
        assert folder_digest(empty.path) == before


def _chain(registry: Registry, *texts: str) -> None:
    registry.set_compatibility("s", Compatibility.NONE)
    for text in texts:
        registry.register("s", text)


def test_backward_transitive_checks_every_earlier_version(empty: Registry) -> None:
    v1 = record("R", [{"name": "a", "type": "int"}])
    v2 = record("R", [])
    v3 = record("R", [{"name": "a", "type": "string", "default": ""}])  # reads v2, not v1's int
    _chain(empty, v1, v2)
    empty.set_compatibility("s", "BACKWARD")
    assert empty.check("s", v3).compatible
    empty.set_compatibility("s", "backward_transitive")
    report = empty.check("s", v3)
    assert not report.compatible and report.checked_against == (1, 2)
    (problem,) = report.incompatibilities
    assert (problem.writer, problem.location, problem.kind) == ("v1", "/fields/0/type", "type_mismatch")
    assert "reads it as string but v1 wrote int" in problem.message


def test_forward_transitive_checks_every_earlier_reader(empty: Registry) -> None:
    v1 = record("R", [{"name": "a", "type": "int"}])
    v2 = record("R", [{"name": "a", "type": "int", "default": 0}])
    v3 = record("R", [])  # v2 readers use the default, v1 readers have none
    _chain(empty, v1, v2)
    empty.set_compatibility("s", "FORWARD")
    assert empty.check("s", v3).compatible
    empty.set_compatibility("s", "FULL_TRANSITIVE")
    report = empty.check("s", v3)
    (problem,) = report.incompatibilities
    assert (problem.reader, problem.writer, problem.location) == ("v1", "v3 (new)", "/fields/0")
    assert "readers using v1 cannot read v3 (new) records" in problem.message


def test_union_locations_name_the_branch(empty: Registry) -> None:
    empty.register("s", record("R", [{"name": "action", "type": ["string", "null"]}]))
    # reader union lacks the writer's "string" branch: location is the writer's branch
    report = empty.check("s", record("R", [{"name": "action", "type": ["null", "int"], "default": None}]))
    assert [(i.location, i.kind) for i in report.incompatibilities] == [("/fields/0/type/0", "missing_union_branch")]
    assert "field 'action'" in report.incompatibilities[0].message
    assert "add \"string\" to the union" in report.incompatibilities[0].message
    # non-union reader of a union writer: avro itself reports "/" here; we keep the branch
    report = empty.check("s", record("R", [{"name": "action", "type": "string"}]))
    assert [(i.location, i.kind) for i in report.incompatibilities] == [("/fields/0/type/1", "type_mismatch")]
    assert "wrote null" in report.incompatibilities[0].message


def test_nested_record_inside_an_optional_field_is_located(empty: Registry) -> None:
    def place(fields: list[dict]) -> str:
        place_type = {"type": "record", "name": "Place", "fields": fields}
        return record("R", [{"name": "where", "type": ["null", place_type], "default": None}])

    empty.register("s", place([{"name": "lat", "type": "double"}]))
    report = empty.check("s", place([{"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}]))
    assert [i.location for i in report.incompatibilities] == ["/fields/0/type/1/fields/1"]
    assert "field 'lon'" in report.incompatibilities[0].message


def test_renamed_record_and_removed_enum_symbol_explain_the_fix(empty: Registry) -> None:
    state = {"type": "enum", "name": "State", "symbols": ["OPEN", "CLOSED", "BROKEN"]}
    empty.register("s", record("R", [{"name": "state", "type": state}]))
    renamed = empty.check("s", json.dumps({"type": "record", "name": "Renamed", "namespace": "t",
                                           "fields": [{"name": "state", "type": state}]}))
    assert [i.location for i in renamed.incompatibilities] == ["/name"]
    assert 'add "aliases": ["t.R"]' in renamed.incompatibilities[0].message
    fewer = dict(state, symbols=["OPEN", "CLOSED"])
    symbols = empty.check("s", record("R", [{"name": "state", "type": fewer}]))
    assert [(i.location, i.kind) for i in symbols.incompatibilities] == [
        ("/fields/0/type/symbols", "missing_enum_symbols")
    ]
    assert "['BROKEN']" in symbols.incompatibilities[0].message
    with_default = dict(fewer, default="CLOSED")
    assert empty.check("s", record("R", [{"name": "state", "type": with_default}])).compatible


def test_an_alias_makes_a_rename_backward_compatible(shipped_copy: Registry) -> None:
    v2 = json.loads(shipped_copy.get("fridge", 2).schema_json)
    v2["fields"][0] = {"name": "device", "type": "string", "aliases": ["name"]}
    assert shipped_copy.check("fridge", json.dumps(v2)).compatible


# --------------------------------------------------------------------------- default validation

BAD_DEFAULTS = [
    pytest.param({"name": "n", "type": "int", "default": "1"}, "/fields/0", 'type "int"', id="string-for-int"),
    pytest.param({"name": "n", "type": "int", "default": 2**31}, "/fields/0", 'type "int"', id="int-out-of-range"),
    pytest.param({"name": "n", "type": "long", "default": True}, "/fields/0", 'type "long"', id="bool-for-long"),
    pytest.param(
        {"name": "n", "type": ["string", "null"], "default": None},
        "/fields/0",
        'put "null" first',
        id="null-default-not-first-branch",
    ),
    pytest.param(
        {"name": "n", "type": {"type": "array", "items": {
            "type": "record", "name": "I", "fields": [{"name": "q", "type": "double", "default": "x"}]}}},
        "/fields/0/type/items/fields/0",
        "field 'q'",
        id="nested-record-in-array",
    ),
    pytest.param(
        {"name": "n", "type": {"type": "record", "name": "P", "fields": [{"name": "x", "type": "int"}]}, "default": {}},
        "/fields/0",
        'type "t.P"',
        id="record-default-missing-field",
    ),
    pytest.param(
        {"name": "n", "type": {"type": "fixed", "name": "F", "size": 2}, "default": "abc"},
        "/fields/0",
        'type "t.F"',
        id="fixed-wrong-size",
    ),
    pytest.param(
        {"name": "n", "type": {"type": "enum", "name": "E", "symbols": ["A"]}, "default": "B"},
        "/fields/0",
        'type "t.E"',
        id="enum-not-a-symbol",
    ),
]


@pytest.mark.parametrize(("bad_field", "location", "phrase"), BAD_DEFAULTS)
def test_defaults_that_do_not_match_their_type_are_refused(
    empty: Registry, bad_field: dict, location: str, phrase: str
) -> None:
    text = record("R", [bad_field])
    with pytest.raises(SchemaError) as caught:
        empty.register("s", text)
    assert f"at {location}:" in str(caught.value)
    assert phrase in str(caught.value)
    assert not empty.path.exists() or not any(empty.path.iterdir())


def test_defaults_that_match_are_accepted() -> None:
    good = record(
        "R",
        [
            {"name": "a", "type": ["null", "string"], "default": None},
            {"name": "b", "type": "double", "default": 1},
            {"name": "c", "type": "bytes", "default": "\u00ff\u0000"},
            {
                "name": "d",
                "type": {"type": "record", "name": "P",
                         "fields": [{"name": "x", "type": "int"}, {"name": "y", "type": "int", "default": 0}]},
                "default": {"x": 1},
            },
            {"name": "e", "type": {"type": "map", "values": {"type": "array", "items": "long"}},
             "default": {"k": [1, 2]}},
            {"name": "f", "type": ["P", "null"], "default": {"x": 2}},
        ],
    )
    candidate = validate_schema_text(good)
    assert default_problems(candidate.schema) == []


# --------------------------------------------------------------------------- check_all and diff


def test_check_all_finds_edited_files_duplicate_ids_and_incompatible_chains(shipped_copy: Registry) -> None:
    v1_path = shipped_copy.path / "fridge" / "v1.avsc"
    v1_path.write_text(v1_path.read_text().replace("notebook", "NOTEBOOK"))
    problems = shipped_copy.check_all()
    assert len(problems) == 1 and "v1.avsc changed after registration" in problems[0]

    shutil.rmtree(shipped_copy.path)
    shutil.copytree(SHIPPED, shipped_copy.path)
    index_path = shipped_copy.path / INDEX_FILE
    index = json.loads(index_path.read_text())
    index["schemas"][1]["id"] = 1
    index_path.write_text(json.dumps(index))
    assert any("schema id 1 is used by both fridge v1 and fridge v2" in p
               for p in Registry(shipped_copy.path).check_all())


def test_check_all_rechecks_compatibility_under_the_current_mode(empty: Registry) -> None:
    _chain(empty, record("R", [{"name": "a", "type": "int"}]), record("R", [{"name": "a", "type": "string"}]))
    assert empty.check_all() == []
    empty.set_compatibility("s", "BACKWARD")
    (problem,) = empty.check_all()
    assert problem.startswith("s v2 vs v1 (BACKWARD): field 'a' at /fields/0/type")


def test_check_all_reports_an_unreadable_index(shipped_copy: Registry) -> None:
    (shipped_copy.path / INDEX_FILE).write_text("{not json")
    (problem,) = shipped_copy.check_all()
    assert "_registry.json: not valid JSON" in problem and "restore it from git" in problem


def test_diff_lists_added_removed_renamed_and_changed_fields(shipped_copy: Registry) -> None:
    assert shipped_copy.diff("fridge", 1, 2) == ["+ /fields/3: field 'temperature' [\"null\", \"double\"] default null"]
    v3 = json.loads(shipped_copy.get("fridge", 2).schema_json)
    v3["fields"] = [
        {"name": "device", "type": "string", "aliases": ["name"]},
        {"name": "action", "type": ["string", "null"], "default": "idle"},
        {"name": "temperature", "type": ["null", "double"], "default": None},
    ]
    shipped_copy.set_compatibility("fridge", "NONE")
    shipped_copy.register("fridge", json.dumps(v3))
    lines = shipped_copy.diff("fridge", 2, 3)
    assert "~ /fields/0: field 'name' renamed to 'device' (alias)" in lines
    assert "~ /fields/1: field 'action' default (none) -> \"idle\"" in lines
    assert "~ /fields/2: field 'temperature' moved from /fields/3" in lines
    assert "- /fields/2: field 'sendtime' [\"int\", \"null\"] removed" in lines


# --------------------------------------------------------------------------- CLI


def run(registry: Registry, *args: str):
    return CliRunner().invoke(schema_app, ["--schemas-dir", str(registry.path), *args])


def test_cli_list_show_and_diff(shipped_copy: Registry) -> None:
    listed = run(shipped_copy, "list")
    assert listed.exit_code == 0
    assert listed.stdout.strip() == "fridge\tBACKWARD\tv1 (id 1), v2 (id 2)"
    shown = run(shipped_copy, "show", "fridge", "1")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["name"] == "User"
    assert "schema id 1" in shown.stderr
    assert json.loads(run(shipped_copy, "show", "fridge").stdout)["fields"][3]["name"] == "temperature"
    diffed = run(shipped_copy, "diff", "fridge", "1", "2")
    assert diffed.exit_code == 0 and "field 'temperature'" in diffed.stdout


def test_cli_check_exit_codes(shipped_copy: Registry, tmp_path: Path) -> None:
    renamed = run(shipped_copy, "check", "fridge", str(FIXTURES / "fridge_v2_renamed_fields.avsc"))
    assert renamed.exit_code == 1
    assert "INCOMPATIBLE as v3 under BACKWARD" in renamed.stdout
    assert "field 'type' at /fields/1 has no default" in renamed.stdout
    good = tmp_path / "good.avsc"
    v2 = json.loads(shipped_copy.get("fridge", 2).schema_json)
    v2["fields"].append({"name": "door_open", "type": ["null", "boolean"], "default": None})
    good.write_text(json.dumps(v2))
    ok = run(shipped_copy, "check", "fridge", str(good))
    assert ok.exit_code == 0 and "compatible as v3 under BACKWARD, checked against v2" in ok.stdout
    comma = run(shipped_copy, "check", "fridge", str(FIXTURES / "fridge_v2_missing_comma.avsc"))
    assert comma.exit_code != 0 and isinstance(comma.exception, SchemaError)
    assert "line 9 column 5" in str(comma.exception)


def test_cli_register_prints_id_and_version_and_is_idempotent(shipped_copy: Registry, tmp_path: Path) -> None:
    good = tmp_path / "v3.avsc"
    v2 = json.loads(shipped_copy.get("fridge", 2).schema_json)
    v2["fields"].append({"name": "door_open", "type": ["null", "boolean"], "default": None})
    good.write_text(json.dumps(v2))
    first = run(shipped_copy, "register", "fridge", str(good))
    assert first.exit_code == 0 and first.stdout.strip() == "registered fridge v3 with schema id 3"
    again = run(shipped_copy, "register", "fridge", str(good))
    assert again.exit_code == 0 and "already registered; nothing changed" in again.stdout
    before = folder_digest(shipped_copy.path)
    refused = run(shipped_copy, "register", "fridge", str(FIXTURES / "fridge_v2_renamed_fields.avsc"))
    assert refused.exit_code == 1 and "nothing was written" in refused.stdout
    assert folder_digest(shipped_copy.path) == before


def test_cli_check_all(shipped_copy: Registry) -> None:
    ok = run(shipped_copy, "check", "--all")
    assert ok.exit_code == 0 and "ok (1 subject(s), 2 version(s))" in ok.stdout
    (shipped_copy.path / "fridge" / "v2.avsc").write_text("{}")
    broken = run(shipped_copy, "check", "--all")
    assert broken.exit_code == 1 and "v2.avsc changed after registration" in broken.stdout
    mixed = run(shipped_copy, "check", "--all", "fridge")
    assert isinstance(mixed.exception, SchemaError)


def test_cli_compatibility_show_and_set(shipped_copy: Registry) -> None:
    assert run(shipped_copy, "compatibility", "fridge").stdout.strip() == "fridge: BACKWARD"
    assert run(shipped_copy, "compatibility", "fridge", "full_transitive").exit_code == 0
    assert shipped_copy.compatibility("fridge") is Compatibility.FULL_TRANSITIVE
    bad = run(shipped_copy, "compatibility", "fridge", "SIDEWAYS")
    assert isinstance(bad.exception, SchemaError) and "use one of NONE, BACKWARD" in str(bad.exception)


def test_cli_uses_the_settings_folder_without_the_option(shipped_copy: Registry) -> None:
    result = CliRunner(env={"KAFKALAKE_SCHEMAS_DIR": str(shipped_copy.path)}).invoke(schema_app, ["list"])
    assert result.exit_code == 0 and result.stdout.startswith("fridge\t")
