"""Read a landing sink without Spark: the files its ``_spark_metadata`` commit log lists.

Spark's file sink writes data files first and commits them in ``_spark_metadata/<batch>``
(JSON lines after a version line; every 10th batch a ``<batch>.compact`` file holds the whole
list). A file not in the log is a leftover of a crashed batch and must not be read. Spark does
this itself (``spark.read.parquet(sink)``); this module is the equivalent for pyarrow/DuckDB
users and for tools that must not start a JVM.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from kafkalake.lake.tables import _HOUR_DIR, Hour, TablePaths
from kafkalake.stream.decode import LANDING

if TYPE_CHECKING:
    import pyarrow as pa


def landing_hours(paths: TablePaths, zone: str = LANDING) -> dict[Hour, dict[Path, int]]:
    """Committed landing files per hour: ``{Hour: {file: size}}`` (from the commit log)."""
    return {
        hour: {Path(f): size for f, size in files.items()} for hour, files in _landing_hour_paths(paths, zone).items()
    }


def _landing_hour_paths(paths: TablePaths, zone: str = LANDING) -> dict[Hour, dict[str, int]]:
    """:func:`landing_hours` with paths as strings: listing a table whose landing hours are all
    compacted should not build a ``Path`` per landing file (5,000: ~30 ms)."""
    by_key: dict[tuple[str, str], dict[str, int]] = {}
    for path, size in committed_paths(paths.landing).items():
        match = _HOUR_DIR.search(path)
        if match and match.group(1) == zone:
            by_key.setdefault((match.group(2), match.group(3)), {})[path] = size
    return {Hour(dt, int(hour)): files for (dt, hour), files in by_key.items()}


def fingerprint(files: dict[Path, int]) -> str:
    """Identity of an hour's source: its committed file names and sizes (the log never reuses names)."""
    digest = hashlib.sha256()
    for path in sorted(files, key=str):
        digest.update(f"{path.name}:{files[path]}\n".encode())
    return digest.hexdigest()


def _log_entries(path: Path) -> Iterable[dict]:
    lines = path.read_text().splitlines()
    for line in lines[1:]:  # first line: the log format version ("v1")
        if line.strip():
            yield json.loads(line)


def committed_files(sink: Path) -> list[Path]:
    """Data files committed by the sink's ``_spark_metadata`` log, oldest batch first."""
    return [Path(p) for p in committed_paths(sink)]


def committed_entries(sink: Path) -> dict[Path, int]:
    """``{data file: size in bytes}`` as the sink's commit log lists them, oldest batch first."""
    return {Path(p): size for p, size in committed_paths(sink).items()}


#: ``{sink: (signature of the log files read, {path: size})}``: a log file is never rewritten
#: (Spark writes each batch's file once, by rename), so an unchanged set of names, sizes and
#: mtimes means an unchanged list — a reader that lists a table again (a dashboard's every
#: query) parses a 5,000-entry log once, not every time (~0.1 s each).
_PARSED: dict[str, tuple[tuple[tuple[str, int, int], ...], dict[str, int]]] = {}


def committed_paths(sink: Path) -> dict[str, int]:
    """``{data file path: size in bytes}`` of the commit log, paths as strings (no ``Path``
    per entry: a reader that wants a few hours of a big log should not pay for all of them)."""
    meta = sink / "_spark_metadata"
    if not meta.is_dir():
        return {}
    batches: dict[int, Path] = {}
    compacts: dict[int, Path] = {}
    for entry in meta.iterdir():
        name = entry.name
        if name.isdigit():
            batches[int(name)] = entry
        elif name.endswith(".compact") and name[:-8].isdigit():
            compacts[int(name[:-8])] = entry
    if not batches and not compacts:
        return {}
    last = max([*batches, *compacts])
    start = max((c for c in compacts if c <= last), default=None)
    logs = ([compacts[start]] if start is not None else []) + [
        batches[b] for b in sorted(batches) if start is None or b > start
    ]
    try:
        signature = tuple((log.name, st.st_size, st.st_mtime_ns) for log in logs for st in (log.stat(),))
    except FileNotFoundError:  # the sink just compacted its log: read what is there now
        return committed_paths(sink)
    cached = _PARSED.get(str(sink))
    if cached is not None and cached[0] == signature:
        return dict(cached[1])
    files: dict[str, int] = {}
    for log in logs:
        for entry in _log_entries(log):
            path = _local_path(entry["path"])
            if entry.get("action", "add") == "add":
                files[path] = int(entry.get("size", 0))
            else:
                files.pop(path, None)
    _PARSED[str(sink)] = (signature, files)
    return dict(files)


def _local_path(uri: str) -> str:
    """``file:///a/b%20c`` (or ``file:/a/b``) -> ``/a/b c``; urlparse only for other forms."""
    if uri.startswith("file:///"):
        path = uri[7:]
    elif uri.startswith("file:/") and not uri.startswith("file://"):
        path = uri[5:]
    else:
        path = urlparse(uri).path
    if "%" in path:
        path = path.replace("%3D", "=")  # Spark escapes the "=" of every partition folder
    return unquote(path) if "%" in path else path


def read_landing(sink: Path, *, zone: str = "landing", columns: list[str] | None = None) -> pa.Table:
    """The committed rows of one zone (``landing`` or ``quarantine``) as a pyarrow Table."""
    import pyarrow.dataset as ds

    files = [str(f) for f in committed_files(sink) if f"/zone={zone}/" in str(f)]
    fmt = "parquet"
    if files and files[0].endswith(".avro"):
        raise ValueError(f"{sink} is an Avro sink: read its files with fastavro (see README)")
    if not files:
        import pyarrow as pa

        return pa.table({})
    dataset = ds.dataset(files, format=fmt, partitioning="hive", partition_base_dir=str(sink))
    return dataset.to_table(columns=columns)
