"""Compaction: closed landing hours -> few large lake files, verified, published atomically.

The seed notebook's answer to "files are too small" is ``repartition``; its attempt to clean
the sink folder broke Spark (``_spark_metadata/9.compact doesn't exist``). Here the landing
sink is only ever *read* (through Spark, so its commit log decides which files count), and the
result goes to the lake zone (:mod:`kafkalake.lake`). A run has five phases, each journaled in
``<lake>/_journal/<run>.json``:

1. **plan** — per closed hour: landing files/bytes -> outputs = ceil(bytes / target);
   hours whose source did not change since their last publish are skipped (idempotent);
2. **write** — per hour ``repartition(n)`` (+ optional sort within files) into a new version
   folder ``dt=…/hour=…/v=<run>``; the source's row count and checksum are observed in the
   same pass (``DataFrame.observe``), so verification costs no second read of the small files;
   hours run side by side (one thread per core, each submitting its own Spark jobs): an
   hour's job ends in as few tasks as it has output files, which alone would idle cores;
3. **verify** — the written files are read back: rows and the order-independent checksum must
   equal the source's, or the run deletes its output and fails with both figures;
4. **publish** — one atomic manifest replace makes all verified hours visible at once;
5. **cleanup** — versions replaced more than the reader grace ago are deleted; landing files of
   compacted hours past retention are deleted (the commit log keeps listing them; the read
   path never opens landing files of a published hour).

A crash (kill -9) anywhere leaves the manifest either old or new; the next run reads the
journals left behind and deletes what the manifest does not reference (roll back) or keeps
what it does (completed), then does its own work.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO, TypeVar

from kafkalake.config import Settings
from kafkalake.lake import (Hour, LakeError, TablePaths, fingerprint, landing_hours, landing_schema, read_lake_files,
                            read_landing_hours, read_manifest, table_columns, write_manifest)
from kafkalake.streams import StreamConfig

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

T = TypeVar("T")
PHASES = ("plan", "write", "verify", "publish", "cleanup")
FAULT_ENV = "KAFKALAKE_FAULT"
MIB = 1024 * 1024
#: upper bound of hours written/verified at once (each holds its source's plan and shuffle)
MAX_PARALLEL_HOURS = 8
#: cut-off for a table whose stream has not started: every landing hour counts as open
NOTHING_CLOSED = datetime(1970, 1, 1, tzinfo=timezone.utc)


class CompactionError(LakeError):
    """A compaction run failed; nothing of it was published."""

    exit_code = 7


def fault(point: str) -> None:
    """Crash injection for tests: ``KAFKALAKE_FAULT=compact:<phase>`` kills this process (-9) there."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


# --- plan -------------------------------------------------------------------------------------

@dataclass
class HourPlan:
    hour: str  # key: 2026-11-24T05
    files: int
    bytes: int
    outputs: int
    action: str  # compact | skip
    why: str
    fingerprint: str
    file_sizes: list[int] = field(default_factory=list)


@dataclass
class TablePlan:
    table: str
    fmt: str
    closed_before: str
    target_bytes: int
    hours: list[HourPlan]

    @property
    def to_compact(self) -> list[HourPlan]:
        return [h for h in self.hours if h.action == "compact"]

    def describe(self) -> list[str]:
        """The plan as an operator reads it (the dry run prints this)."""
        lines = [f"table {self.table} ({self.fmt}): hours closed before {self.closed_before}, "
                 f"target {self.target_bytes / MIB:g} MiB per file"]
        for h in self.hours:
            size = f"{h.files} files, {h.bytes / MIB:.1f} MiB"
            if h.action == "compact":
                lines.append(f"  {h.hour}  compact  {size} -> {h.outputs} file(s)")
            else:
                lines.append(f"  {h.hour}  skip     {size} ({h.why})")
        if not self.hours:
            lines.append("  no landing hours in range")
        return lines


