"""The schema registry: a folder in git that is the single source of truth for Avro schemas.

Layout (``schemas/`` by default, :attr:`Settings.schemas_dir`)::

    schemas/_registry.json          index: every (subject, version) and its global schema id
    schemas/<subject>/subject.yaml  per-subject metadata: ``compatibility: BACKWARD``
    schemas/<subject>/v<N>.avsc     the schema text of version N (pretty JSON, as registered)

Readers trust only the index: a ``vN.avsc`` the index does not list (a crashed or
hand-made registration) is ignored, and ``check_all`` reports it. Schema ids are what the
Confluent wire format carries in bytes 1-4, so an id is never reused or changed: ids are
assigned ``max(id) + 1`` and nothing is ever removed from the index.

Registering runs the same gates as Confluent's registry, in order: JSON syntax, Avro
validity (``avro`` and ``fastavro``), defaults that match their types, then the subject's
compatibility mode checked with ``avro.compatibility.ReaderWriterCompatibilityChecker``.
A refused schema changes nothing on disk.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kafkalake._files import FileLock, atomic_write, exclusive_lock
from kafkalake.schema.compatibility import _identity_of, _pair_problems
from kafkalake.schema.diff import _diff_nodes
from kafkalake.schema.model import (
    DEFAULT_COMPATIBILITY,
    SUBJECT_PATTERN,
    Compatibility,
    CompatibilityReport,
    Incompatibility,
    IncompatibleSchemaError,
    SchemaError,
    SchemaNotFoundError,
    SchemaVersion,
    ValidatedSchema,
)
from kafkalake.schema.validation import _one_line, validate_schema_text

INDEX_FILE = "_registry.json"
SUBJECT_FILE = "subject.yaml"
INDEX_FORMAT = 1

_SUBJECT_RE = re.compile(SUBJECT_PATTERN)
_VERSION_FILE_RE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


@dataclass(frozen=True)
class _IndexEntry:
    schema_id: int
    subject: str
    version: int
    fingerprint: str
    file_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.schema_id,
            "subject": self.subject,
            "version": self.version,
            "fingerprint": self.fingerprint,
            "file_sha256": self.file_sha256,
        }


@dataclass(frozen=True)
class _Index:
    entries: tuple[_IndexEntry, ...] = ()
    by_id: dict[int, _IndexEntry] = field(default_factory=dict)
    by_subject: dict[str, list[_IndexEntry]] = field(default_factory=dict)

    @classmethod
    def build(cls, entries: list[_IndexEntry]) -> _Index:
        by_id: dict[int, _IndexEntry] = {}
        by_subject: dict[str, list[_IndexEntry]] = {}
        for entry in entries:
            by_id.setdefault(entry.schema_id, entry)
            by_subject.setdefault(entry.subject, []).append(entry)
        for versions in by_subject.values():
            versions.sort(key=lambda e: e.version)
        return cls(entries=tuple(entries), by_id=by_id, by_subject=by_subject)

    @property
    def next_id(self) -> int:
        return max((e.schema_id for e in self.entries), default=0) + 1


class Registry:
    """A schema registry folder: read versions by subject or id, check and register new ones.

    Cheap to construct; the index is re-read when the file changes on disk, so a
    long-running decoder sees versions registered after it started.
    """

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._index_cache: tuple[tuple[int, int, int], _Index] | None = None
        self._versions: dict[tuple[int, str], SchemaVersion] = {}

    @property
    def path(self) -> Path:
        return self._path

    @property
    def index_path(self) -> Path:
        return self._path / INDEX_FILE

    def __repr__(self) -> str:
        return f"Registry({str(self._path)!r})"

    # ---- reading

    def subjects(self) -> list[str]:
        """Subjects with at least one registered version, sorted."""
        return sorted(self._index().by_subject)

    def versions(self, subject: str) -> list[int]:
        """Registered version numbers of ``subject``, ascending."""
        return [e.version for e in self._entries(subject)]

    def latest(self, subject: str) -> SchemaVersion:
        """The newest version: the reader schema for the subject's table."""
        return self._load(self._entries(subject)[-1])

    def get(self, subject: str, version: int) -> SchemaVersion:
        """One version by number."""
        for entry in self._entries(subject):
            if entry.version == version:
                return self._load(entry)
        raise SchemaNotFoundError(
            f"{subject} has no version {version}; it has {', '.join(f'v{v}' for v in self.versions(subject))}"
        )

    def by_id(self, schema_id: int) -> SchemaVersion:
        """The version a wire-format schema id stands for."""
        entry = self._index().by_id.get(schema_id)
        if entry is None:
            raise SchemaNotFoundError(
                f"schema id {schema_id} is not registered in {self.index_path}; "
                "was it registered elsewhere? pull the schemas folder and retry"
            )
        return self._load(entry)

    def all_versions(self) -> list[SchemaVersion]:
        """Every registered version, ordered by schema id."""
        return [self._load(e) for e in sorted(self._index().entries, key=lambda e: e.schema_id)]

    def compatibility(self, subject: str) -> Compatibility:
        """The subject's mode from ``subject.yaml`` (BACKWARD when unset, like Confluent)."""
        _check_subject_name(subject)
        meta_path = self._subject_dir(subject) / SUBJECT_FILE
        if not meta_path.exists():
            return DEFAULT_COMPATIBILITY
        try:
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SchemaError(f"{meta_path}: not valid YAML: {_one_line(exc)}") from None
        if not isinstance(meta, dict):
            raise SchemaError(f"{meta_path}: expected a mapping like 'compatibility: BACKWARD'")
        return Compatibility.parse(meta.get("compatibility", DEFAULT_COMPATIBILITY.value), where=str(meta_path))

    # ---- checking and writing

    def check(self, subject: str, schema_text: str, *, source: str | None = None,
              mode: Compatibility | None = None) -> CompatibilityReport:
        """May ``schema_text`` become the next version of ``subject``? Writes nothing.

        Raises SchemaError when the text is not a valid schema; returns a report (maybe
        incompatible) otherwise.
        """
        _check_subject_name(subject)
        candidate = validate_schema_text(schema_text, source=source or f"new {subject} schema")
        return self._report(subject, candidate, self._index(), mode=mode)

    def register(self, subject: str, schema_text: str, *, source: str | None = None,
                 mode: Compatibility | None = None) -> SchemaVersion:
        """Add ``schema_text`` as the next version of ``subject`` and give it a new schema id.

        Idempotent: a schema equal to a registered version (same canonical form, defaults
        and aliases) returns that version. Refused schemas raise and leave the folder
        byte-identical. The .avsc is written before the index, each atomically, so a crash
        leaves at most an unlisted file that readers ignore.
        """
        _check_subject_name(subject)
        candidate = validate_schema_text(schema_text, source=source or f"new {subject} schema")
        with self._lock():
            index = self._index()
            report = self._report(subject, candidate, index, mode=mode)
            if report.existing is not None:
                return report.existing
            if not report.compatible:
                raise IncompatibleSchemaError(report)
            entry = _IndexEntry(
                schema_id=index.next_id,
                subject=subject,
                version=report.version,
                fingerprint=candidate.fingerprint,
                file_sha256=_sha256(candidate.stored_text.encode("utf-8")),
            )
            subject_dir = self._subject_dir(subject)
            subject_dir.mkdir(parents=True, exist_ok=True)
            meta_path = subject_dir / SUBJECT_FILE
            if not meta_path.exists():
                atomic_write(meta_path, _subject_yaml(DEFAULT_COMPATIBILITY))
            atomic_write(subject_dir / f"v{entry.version}.avsc", candidate.stored_text.encode("utf-8"))
            self._write_index([*index.entries, entry])
            return self._load(entry)

    def set_compatibility(self, subject: str, mode: Compatibility | str) -> Compatibility:
        """Change the subject's mode; takes effect for the next registration."""
        _check_subject_name(subject)
        parsed = mode if isinstance(mode, Compatibility) else Compatibility.parse(mode, where=subject)
        with self._lock():
            subject_dir = self._subject_dir(subject)
            subject_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(subject_dir / SUBJECT_FILE, _subject_yaml(parsed))
        return parsed

    def check_all(self) -> list[str]:
        """Every problem in the folder, one actionable line each (empty list: all good).

        Checks that the index parses, ids and versions are unique and contiguous, every
        listed file exists, is unchanged since registration and is a valid schema, and
        every version is compatible with its predecessors under the subject's mode.
        """
        problems: list[str] = []
        try:
            index = self._index()
        except SchemaError as exc:
            return [str(exc)]

        seen_ids: dict[int, _IndexEntry] = {}
        for entry in index.entries:
            if entry.schema_id in seen_ids:
                other = seen_ids[entry.schema_id]
                problems.append(
                    f"{self.index_path}: schema id {entry.schema_id} is used by both {other.subject} "
                    f"v{other.version} and {entry.subject} v{entry.version}; ids must be unique "
                    "(a merge conflict?): keep the id that was published first, re-register the other"
                )
            seen_ids.setdefault(entry.schema_id, entry)

        for subject, entries in sorted(index.by_subject.items()):
            numbers = [e.version for e in entries]
            if numbers != list(range(1, len(numbers) + 1)):
                problems.append(
                    f"{self.index_path}: {subject} has versions {numbers}; expected 1..{len(numbers)} "
                    "with no gaps or duplicates"
                )
            try:
                mode = self.compatibility(subject)
            except SchemaError as exc:
                problems.append(str(exc))
                mode = DEFAULT_COMPATIBILITY
            loaded: list[SchemaVersion] = []
            for entry in entries:
                try:
                    loaded.append(self._load(entry, verify=True))
                except SchemaError as exc:
                    problems.append(str(exc))
            for k, current in enumerate(loaded):
                earlier = loaded[:k]
                if not earlier or mode is Compatibility.NONE:
                    continue
                against = earlier if mode.transitive else earlier[-1:]
                for previous in against:
                    for item in _pair_problems(
                        mode,
                        new=current.avro_schema,
                        old=previous.avro_schema,
                        new_label=f"v{current.version}",
                        old_label=f"v{previous.version}",
                    ):
                        problems.append(f"{subject} v{current.version} vs v{previous.version} ({mode.value}): {item}")
            problems.extend(self._orphans(subject, entries))

        if self._path.is_dir():
            for child in sorted(self._path.iterdir()):
                if child.is_dir() and child.name not in index.by_subject and any(child.glob("v*.avsc")):
                    problems.extend(self._orphans(child.name, []))
        return problems

    def diff(self, subject: str, v1: int, v2: int) -> list[str]:
        """What changed from version ``v1`` to ``v2``, one line per change, for reviews."""
        old = json.loads(self.get(subject, v1).schema_json)
        new = json.loads(self.get(subject, v2).schema_json)
        lines: list[str] = []
        _diff_nodes(old, new, "", lines)
        return lines

    # ---- internals

    def _report(self, subject: str, candidate: ValidatedSchema, index: _Index,
                mode: Compatibility | None = None) -> CompatibilityReport:
        """``mode`` overrides the subject's mode for this one check (the migration DAG's param)."""
        entries = index.by_subject.get(subject, [])
        mode = mode or self.compatibility(subject)
        for entry in entries:
            existing = self._load(entry)
            if _identity_of(existing) == candidate.identity:
                return CompatibilityReport(
                    subject=subject,
                    mode=mode,
                    version=existing.version,
                    checked_against=(),
                    existing=existing,
                )
        next_version = (entries[-1].version + 1) if entries else 1
        if not entries or mode is Compatibility.NONE:
            return CompatibilityReport(subject=subject, mode=mode, version=next_version, checked_against=())
        against = entries if mode.transitive else entries[-1:]
        problems: list[Incompatibility] = []
        for entry in against:
            previous = self._load(entry)
            problems.extend(
                _pair_problems(
                    mode,
                    new=candidate.schema,
                    old=previous.avro_schema,
                    new_label=f"v{next_version} (new)",
                    old_label=f"v{previous.version}",
                )
            )
        return CompatibilityReport(
            subject=subject,
            mode=mode,
            version=next_version,
            checked_against=tuple(e.version for e in against),
            incompatibilities=tuple(problems),
        )

    def _index(self) -> _Index:
        path = self.index_path
        try:
            st = path.stat()
        except FileNotFoundError:
            self._index_cache = None
            return _Index()
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._index_cache is not None and self._index_cache[0] == key:
            return self._index_cache[1]
        index = _Index.build(_parse_index(path.read_bytes(), where=str(path)))
        self._index_cache = (key, index)
        return index

    def _entries(self, subject: str) -> list[_IndexEntry]:
        entries = self._index().by_subject.get(subject)
        if not entries:
            known = ", ".join(self.subjects()) or "none yet"
            raise SchemaNotFoundError(f"no subject {subject!r} in {self._path} (subjects: {known})")
        return entries

    def _subject_dir(self, subject: str) -> Path:
        return self._path / subject

    def _load(self, entry: _IndexEntry, *, verify: bool = False) -> SchemaVersion:
        key = (entry.schema_id, entry.file_sha256)
        cached = self._versions.get(key)
        if cached is not None and not verify:
            return cached
        path = self._subject_dir(entry.subject) / f"v{entry.version}.avsc"
        where = f"{entry.subject} v{entry.version} (schema id {entry.schema_id})"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise SchemaError(f"{where}: {path} is missing; restore it from git (the index lists it)") from None
        if _sha256(raw) != entry.file_sha256:
            raise SchemaError(
                f"{where}: {path} changed after registration; registered versions are immutable, "
                "restore it from git and register the change as a new version"
            )
        if verify or cached is None:
            candidate = validate_schema_text(raw.decode("utf-8", errors="replace"), source=str(path))
            if candidate.fingerprint != entry.fingerprint:
                raise SchemaError(f"{where}: fingerprint differs from {INDEX_FILE}; restore {path} from git")
        version = SchemaVersion(
            subject=entry.subject,
            version=entry.version,
            schema_id=entry.schema_id,
            schema_json=raw.decode("utf-8"),
            fingerprint=entry.fingerprint,
        )
        self._versions[key] = version
        return version

    def _write_index(self, entries: list[_IndexEntry]) -> None:
        document = {
            "format": INDEX_FORMAT,
            "note": "schema ids are global and permanent: never edit, reuse or remove an entry",
            "schemas": [e.to_json() for e in sorted(entries, key=lambda e: e.schema_id)],
        }
        atomic_write(self.index_path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))

    def _lock(self) -> FileLock:
        """Serialize writers with a lock on the folder itself (no lock file left on disk)."""
        self._path.mkdir(parents=True, exist_ok=True)
        return exclusive_lock(self._path)

    def _orphans(self, subject: str, entries: list[_IndexEntry]) -> list[str]:
        listed = {e.version for e in entries}
        subject_dir = self._subject_dir(subject)
        if not subject_dir.is_dir():
            return []
        problems = []
        for child in sorted(subject_dir.iterdir()):
            match = _VERSION_FILE_RE.match(child.name)
            if match and int(match.group(1)) not in listed:
                problems.append(
                    f"{child} is not in {INDEX_FILE}, so nothing reads it; register it with "
                    f"`kafkalake schema register {subject} FILE` or delete it"
                )
        return problems


