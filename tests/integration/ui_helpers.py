"""Helpers of the operator-view tests: a lake and status files at scale, Airflow logins, a browser."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafkalake.config import Settings

#: the columns of a stream table the views read (a subset of a real stream table's columns)
SCALE_COLUMNS = ("name", "action", "schema_id", "schema_version", "partition", "offset", "timestamp")
REASONS = ("BAD_MAGIC", "TRUNCATED", "UNKNOWN_SCHEMA_ID")


@dataclass(frozen=True)
class ScaleLake:
    """What :func:`build_scale_lake` made."""

    settings: Settings
    streams: list[str]
    big_table: str
    data_files: int
    hours: int
    quarantined: int


def scale_settings(base: Settings, root: Path, *, streams: int) -> Settings:
    """Settings whose streams.yaml declares ``streams`` streams (``s00`` ... ``s19``)."""
    doc = {"streams": [{"name": f"s{i:02d}", "topics": [f"s{i:02d}-events"], "subject": "fridge"}
                       for i in range(streams)]}
    streams_file = root / "streams.yaml"
    root.mkdir(parents=True, exist_ok=True)
    streams_file.write_text(json.dumps(doc))
    return base.with_overrides(streams_file=streams_file, lake_root=root / "lake", state_dir=root / "state")


def _arrow_rows(hours: list[datetime], rows_per_hour: int, first_offset: int) -> Any:
    import pyarrow as pa

    n = len(hours) * rows_per_hour
    stamps = [h + timedelta(seconds=3600 * (i % rows_per_hour) / rows_per_hour)
              for h in hours for i in range(rows_per_hour)]
    return pa.table({
        "name": pa.array([f"fridge-{i % 50}" for i in range(n)], pa.string()),
        "action": pa.array(["open" if i % 2 else "close" for i in range(n)], pa.string()),
        "schema_id": pa.array([1 + (i % 2) for i in range(n)], pa.int32()),
        "schema_version": pa.array([1 + (i % 2) for i in range(n)], pa.int32()),
        "partition": pa.array([i % 2 for i in range(n)], pa.int32()),
        "offset": pa.array(range(first_offset, first_offset + n), pa.int64()),
        "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
    })


def _create(catalog: Any, identifier: str, schema: Any) -> Any:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import HourTransform

    ts = schema.find_field("timestamp").field_id
    spec = PartitionSpec(PartitionField(source_id=ts, field_id=1000, transform=HourTransform(), name="timestamp_hour"))
    return catalog.create_table(identifier, schema=schema, partition_spec=spec,
                                properties={"format-version": "2", "write.parquet.compression-codec": "zstd"})


def _add_files(table: Any, parts: list[Any]) -> None:
    """One commit adding one Parquet file per Arrow table of ``parts`` (each within one hour).

    ``add_files`` takes each file's hour from its column statistics: pyiceberg's partitioned
    ``append`` needs the optional ``pyiceberg-core`` package for the hour transform.
    """
    import uuid

    import pyarrow.parquet as pq

    folder = Path(table.location().removeprefix("file:").removeprefix("//")) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for part in parts:
        path = folder / f"{uuid.uuid4().hex}.parquet"
        pq.write_table(part, path)
        paths.append(f"file://{path}")
    table.add_files(paths, check_duplicate_files=False)


def build_scale_lake(settings: Settings, *, files: int = 10_000, appends: int = 20,
                     quarantined: int = 300) -> ScaleLake:
    """The lake of stream ``s00`` with ``files`` data files (``appends`` commits, each one file in
    every hour) and a small quarantine table; the other streams' tables are empty tables.

    Written by pyiceberg (format v2: pyiceberg cannot write v3), partitioned like a stream's
    table by ``hours(timestamp)``: the views read metadata, which is the same for both.
    """
    import pyarrow as pa
    from pyiceberg.io.pyarrow import pyarrow_to_schema  # noqa: F401 (the import checks pyiceberg's arrow support)

    from kafkalake.catalog.config import catalog_config, open_catalog
    from kafkalake.stream.config import load_streams

    config = catalog_config(settings)
    config.prepare_local()
    config.sqlite_file.touch()
    catalog = open_catalog(settings)
    catalog.create_namespace_if_not_exists(config.namespace)
    streams = list(load_streams(settings.streams_file))
    hours_count = files // appends
    newest = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    hours = [newest - timedelta(hours=hours_count - 1 - i) for i in range(hours_count)]
    sample = _arrow_rows(hours[:1], 1, 0)
    big = None
    for name in streams:
        table = _create(catalog, f"{config.namespace}.{name}", catalog._convert_schema_if_needed(sample.schema))
        big = big or table
    for i in range(appends):
        _add_files(big, [_arrow_rows([hour], 2, first_offset=(i * hours_count + h) * 2)
                         for h, hour in enumerate(hours)])
    # quarantine tables: the reasons spread over the last hours
    now = datetime.now(UTC)
    bad = pa.table({
        "reason": pa.array([REASONS[i % len(REASONS)] for i in range(quarantined)], pa.string()),
        "value": pa.array([b"\x07bad" for _ in range(quarantined)], pa.binary()),
        "partition": pa.array([i % 2 for i in range(quarantined)], pa.int32()),
        "offset": pa.array(range(quarantined), pa.int64()),
        "timestamp": pa.array([now - timedelta(minutes=3 * i) for i in range(quarantined)],
                              pa.timestamp("us", tz="UTC")),
    })
    for name in streams:
        qt = _create(catalog, f"{config.namespace}.{name}_quarantine", catalog._convert_schema_if_needed(bad.schema))
        if name == streams[0]:
            for chunk in range(3):  # three commits, as three batches with bad records would make
                part = bad.slice(chunk * quarantined // 3, quarantined // 3)
                stamps = part.column("timestamp").to_pylist()
                by_hour: dict[datetime, list[int]] = {}
                for row, stamp in enumerate(stamps):
                    by_hour.setdefault(stamp.replace(minute=0, second=0, microsecond=0), []).append(row)
                _add_files(qt, [part.take(rows) for rows in by_hour.values()])
    return ScaleLake(settings, streams, streams[0], hours_count * appends, hours_count,
                     3 * (quarantined // 3))


def write_stream_states(settings: Settings, *, batches: int = 700, now: float | None = None) -> dict[str, dict]:
    """A status file and an hour of batch history for every stream, as running drivers write them."""
    from kafkalake.stream.config import load_streams, stream_paths
    from kafkalake.stream.status import BatchHistory, StatusWriter, history_file, progress_summary

    now = time.time() if now is None else now
    docs = {}
    for k, stream in enumerate(load_streams(settings.streams_file).values()):
        status_file = stream_paths(settings, stream).status_file
        history = BatchHistory(history_file(status_file))
        summary: dict[str, Any] = {}
        for b in range(batches):
            progress = {
                "id": "q", "name": stream.name, "batchId": b, "numInputRows": 1000 + b % 7 + k,
                "processedRowsPerSecond": 2000.0 + 10 * (b % 13), "batchDuration": 480 + b % 5,
                "timestamp": datetime.fromtimestamp(now - 5 * (batches - b), UTC).isoformat(),
                "durationMs": {"addBatch": 400, "latestOffset": 20, "triggerExecution": 480 + b % 5},
                "sources": [{"startOffset": {stream.topics[0]: {"0": 1000 * b, "1": 1000 * b}},
                             "endOffset": {stream.topics[0]: {"0": 1000 * (b + 1), "1": 1000 * (b + 1)}},
                             "latestOffset": {stream.topics[0]: {"0": 1000 * (b + 1) + b % 11, "1": 1000 * (b + 1)}}}],
            }
            summary = progress_summary(progress)
            history.add(stream.name, summary, now=now - 5 * (batches - b), write=False)
        history.write()
        writer = StatusWriter(stream=stream.name, path=status_file, trigger_seconds=5.0)  # reads that history
        writer.doc["decode_plan"] = {"subject": "fridge", "reader": {"version": 2, "schema_id": 2},
                                     "writers": {"1": 1, "2": 2}, "mismatched": {}, "foreign_ids": []}
        writer.on_progress(stream.name, summary)
        # the last on_progress added one more line: the history holds ``batches`` + 1 entries
        docs[stream.name] = json.loads(status_file.read_text())
    return docs


def http(settings: Settings, method: str, path: str, *, token: str | None = None, body: Any = None,
         raw: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
    """One request to the api-server; redirects are not followed (a 307 is an answer too)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(f"{settings.airflow_url}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def passwords(settings: Settings) -> dict[str, str]:
    return json.loads((settings.airflow_home / "simple_auth_manager_passwords.json.generated").read_text())


def token(settings: Settings, user: str) -> str:
    login = {"username": user, "password": passwords(settings)[user]}
    status, body, _ = http(settings, "POST", "/auth/token", body=login)
    assert status == 201, body
    return json.loads(body)["access_token"]