class StreamNotStarted(LakeError):
    """The stream never committed a batch, so no hour of its table is known to be closed."""


def closed_before(settings: Settings, stream: StreamConfig, paths: TablePaths, *, limit: datetime | None = None) -> datetime:
    """The end of the last hour compaction may touch: the stream's watermark minus grace.

    ``limit`` can only lower it — except for a landing no stream has committed to (an import,
    a benchmark), where ``limit`` is the operator's statement that those hours are complete.
    """
    from kafkalake.watermark import stream_watermark

    mark = stream_watermark(settings, stream, paths.fmt)
    if mark is None:
        if limit is None:
            raise StreamNotStarted(
                f"stream {stream.name!r} has not committed a batch to its {paths.fmt} sink yet, so no hour is known "
                f"to be closed; start it (`kafkalake stream run {stream.name}`) or pass --closed-before for a static landing"
            )
        return limit
    mark -= timedelta(minutes=stream.compaction.grace_minutes)
    return min(mark, limit) if limit else mark


def plan_table(
    stream: StreamConfig,
    paths: TablePaths,
    *,
    closed_before: datetime,
    first: Hour | None = None,
    last: Hour | None = None,
    target_mb: int | None = None,
) -> TablePlan:
    """What a run would do, hour by hour (pure file-system reads: the commit log and manifest)."""
    target = int((target_mb or stream.compaction.target_file_mb) * MIB)
    manifest = read_manifest(paths)
    hours = []
    for hour, files in sorted(landing_hours(paths).items()):
        if (first and hour < first) or (last and hour > last):
            continue
        size = sum(files.values())
        entry = manifest["hours"].get(hour.key)
        fp = fingerprint(files)
        outputs = max(1, math.ceil(size / target))
        action, why = "compact", ""
        if hour.end > closed_before:
            action, why = "skip", "open: the stream may still write it"
        elif entry and fp in (entry.get("source_fingerprint"), entry.get("landing_fingerprint")):
            # landing_fingerprint: a backfill replaced the hour from Kafka while landing looked like this
            action, why = "skip", "compacted, unchanged since"
        elif entry is None and len(files) <= 1:
            action, why = "skip", "a single file: nothing to merge"
        hours.append(HourPlan(hour.key, len(files), size, outputs, action, why, fp, sorted(files.values())))
    return TablePlan(stream.name, paths.fmt, closed_before.isoformat(), target, hours)


# --- checksums --------------------------------------------------------------------------------

def checksum_exprs(columns: list[str]) -> list[Column]:
    """Row count + an order-independent checksum: the sums of the two 32-bit halves of
    ``xxhash64(row, null mask)`` (two sums cannot overflow below 2^31 rows; the null mask
    tells ``(null, 1)`` from ``(1, null)``, which xxhash64 alone does not — it skips nulls).

    The mask is an integer bit set (one long per 62 columns), not a string: building a string
    per row cost about a third of verification's CPU.
    """
    from pyspark.sql import functions as F

    ordered = sorted(columns)
    masks = []
    for start in range(0, len(ordered), 62):
        bits = [F.when(F.col(c).isNull(), F.lit(1 << i)).otherwise(F.lit(0)).cast("long")
                for i, c in enumerate(ordered[start:start + 62])]
        mask = bits[0]
        for bit in bits[1:]:
            mask = mask.bitwiseOR(bit)
        masks.append(mask)
    h = F.xxhash64(*[F.col(c) for c in ordered], *masks)
    return [
        F.count(F.lit(1)).alias("rows"),
        F.coalesce(F.sum(h.bitwiseAND(F.lit(0xFFFFFFFF))), F.lit(0)).alias("lo"),
        F.coalesce(F.sum(F.shiftrightunsigned(h, 32)), F.lit(0)).alias("hi"),
    ]


def checksum_of(row: Any) -> tuple[int, str]:
    return int(row["rows"]), f"{int(row['lo']):x}-{int(row['hi']):x}"