def _check_subject_name(subject: str) -> None:
    if not _SUBJECT_RE.match(subject):
        raise SchemaError(
            f"subject name {subject!r} is not allowed; use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )


def _parse_index(raw: bytes, *, where: str) -> list[_IndexEntry]:
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{where}: not valid JSON ({_one_line(exc)}); restore it from git") from None
    rows = document.get("schemas") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise SchemaError(f"{where}: expected an object with a 'schemas' list; restore it from git")
    entries = []
    for n, row in enumerate(rows):
        try:
            entry = _IndexEntry(
                schema_id=row["id"],
                subject=row["subject"],
                version=row["version"],
                fingerprint=row["fingerprint"],
                file_sha256=row["file_sha256"],
            )
        except (KeyError, TypeError):
            raise SchemaError(
                f"{where}: entry {n} lacks id/subject/version/fingerprint/file_sha256; restore it from git"
            ) from None
        if (
            not isinstance(entry.schema_id, int)
            or isinstance(entry.schema_id, bool)
            or not 1 <= entry.schema_id <= 2**31 - 1
            or not isinstance(entry.version, int)
            or entry.version < 1
            or not isinstance(entry.subject, str)
            or not _SUBJECT_RE.match(entry.subject)
        ):
            raise SchemaError(
                f"{where}: entry {n} has an invalid id, version or subject; restore it from git"
            )
        entries.append(entry)
    return entries


def _subject_yaml(mode: Compatibility) -> bytes:
    return (
        "# Compatibility mode checked when a new version is registered (Confluent semantics).\n"
        f"compatibility: {mode.value}\n"
    ).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
