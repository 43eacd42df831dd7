"""Write, verify and publish hours of a table: the lake's one way to change.

Compaction, backfill and migration hand their hours to :class:`Compactor`, which
journals each phase, verifies row count + an order-independent checksum against the
source and publishes all hours with one atomic manifest replace.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kafkalake._files import FileLock, LockHeld, exclusive_lock, write_json_atomic
from kafkalake.errors import ExitCode
from kafkalake.lake.landing import fingerprint, landing_hours
from kafkalake.lake.manifest import read_manifest, write_manifest
from kafkalake.lake.read import landing_schema, read_lake_files, table_columns
from kafkalake.lake.tables import Hour, LakeError, TablePaths
from kafkalake.stream.config import MIB, StreamConfig
from kafkalake.testing.faults import crash_point

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

T = TypeVar("T")
#: upper bound of hours written/verified at once (each holds its source's plan and shuffle)
MAX_PARALLEL_HOURS = 8


class CompactionError(LakeError):
    """A compaction run failed; nothing of it was published."""

    exit_code = ExitCode.COMPACTION


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


def _new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("part-*") if p.is_file())


def lock_table(paths: TablePaths) -> FileLock:
    """One writer per table at a time (compaction, backfill, migration): an exclusive flock."""
    try:
        return exclusive_lock(paths.journal_dir / ".lock", wait=False)
    except LockHeld:
        raise LakeError(
            f"another run is writing table {paths.name} ({paths.fmt}) right now; retry when it ends"
        ) from None


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
            write_json_atomic(self.journal_path, self.journal, indent=1)

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
            write_json_atomic(self.journal_path, self.journal, indent=1)
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
        crash_point("compact:plan")
        cores_busy = len(hours) >= self.parallel_hours
        results: list[HourResult] = []
        expected: dict[str, tuple[int, str]] = {}

        def write(item: tuple[Hour, int, str, DataFrame, HourResult]) -> HourResult:
            hour, outputs, _fp, source, result = item
            started = time.monotonic()
            self.say(f"  {hour.key}: writing {result.source_files} file(s) -> {outputs}")
            expected[hour.key] = self.write_hour(source, hour, outputs, result, cores_busy=cores_busy)
            result.seconds = time.monotonic() - started
            crash_point("compact:write")
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
            crash_point("compact:verify")
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
                raise CompactionError(
                    f"{self.paths.name}: run {self.run_id} failed, nothing published: {first}"
                ) from exc
            raise
        self._phase("publish")
        self.publish(results, {hour.key: fp for hour, _n, fp, _s, _r in hours}, origin=origin, extra=extra)
        crash_point("compact:publish")
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
    crash_point("compact:cleanup")
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