def table_checksum(df: DataFrame) -> tuple[int, str]:
    """(rows, checksum) of any DataFrame of table rows — what verification compares."""
    return checksum_of(df.agg(*checksum_exprs(df.columns)).first())


# --- the run ----------------------------------------------------------------------------------

def _new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("part-*") if p.is_file())


def lock_table(paths: TablePaths) -> TextIO:
    """One writer per table at a time (compaction, backfill, migration): an exclusive flock."""
    paths.journal_dir.mkdir(parents=True, exist_ok=True)
    handle = open(paths.journal_dir / ".lock", "a+")  # noqa: SIM115 (held for the run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise LakeError(f"another run is writing table {paths.name} ({paths.fmt}) right now; retry when it ends") from None
    return handle


def recover(paths: TablePaths) -> list[str]:
    """Finish or roll back runs that died: a version the manifest references stays (the run
    got past publish), any other version folder of the run is deleted."""
    if not paths.journal_dir.is_dir():
        return []
    notes = []
    manifest = read_manifest(paths)
    published_dirs = {entry["dir"] for entry in manifest["hours"].values()}
    for tmp in paths.lake.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    for journal in sorted(paths.journal_dir.glob("*.json")):
        doc = json.loads(journal.read_text())
        kept = rolled = 0
        for info in doc.get("hours", {}).values():
            if info["dir"] in published_dirs:
                kept += 1
            else:
                shutil.rmtree(paths.lake / info["dir"], ignore_errors=True)
                rolled += 1
        notes.append(f"run {doc.get('run_id')} died in phase {doc.get('phase')}: "
                     f"{kept} hour(s) were published (kept), {rolled} rolled back")
        journal.unlink()
    return notes


@dataclass
class HourResult:
    hour: str
    source_files: int
    source_bytes: int
    source_sizes: list[int]
    rows: int = 0
    checksum: str = ""
    output_files: int = 0
    output_bytes: int = 0
    output_sizes: list[int] = field(default_factory=list)
    dir: str = ""
    seconds: float = 0.0


