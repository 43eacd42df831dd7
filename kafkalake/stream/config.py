"""Stream declarations (streams.yaml), the tables each stream feeds and where it keeps its state.

One stream = one Spark Structured Streaming query with one checkpoint, feeding one Iceberg
table per file format (``sink_format``) and one quarantine table; one status file, one
supervisor DAG. Table names and state paths are derived here, never configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafkalake.catalog.iceberg import Housekeeping
from kafkalake.config import Settings
from kafkalake.errors import KafkalakeError
from kafkalake.kafka.topics import TopicError, validate_topic_name

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
FORMATS = ("parquet", "avro")
#: the unit of every ``*_mb`` setting
MIB = 1024 * 1024
_TRIGGER_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")
_UNIT_SECONDS = {
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
}


class StreamConfigError(KafkalakeError):
    """streams.yaml says something the platform cannot run; the message names the entry."""


@dataclass(frozen=True)
class Health:
    max_idle_triggers: int = 12
    max_lag: int = 5_000_000
    #: a supervisor's new try waits this long for the previous try's driver to let go of the
    #: checkpoint (it is still being killed) before it starts one; then it is refused as busy
    handover_seconds: int = 60


@dataclass(frozen=True)
class Compaction:
    """How the compaction DAG treats this stream's tables (streams.yaml ``compaction:``)."""

    #: output files per hour = ceil(the hour's bytes / target)
    target_file_mb: int = 128
    #: Parquet row group size of the output: DuckDB scans a file's row groups in parallel and
    #: every reader skips row groups by their min/max; one 128 MB group per file allows neither
    row_group_mb: int = 16
    #: sort within each output file (compression, min/max pruning); empty = keep order
    sort_by: tuple[str, ...] = ()
    #: rows with equal values of these columns side by side in each output file, in the order
    #: of their 64-bit hash (one radix sort: on 2.1 M fridge rows 3x cheaper than sorting by a
    #: name whose first 8 bytes are mostly alike). A GROUP BY on them then reads long runs of
    #: one value (RLE-encoded in Parquet) and hashes a group's rows in a row. No range order:
    #: min/max pruning on them gains nothing. With sort_by: sorted within each cluster.
    cluster_by: tuple[str, ...] = ()
    #: an hour is closed when the stream's committed progress passed its end + grace
    grace_minutes: float = 10.0
    #: files under a table that no snapshot references (a writer killed before its commit)
    #: are removed by the compaction DAG once they are this old: longer than any write takes
    orphan_grace_minutes: float = 60.0
    #: how often a compaction run looks for those files (it lists every file under the table:
    #: seconds on a large one, as with Iceberg's remove_orphan_files); a run that recovered an
    #: interrupted one looks at once; 0 = every run
    orphan_sweep_hours: float = 24.0


@dataclass(frozen=True)
class StreamConfig:
    name: str
    topics: tuple[str, ...]
    subject: str
    sink_formats: tuple[str, ...] = ("parquet",)
    trigger: str = "5 seconds"
    max_offsets_per_trigger: int | None = None
    fail_on_data_loss: bool = True
    starting_offsets: str = "earliest"
    health: Health = field(default_factory=Health)
    compaction: Compaction = field(default_factory=Compaction)
    housekeeping: Housekeeping = field(default_factory=Housekeeping)

    @property
    def trigger_seconds(self) -> float:
        return parse_trigger(self.trigger)

    @property
    def tables(self) -> dict[str, str]:
        """``{file format: Iceberg table name}``: the first format's table is named like the
        stream, another one gets its format as a suffix (``fridge``, ``fridge_avro``)."""
        return {fmt: self.name if i == 0 else f"{self.name}_{fmt}" for i, fmt in enumerate(self.sink_formats)}

    @property
    def quarantine_table(self) -> str:
        return f"{self.name}_quarantine"

    @property
    def all_tables(self) -> tuple[str, ...]:
        return (*self.tables.values(), self.quarantine_table)