class Compactor:
    """One compaction (or backfill) run over one table, journaled phase by phase."""

    def __init__(self, spark: SparkSession, stream: StreamConfig, paths: TablePaths, reader_json: str, *,
                 run_id: str | None = None, progress: Callable[[str], None] = print) -> None:
        self.spark = spark
        self.stream = stream
        self.paths = paths
        self.reader_json = reader_json
        self.run_id = run_id or _new_run_id()
        self.say = progress
        self.schema: StructType = landing_schema(spark, reader_json)
        self.columns = table_columns(self.schema)
        self.order = self._order()  # an unknown column fails here, before anything is written
        self.journal_path = paths.journal_dir / f"{self.run_id}.json"
        self.journal: dict[str, Any] = {"run_id": self.run_id, "phase": "plan", "hours": {}}
        self._journal_lock = threading.Lock()
        #: wall seconds per phase of the last run (hours of a phase overlap, so not their sum)
        self.phase_seconds: dict[str, float] = {}
        #: hours in flight at once: an hour's job ends in a few output tasks (one per target file),
        #: so one hour at a time leaves cores idle; Spark runs the threads' jobs side by side
        self.parallel_hours = max(1, min(MAX_PARALLEL_HOURS, spark.sparkContext.defaultParallelism))

    def _each(self, fn: Callable[[T], HourResult], items: list[T]) -> list[HourResult]:
        """``fn`` over ``items``, ``parallel_hours`` at a time, results in input order; the first
        failure cancels what has not started and is raised (the others are waited for)."""
        if self.parallel_hours == 1 or len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.parallel_hours, len(items)),
                                thread_name_prefix="kafkalake-compact") as pool:
            futures = [pool.submit(fn, item) for item in items]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                wait(futures)
                raise

    def _phase(self, phase: str) -> None:
        with self._journal_lock:
            self.journal["phase"] = phase
            _write_json_atomic(self.journal_path, self.journal)

    def _order(self) -> list[Column | str]:
        """The within-file order of compaction.cluster_by / sort_by (empty: keep the input's)."""
        from pyspark.sql import functions as F

        policy = self.stream.compaction
        for key, wanted in (("sort_by", policy.sort_by), ("cluster_by", policy.cluster_by)):
            unknown = [c for c in wanted if c not in self.columns]
            if unknown:
                raise CompactionError(f"compaction.{key} of {self.stream.name}: no column(s) {', '.join(unknown)} "
                                      f"(columns: {', '.join(self.columns)})")
        clusters = [F.xxhash64(*policy.cluster_by)] if policy.cluster_by else []
        return [*clusters, *policy.sort_by]

    def _writer(self, df: DataFrame, out: Path) -> None:
        writer = df.write.mode("errorifexists").format(self.paths.fmt)
        if self.paths.fmt == "parquet":
            writer = writer.option("parquet.block.size", str(int(self.stream.compaction.row_group_mb * MIB)))
        if self.paths.fmt == "avro":
            doc = json.loads(self.reader_json)
            writer = (writer.option("recordName", doc["name"]).option("recordNamespace", doc.get("namespace", ""))
                      .option("compression", "deflate"))
        writer.save(str(out))

    def write_hour(self, source: DataFrame, hour: Hour, outputs: int, result: HourResult, *,
                   cores_busy: bool = False) -> tuple[int, str]:
        """Write one hour as a new version folder; returns the source's (rows, checksum),
        observed during the write itself. ``cores_busy``: other hours of the run keep the
        other cores busy meanwhile."""
        from pyspark.sql import Observation

        rel = f"{hour.folder}/v={self.run_id}"
        observation = Observation(f"source_{hour.key.replace('-', '_')}")
        df = source.select(*self.columns).observe(observation, *checksum_exprs(self.columns))
        # One output file while other hours keep the other cores busy: one task reads the
        # hour's files and writes the file, no shuffle. Otherwise a shuffle spreads the read
        # over the cores (an hourly run has one hour) and balances several files' sizes.
        df = df.coalesce(1) if outputs == 1 and cores_busy else df.repartition(outputs)
        if self.order:
            df = df.sortWithinPartitions(*self.order)
        with self._journal_lock:  # before any byte is written: recoverable
            self.journal["hours"][hour.key] = {"dir": rel}
            _write_json_atomic(self.journal_path, self.journal)
        self._writer(df, self.paths.lake / rel)
        result.dir = rel
        files = _data_files(self.paths.lake / rel)
        result.output_sizes = [f.stat().st_size for f in files]
        result.output_files, result.output_bytes = len(files), sum(result.output_sizes)
        try:
            return checksum_of(observation.get)
        except Exception:  # Spark 4.1: observe before repartition + sort reports nothing for 0 rows
            return table_checksum(source.select(*self.columns))

    def verify_hour(self, result: HourResult, expected: tuple[int, str]) -> None:
        files = _data_files(self.paths.lake / result.dir)
        got = table_checksum(read_lake_files(self.spark, self.paths.fmt, files, self.schema))
        if got != expected:
            raise CompactionError(
                f"{self.paths.name} hour {result.hour}: output has {got[0]} rows, checksum {got[1]}; source has "
                f"{expected[0]} rows, checksum {expected[1]} — nothing published"
            )
        result.rows, result.checksum = got

    def run(self, hours: list[tuple[Hour, int, str, DataFrame, HourResult]], *, origin: str = "compaction",
            extra: dict[str, dict[str, Any]] | None = None) -> list[HourResult]:
        """Write, verify and publish ``(hour, outputs, source fingerprint, source rows, result)``
        items as one run. Any failure deletes this run's output and publishes nothing."""
        self._phase("plan")
        fault("compact:plan")
        cores_busy = len(hours) >= self.parallel_hours
        results: list[HourResult] = []
        expected: dict[str, tuple[int, str]] = {}

        def write(item: tuple[Hour, int, str, DataFrame, HourResult]) -> HourResult:
            hour, outputs, _fp, source, result = item
            started = time.monotonic()
            self.say(f"  {hour.key}: writing {result.source_files} file(s) -> {outputs}")
            expected[hour.key] = self.write_hour(source, hour, outputs, result, cores_busy=cores_busy)
            result.seconds = time.monotonic() - started
            fault("compact:write")
            return result

        def verify(result: HourResult) -> HourResult:
            started = time.monotonic()
            self.verify_hour(result, expected[result.hour])
            result.seconds += time.monotonic() - started
            self.say(f"  {result.hour}: verified {result.rows:,} rows, checksum {result.checksum}")
            return result

        try:
            self._phase("write")
            started = time.monotonic()
            results = self._each(write, hours)
            self.phase_seconds["write"] = round(time.monotonic() - started, 3)
            self._phase("verify")
            started = time.monotonic()
            self._each(verify, results)
            self.phase_seconds["verify"] = round(time.monotonic() - started, 3)
            fault("compact:verify")
        except BaseException as exc:
            with self._journal_lock:
                dirs = [info["dir"] for info in self.journal["hours"].values()]
            for rel in dirs:
                shutil.rmtree(self.paths.lake / rel, ignore_errors=True)
            self.journal_path.unlink(missing_ok=True)
            if isinstance(exc, CompactionError):
                raise
            if isinstance(exc, Exception):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise CompactionError(f"{self.paths.name}: run {self.run_id} failed, nothing published: {first}") from exc
            raise
        self._phase("publish")
        self.publish(results, {hour.key: fp for hour, _n, fp, _s, _r in hours}, origin=origin, extra=extra)
        fault("compact:publish")
        self._phase("cleanup")
        return results

    def publish(self, results: list[HourResult], fingerprints: dict[str, str], *, origin: str,
                extra: dict[str, dict[str, Any]] | None = None) -> None:
        """One atomic manifest replace for all ``results``; ``extra`` adds fields per hour key."""
        manifest = read_manifest(self.paths)
        now = time.time()
        for result in results:
            old = manifest["hours"].get(result.hour)
            if old:
                manifest.setdefault("retired", []).append({"dir": old["dir"], "at": now})
            manifest["hours"][result.hour] = {
                "dir": result.dir,
                "files": [p.name for p in _data_files(self.paths.lake / result.dir)],
                "rows": result.rows, "checksum": result.checksum, "bytes": result.output_bytes,
                "source_fingerprint": fingerprints[result.hour], "source_files": result.source_files,
                "source_bytes": result.source_bytes, "run_id": self.run_id, "origin": origin, "published_at": now,
                **(extra or {}).get(result.hour, {}),
            }
        write_manifest(self.paths, manifest)

    def cleanup(self, *, now: float | None = None) -> dict[str, int]:
        done = cleanup(self.stream, self.paths, now=now)
        self.journal_path.unlink(missing_ok=True)
        return done


def cleanup(stream: StreamConfig, paths: TablePaths, *, now: float | None = None) -> dict[str, int]:
    """Delete replaced versions past the reader grace, and landing files of compacted hours
    past retention (files only: the sink's commit log is never modified)."""
    now = time.time() if now is None else now
    policy = stream.compaction
    manifest = read_manifest(paths)
    removed_versions = removed_landing = 0
    keep = []
    for retired in manifest.get("retired", []):
        if now - retired["at"] >= policy.reader_grace_minutes * 60:
            shutil.rmtree(paths.lake / retired["dir"], ignore_errors=True)
            removed_versions += 1
        else:
            keep.append(retired)
    fault("compact:cleanup")
    landing = landing_hours(paths)
    changed = removed_versions > 0
    for key, entry in manifest["hours"].items():
        hour = Hour.parse(key)
        files = landing.get(hour, {})
        if entry.get("landing_removed") or not files:
            continue
        if fingerprint(files) not in (entry.get("source_fingerprint"), entry.get("landing_fingerprint")):
            continue  # landing changed since: the next compaction takes the hour again
        past_retention = now - hour.end.timestamp() >= policy.landing_retention_hours * 3600
        past_grace = now - entry["published_at"] >= policy.reader_grace_minutes * 60
        if past_retention and past_grace:
            for path in files:
                path.unlink(missing_ok=True)
                removed_landing += 1
            entry["landing_removed"] = True
            changed = True
    if changed:
        manifest["retired"] = keep
        write_manifest(paths, manifest)
    return {"versions_removed": removed_versions, "landing_files_removed": removed_landing}