@dataclass(frozen=True)
class StreamPaths:
    """Where one stream's state lives (derived from settings, never configured)."""

    checkpoint: Path  # the query's checkpoint (offsets, commits)
    state: Path  # status.json, stop request, gaps.jsonl

    @property
    def driver_lock(self) -> Path:
        """Held by the running driver (docs/architecture.md: Exactly once into the lake)."""
        return self.checkpoint.parent / ".driver.lock"

    @property
    def status_file(self) -> Path:
        return self.state / "status.json"

    @property
    def stop_file(self) -> Path:
        return self.state / "stop"

    @property
    def kill_file(self) -> Path:
        """A supervisor's request that the driver end itself now (its watchdog obeys it)."""
        return self.state / "kill"

    @property
    def gaps_file(self) -> Path:
        return self.state / "gaps.jsonl"


def stream_paths(settings: Settings, stream: StreamConfig) -> StreamPaths:
    return StreamPaths(
        checkpoint=settings.state_dir / "checkpoints" / stream.name / "query",
        state=settings.state_dir / "streams" / stream.name,
    )


def parse_trigger(text: str) -> float:
    """'5 seconds' / '500 ms' / '1 minute' -> seconds (Spark's processingTime syntax)."""
    match = _TRIGGER_RE.match(str(text).lower())
    if not match or match.group(2) not in _UNIT_SECONDS:
        raise StreamConfigError(f"trigger {text!r} is not like '5 seconds', '500 milliseconds' or '1 minute'")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise StreamConfigError(f"trigger {text!r} must be positive")
    return seconds