def compact_table(
    spark: SparkSession | None,
    settings: Settings,
    stream: StreamConfig,
    paths: TablePaths,
    *,
    closed_before: datetime,
    first: Hour | None = None,
    last: Hour | None = None,
    target_mb: int | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Plan, and unless ``dry_run`` compact, one table. Returns the run's report (JSON-able)."""
    from kafkalake.registry import Registry

    started = time.monotonic()
    plan = plan_table(stream, paths, closed_before=closed_before, first=first, last=last, target_mb=target_mb)
    for line in plan.describe():
        progress(line)
    report: dict[str, Any] = {"table": stream.name, "format": paths.fmt, "dry_run": dry_run,
                              "plan": [asdict(h) for h in plan.hours], "closed_before": plan.closed_before,
                              "target_bytes": plan.target_bytes, "hours": [], "recovered": []}
    if dry_run:
        report["seconds"] = round(time.monotonic() - started, 3)
        return report
    lock = lock_table(paths)
    try:
        report["recovered"] = recover(paths)
        for note in report["recovered"]:
            progress(f"  recovered: {note}")
        results: list[HourResult] = []
        if plan.to_compact:
            if spark is None:
                raise CompactionError("compaction needs a Spark session for this plan")
            reader_json = Registry(settings.schemas_dir).latest(stream.subject).schema_json
            compactor = Compactor(spark, stream, paths, reader_json, progress=progress)
            report["run_id"] = compactor.run_id
            items = []
            for h in plan.to_compact:
                hour = Hour.parse(h.hour)
                source = read_landing_hours(spark, paths, compactor.schema, hours=[hour])
                items.append((hour, h.outputs, h.fingerprint, source, HourResult(h.hour, h.files, h.bytes, h.file_sizes)))
            results = compactor.run(items)
            report["cleanup"] = compactor.cleanup()
            report["phase_seconds"] = compactor.phase_seconds
        else:
            report["cleanup"] = cleanup(stream, paths)
        report["hours"] = [asdict(r) for r in results]
    finally:
        lock.close()
    report["seconds"] = round(time.monotonic() - started, 3)
    report.update(summarize(report))
    return report


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Totals an operator looks at: files and bytes before/after, rows, mean file size."""
    hours = report.get("hours", [])
    files_before = sum(h["source_files"] for h in hours)
    files_after = sum(h["output_files"] for h in hours)
    bytes_before = sum(h["source_bytes"] for h in hours)
    bytes_after = sum(h["output_bytes"] for h in hours)
    return {"totals": {
        "hours_compacted": len(hours),
        "hours_skipped": sum(1 for h in report.get("plan", []) if h["action"] == "skip"),
        "files_before": files_before, "files_after": files_after,
        "bytes_before": bytes_before, "bytes_after": bytes_after,
        "rows": sum(h["rows"] for h in hours),
        "mean_file_bytes_before": bytes_before / files_before if files_before else 0,
        "mean_file_bytes_after": bytes_after / files_after if files_after else 0,
    }}


def report_dir(settings: Settings) -> Path:
    return settings.state_dir / "reports" / "compaction"


def run_compaction(
    settings: Settings,
    tables: list[str] | None,
    *,
    first: Hour | None = None,
    last: Hour | None = None,
    target_mb: int | None = None,
    dry_run: bool = False,
    closed_before_limit: datetime | None = None,
    spark_factory: Callable[[], SparkSession] | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Compact the named tables (``name`` or ``name.avro``; all when empty): the job's body.

    Spark starts only when some hour needs work, so a dry run or a no-op run stays cheap.
    """
    from kafkalake.lake import all_tables, resolve_table

    if first and last and last < first:
        raise LakeError(f"hour range is empty: {last.key} is before {first.key}")
    chosen = [resolve_table(settings, t) for t in tables] if tables else all_tables(settings)
    started = time.monotonic()
    out: dict[str, Any] = {"dry_run": dry_run, "tables": [], "started_at": time.time()}
    spark = None
    for stream, paths in chosen:
        try:
            cutoff = closed_before(settings, stream, paths, limit=closed_before_limit)
        except StreamNotStarted as exc:
            if tables:  # named on purpose: say why nothing can happen
                raise
            # "all" (the hourly run): a stream that has not started yet has nothing closed;
            # it must not fail the run for the tables that have
            progress(f"{paths.name} ({paths.fmt}): skipped: {exc}")
            cutoff = NOTHING_CLOSED
        plan = plan_table(stream, paths, closed_before=cutoff, first=first, last=last, target_mb=target_mb)
        if plan.to_compact and not dry_run and spark is None:
            if spark_factory is None:
                raise CompactionError("no Spark session factory given")
            spark = spark_factory()
        out["tables"].append(compact_table(
            spark, settings, stream, paths, closed_before=cutoff, first=first, last=last, target_mb=target_mb,
            dry_run=dry_run, progress=progress,
        ))
    out["seconds"] = round(time.monotonic() - started, 3)
    return out


def dag_job_args(
    settings: Settings,
    params: dict[str, Any],
    *,
    run_id: str,
    run_type: Any,
    interval: tuple[datetime | None, datetime | None] = (None, None),
) -> dict[str, Any]:
    """The compaction DAG's params -> the job's arguments and report path, validated.

    Hours come from the params; else a backfill run (``airflow backfill create``) covers its
    data interval; else (scheduled, manual) every closed hour — each run is idempotent, so a
    scheduled run also catches up anything an earlier one missed.
    """
    import re

    from kafkalake.lake import resolve_table

    # the Task SDK hands over its own DagRunType enum, whose str() is "DagRunType.BACKFILL"
    run_type = str(getattr(run_type, "value", run_type))
    table = str(params.get("table") or "all")
    tables = [] if table == "all" else [table]
    for name in tables:
        resolve_table(settings, name)  # unknown table / format: one clear line
    first = Hour.parse(params["hour_from"]) if params.get("hour_from") else None
    last = Hour.parse(params["hour_to"]) if params.get("hour_to") else None
    if first is None and last is None and run_type == "backfill" and interval[0] and interval[1]:
        first = Hour.of(interval[0])
        last = Hour.of(interval[1] - timedelta(hours=1))
        if last < first:
            last = first
    if first and last and last < first:
        raise LakeError(f"hour_to {last.key} is before hour_from {first.key}")
    target = params.get("target_mb")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 1):
        raise LakeError(f"target_mb must be a whole number of MiB >= 1, not {target!r}")
    safe_run = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:120]
    report = report_dir(settings) / f"{safe_run}.json"
    args = [*tables, "--report", str(report)]
    args += ["--from", first.start.isoformat()] if first else []
    args += ["--to", last.start.isoformat()] if last else []
    args += ["--target-mb", str(target)] if target else []
    args += ["--dry-run"] if params.get("dry_run") else []
    return {"args": args, "report": str(report), "tables": tables or "all",
            "hours": [first.key if first else None, last.key if last else None]}