def _parse_stream(raw: Any, where: str) -> StreamConfig:
    if not isinstance(raw, dict):
        raise StreamConfigError(f"{where}: each stream is a mapping with name, topics, subject")
    known = {"name", "topics", "subject", "sink_format", "trigger", "max_offsets_per_trigger",
             "fail_on_data_loss", "starting_offsets", "health", "compaction", "housekeeping"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise StreamConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise StreamConfigError(f"{where}: name {name!r} must match {NAME_RE.pattern} (it names folders and a DAG)")
    where = f"{where} ({name})"
    topics = raw.get("topics")
    if isinstance(topics, str):
        topics = [topics]
    if not topics or not isinstance(topics, list):
        raise StreamConfigError(f"{where}: topics must be a non-empty list")
    try:
        topics = tuple(validate_topic_name(str(t)) for t in topics)
    except TopicError as exc:
        raise StreamConfigError(f"{where}: {exc}") from None
    subject = raw.get("subject")
    if not isinstance(subject, str) or not subject:
        raise StreamConfigError(f"{where}: subject (a registry subject such as 'fridge') is required")
    fmt = str(raw.get("sink_format", "parquet")).lower()
    formats = FORMATS if fmt == "both" else (fmt,)
    if not set(formats) <= set(FORMATS):
        raise StreamConfigError(f"{where}: sink_format {fmt!r} must be parquet, avro or both")
    trigger = str(raw.get("trigger", "5 seconds"))
    parse_trigger(trigger)
    mopt = raw.get("max_offsets_per_trigger")
    if mopt is not None and (not isinstance(mopt, int) or mopt < 1):
        raise StreamConfigError(f"{where}: max_offsets_per_trigger must be a positive integer")
    fodl = raw.get("fail_on_data_loss", True)
    if not isinstance(fodl, bool):
        raise StreamConfigError(f"{where}: fail_on_data_loss must be true or false")
    starting = str(raw.get("starting_offsets", "earliest"))
    if starting not in ("earliest", "latest"):
        raise StreamConfigError(f"{where}: starting_offsets must be earliest or latest")
    health_raw = raw.get("health") or {}
    if not isinstance(health_raw, dict) or set(health_raw) - {"max_idle_triggers", "max_lag", "handover_seconds"}:
        raise StreamConfigError(f"{where}: health takes max_idle_triggers, max_lag and handover_seconds")
    for key, value in health_raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise StreamConfigError(f"{where}: health.{key} must be a whole number >= 0, not {value!r}")
    health = Health(**health_raw)
    return StreamConfig(
        name=name, topics=topics, subject=subject, sink_formats=formats, trigger=trigger,
        max_offsets_per_trigger=mopt, fail_on_data_loss=fodl, starting_offsets=starting, health=health,
        compaction=_parse_compaction(raw.get("compaction"), where),
        housekeeping=_parse_housekeeping(raw.get("housekeeping"), where),
    )


def _parse_housekeeping(raw: Any, where: str) -> Housekeeping:
    if raw is None:
        return Housekeeping()
    keys = ("every_commits", "keep_minutes", "retain_last", "max_manifests")
    if not isinstance(raw, dict) or set(raw) - set(keys):
        raise StreamConfigError(f"{where}: housekeeping takes {', '.join(keys)}")
    for key, value in raw.items():
        least = 0 if key == "keep_minutes" else 1
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
            raise StreamConfigError(f"{where}: housekeeping.{key} must be a positive number, not {value!r}")
    return Housekeeping(**{k: (float(v) if k == "keep_minutes" else int(v)) for k, v in raw.items()})


_COLUMN_LISTS = ("sort_by", "cluster_by")


def _parse_compaction(raw: Any, where: str) -> Compaction:
    if raw is None:
        return Compaction()
    numbers = ("target_file_mb", "row_group_mb", "grace_minutes", "orphan_grace_minutes", "orphan_sweep_hours")
    if not isinstance(raw, dict) or set(raw) - {*numbers, *_COLUMN_LISTS}:
        raise StreamConfigError(f"{where}: compaction takes {', '.join([*numbers, *_COLUMN_LISTS])}")
    values: dict[str, Any] = {}
    for key in numbers:
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise StreamConfigError(f"{where}: compaction.{key} must be a non-negative number, not {value!r}")
            values[key] = value
    for key in ("target_file_mb", "row_group_mb"):
        if values.get(key, 1) < 1:
            raise StreamConfigError(f"{where}: compaction.{key} must be at least 1")
    for key in _COLUMN_LISTS:
        columns = raw.get(key, [])
        if isinstance(columns, str):
            columns = [columns]
        if not isinstance(columns, list) or not all(isinstance(c, str) and c for c in columns):
            raise StreamConfigError(f"{where}: compaction.{key} must be a list of column names")
        values[key] = tuple(columns)
    return Compaction(**values)


def load_streams(path: Path) -> dict[str, StreamConfig]:
    """All streams of a streams.yaml, validated; names are unique."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise StreamConfigError(f"{path}: no such file (declare streams there; see README)") from None
    except yaml.YAMLError as exc:
        raise StreamConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    entries = (doc or {}).get("streams") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise StreamConfigError(f"{path}: expected a top-level 'streams:' list")
    streams: dict[str, StreamConfig] = {}
    owners: dict[str, str] = {}
    for i, raw in enumerate(entries):
        stream = _parse_stream(raw, f"{path.name}: streams[{i}]")
        if stream.name in streams:
            raise StreamConfigError(f"{path.name}: stream name {stream.name!r} is declared twice")
        for table in stream.all_tables:
            if table in owners:
                raise StreamConfigError(
                    f"{path.name}: streams {owners[table]!r} and {stream.name!r} would both write table {table!r}; "
                    "rename one of them"
                )
            owners[table] = stream.name
        streams[stream.name] = stream
    return streams


def get_stream(settings: Settings, name: str) -> StreamConfig:
    streams = load_streams(settings.streams_file)
    if name not in streams:
        raise StreamConfigError(
            f"no stream {name!r} in {settings.streams_file} (declared: {', '.join(sorted(streams)) or 'none'})"
        )
    return streams[name]
