"""Replace whole hours of a table in one Iceberg commit, verified first (write-audit-publish).

docs/architecture.md: Rewrites are verified, then committed once.

Compaction and backfill both replace closed hours. :func:`replace_hours` does it the same way
for both:

1. **branch** — a branch ``kafkalake_<origin>_<run>`` is created at the snapshot the rows
   are read from (or the table's current one), before they are read (:func:`rewrite_branch`);
2. **write** — the new rows are written to the branch as a dynamic overwrite of their hours
   (Iceberg replaces every file of each hour the rows fall in, nothing else);
3. **verify** — the branch's rows of those hours are read back (:func:`verify_hours`): row
   count and an order-independent checksum must equal ``expected`` (the source's), or
   nothing is published;
4. **publish** — the branch's snapshot is cherry-picked onto ``main``: one commit that
   replaces exactly the files the hours had at the branch point. Iceberg refuses it if a file
   was added to one of those hours since (the hour was not closed after all), and stream
   appends to other hours never conflict;
5. **cleanup** — the branch is dropped.

A process killed before the cherry-pick leaves ``main`` at its old snapshot; killed after it,
at the new one. The next run drops stale branches of its origin (:func:`drop_stale_branches`)
and the files they alone referenced go with snapshot expiry; files of a write killed before
its branch commit are orphans for ``remove_orphan_files``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafkalake.catalog.config import CatalogConfig
from kafkalake.catalog.iceberg import with_retry
from kafkalake.errors import ExitCode
from kafkalake.lake.tables import Hour, LakeError
from kafkalake.testing.faults import crash_point

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

PHASES = ("branch", "write", "verify", "publish", "cleanup")
#: the column the source's row hash is computed into while a rewrite writes (never written)
_HASH = "_kafkalake_row_hash"


class VerifyError(LakeError):
    """What a rewrite wrote differs from its source; nothing was published."""

    exit_code = ExitCode.COMPACTION


def _quoted(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def row_hash_sql(columns: list[str]) -> str:
    """``xxhash64(row, null mask)`` of ``columns`` (sorted), as SQL: what the checksum sums.

    The mask is an integer bit set (one long per 62 columns), not a string: building a string
    per row cost about a third of verification's CPU. It tells ``(null, 1)`` from ``(1, null)``,
    which xxhash64 alone does not (it skips nulls). SQL text, parsed by Spark in one call: the
    same expression built column by column through pyspark took ~0.2 s of Py4J calls per run.
    """
    ordered = sorted(columns)
    masks = []
    for start in range(0, len(ordered), 62):
        bits = [f"IF({_quoted(c)} IS NULL, {1 << i}L, 0L)" for i, c in enumerate(ordered[start:start + 62])]
        masks.append("(" + " | ".join(bits) + ")")
    return f"xxhash64({', '.join([*map(_quoted, ordered), *masks])})"


def row_hash(columns: list[str]) -> Column:
    """:func:`row_hash_sql` as a Column."""
    from pyspark.sql import functions as F

    return F.expr(row_hash_sql(columns))


def checksum_exprs(columns: list[str], where: str | None = None, suffix: str = "",
                   hashed: str | None = None) -> list[Column]:
    """Row count + an order-independent checksum: the sums of the two 32-bit halves of
    :func:`row_hash` (two sums cannot overflow below 2^31 rows). ``where`` (SQL) restricts them
    to the rows it holds for (one hour of several, in one pass), ``suffix`` names them apart,
    and ``hashed`` names a column that already holds the hash."""
    from pyspark.sql import functions as F

    h = _quoted(hashed) if hashed is not None else row_hash_sql(columns)
    lo, hi, one = f"({h} & 4294967295L)", f"shiftrightunsigned({h}, 32)", "1"
    if where is not None:
        lo, hi, one = (f"CASE WHEN {where} THEN {e} END" for e in (lo, hi, one))
    return [
        F.expr(f"count({one}) AS {_quoted('rows' + suffix)}"),
        F.expr(f"coalesce(sum({lo}), 0L) AS {_quoted('lo' + suffix)}"),
        F.expr(f"coalesce(sum({hi}), 0L) AS {_quoted('hi' + suffix)}"),
    ]


def checksum_of(row: Any, suffix: str = "") -> tuple[int, str]:
    return int(row[f"rows{suffix}"]), f"{int(row[f'lo{suffix}']):x}-{int(row[f'hi{suffix}']):x}"


def table_checksum(df: DataFrame, columns: list[str] | None = None) -> tuple[int, str]:
    """(rows, checksum) of any DataFrame of table rows: what verification compares."""
    return checksum_of(df.agg(*checksum_exprs(columns or df.columns)).first())


def checksums_by_hour(df: DataFrame, columns: list[str]) -> dict[Hour, tuple[int, str]]:
    """:func:`table_checksum` per hour of ``timestamp``, in one pass."""
    from pyspark.sql import functions as F

    hour = F.date_trunc("hour", F.col("timestamp")).alias("_hour")
    result = {}
    for row in df.groupBy(hour).agg(*checksum_exprs(columns)).collect():
        result[Hour.of(row["_hour"])] = checksum_of(row)
    return result


def observe_checksums(
    rows: DataFrame, hours: list[Hour]
) -> tuple[DataFrame, Callable[[], dict[Hour, tuple[int, str]]]]:
    """``rows`` with the :func:`checksums_by_hour` of ``hours`` measured as they flow into the
    write (a Spark ``Observation``), and a function that returns them once the write is done:
    the source is read once, by the write, instead of once more to checksum it."""
    from pyspark.sql import Observation

    observation = Observation(f"kafkalake_source_{uuid.uuid4().hex[:8]}")
    # the row hash once per row, in a column; each hour's sums only pick their rows of it
    hashed = rows.select("*", row_hash(rows.columns).alias(_HASH))
    exprs = []
    for i, hour in enumerate(hours):
        exprs += checksum_exprs(rows.columns, where=hours_filter([hour]), suffix=f"_{i}", hashed=_HASH)
    observed = hashed.observe(observation, *exprs).select(*rows.columns)

    def result() -> dict[Hour, tuple[int, str]]:
        metrics = observation.get
        return {hour: checksum_of(metrics, f"_{i}") for i, hour in enumerate(hours)}

    return observed, result


def observe_hours(
    parts: dict[Hour, DataFrame], columns: list[str],
) -> tuple[dict[Hour, DataFrame], Callable[[], dict[Hour, tuple[int, str]]]]:
    """Each part (one hour's rows, of ``columns``) with its :func:`table_checksum` measured as
    the write reads it, one observation per hour, and a function that returns them once the
    write is done. Cheaper than :func:`observe_checksums` on their union: each row feeds its
    own hour's three sums, not every hour's conditional ones. The expressions are built once
    and shared (each is dozens of JVM calls)."""
    from pyspark.sql import Observation

    observed: dict[Hour, DataFrame] = {}
    observations: dict[Hour, Observation] = {}
    run = uuid.uuid4().hex[:8]
    exprs = checksum_exprs(columns)
    for i, (hour, part) in enumerate(sorted(parts.items())):
        observations[hour] = Observation(f"kafkalake_source_{run}_{i}")
        observed[hour] = part.observe(observations[hour], *exprs)

    def result() -> dict[Hour, tuple[int, str]]:
        return {hour: checksum_of(observation.get) for hour, observation in observations.items()}

    return observed, result


def hours_filter(hours: list[Hour]) -> str:
    """SQL predicate selecting exactly ``hours`` of ``timestamp`` (whole partitions)."""
    if not hours:
        return "false"
    return " OR ".join(
        f"(`timestamp` >= TIMESTAMP '{h.start:%Y-%m-%d %H:%M:%S}+00:00' AND "
        f"`timestamp` < TIMESTAMP '{h.end:%Y-%m-%d %H:%M:%S}+00:00')" for h in sorted(hours)
    )


@dataclass
class Rewrite:
    """The outcome of one :func:`replace_hours`."""

    table: str
    branch: str
    hours: list[str]
    rows: int = 0
    checksum: str = ""
    published_snapshot: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def replace_hours(
    spark: SparkSession,
    config: CatalogConfig,
    table: str,
    rows: DataFrame,
    expected: dict[Hour, tuple[int, str]] | list[Hour],
    *,
    origin: str,
    base_snapshot: int | None = None,
    branch: RewriteBranch | None = None,
    properties: dict[str, str] | None = None,
    measured: Callable[[], dict[Hour, tuple[int, str]]] | None = None,
    progress: Callable[[str], None] = print,
) -> Rewrite:
    """Replace the hours of ``expected`` in ``table`` with ``rows`` (which must hold exactly
    those hours' rows), verified against ``expected`` per hour, in one commit on main.

    ``expected`` is the source's per-hour (rows, checksum), or just the hours: then they are
    measured during the write, by ``measured`` when the caller observed ``rows`` already
    (:func:`observe_hours`), else on ``rows`` (:func:`observe_checksums`); an hour without
    rows publishes nothing. ``branch``: the caller's :func:`rewrite_branch`, made at the
    snapshot ``rows`` are read from (else a branch at ``base_snapshot`` is made and dropped
    here)."""
    ident = config.identifier(table)
    hours = sorted(expected)
    if isinstance(expected, dict):
        measured = None
    elif measured is None:
        rows, measured = observe_checksums(rows, hours)
    result = Rewrite(table=table, branch="", hours=[h.key for h in hours])
    timer = _Timer(result.seconds)
    own = branch is None
    if branch is None:
        with timer("branch"):
            branch = open_branch(spark, config, table, origin, as_of=base_snapshot)
    result.branch = branch.name
    try:
        with timer("write"):
            writer = rows.writeTo(f"{ident}.branch_{branch.name}")
            for key, value in (properties or {}).items():
                writer = writer.option(f"snapshot-property.{key}", value)
            writer.overwritePartitions()
        crash_point(f"{origin}.write")
        if measured is not None:
            expected = measured()
            empty = [h.key for h, (n, _) in sorted(expected.items()) if n == 0]
            if empty:
                raise VerifyError(f"{ident}: the source has no rows in hour(s) {', '.join(empty)}; "
                                  "nothing was published; run again")
        with timer("verify"):
            head = _ref_snapshot(spark, ident, branch.name)
            bad = verify_hours(spark, ident, head, expected, list(rows.columns))
            if bad:
                hour, (have, want) = sorted(bad.items())[0]
                raise VerifyError(
                    f"{ident}: verification failed for {len(bad)} hour(s), e.g. {hour.key}: wrote {have}, "
                    f"expected {want} (rows, checksum); nothing was published"
                )
            result.rows = sum(r for r, _ in expected.values())
        crash_point(f"{origin}.verify")
        with timer("publish"):
            spark.sql(f"CALL {config.name}.system.cherrypick_snapshot('{ident}', {head})")
            result.published_snapshot = spark.sql(
                f"SELECT snapshot_id FROM {ident}.refs WHERE name = 'main'").first()[0]
        progress(f"{ident}: published {len(hours)} hour(s), {result.rows:,} rows, in one commit")
        crash_point(f"{origin}.publish")
    finally:
        if own:
            with timer("cleanup"):
                _drop_branch(spark, ident, branch.name)
    return result


def verify_hours(spark: SparkSession, ident: str, snapshot: int, expected: dict[Hour, tuple[int, str]],
                 columns: list[str]) -> dict[Hour, tuple[tuple[int, str] | None, tuple[int, str]]]:
    """The hours of ``expected`` whose rows at ``snapshot`` differ from it: ``{hour: (got, want)}``.

    When the hours' files are all Parquet with no delete files (what a rewrite writes), they
    are read as they are, by Spark's own Parquet reader: it reads the Kafka headers (a list of
    structs) column by column, where Iceberg's reader falls back to row by row for the whole
    file once a column is nested (twice the time on the benchmark's table). The files are the
    hours' whole content at ``snapshot`` and were just written with the table's schema, so
    their rows are the table's rows. Anything else, and a fast read that disagrees or fails
    (a type Spark reads otherwise, storage it cannot open), is read through the table, whose
    answer decides.
    """
    files = plain_parquet_files(spark, ident, snapshot, list(expected))
    if files:
        try:
            got = checksums_by_hour(spark.read.parquet(*files).select(*columns), columns)
            if got == expected:
                return {}
            log.info("%s: the files' own read disagrees with the expected checksums; reading through the table", ident)
        except Exception as exc:  # any failure of the fast path: the table read decides
            log.info("%s: the hours' files could not be read as Parquet (%s); reading through the table",
                     ident, str(exc).splitlines()[0][:200])
    table = spark.read.option("versionAsOf", str(snapshot)).table(ident).where(hours_filter(list(expected)))
    got = checksums_by_hour(table, columns)
    return {h: (got.get(h), want) for h, want in expected.items() if got.get(h) != want}


def plain_parquet_files(spark: SparkSession, ident: str, snapshot: int, hours: list[Hour]) -> list[str] | None:
    """The data files of ``hours`` at ``snapshot`` if they are all Parquet and none of the
    hours has a delete file (or a partitioning other than ``timestamp_hour``); else None."""
    if not hours:
        return None
    wanted = ", ".join(str(int(h.start.timestamp()) // 3600) for h in sorted(hours))
    try:  # the partition filter prunes manifests: only these hours' files are listed
        mine = spark.sql(f"SELECT content, file_format, file_path FROM {ident}.files VERSION AS OF {snapshot} "
                         f"WHERE partition.timestamp_hour IN ({wanted})").collect()
    except Exception:  # another partitioning: the table read handles it
        return None
    if not mine or any(r["content"] != 0 or str(r["file_format"]).upper() != "PARQUET" for r in mine):
        return None
    return [r["file_path"] for r in mine]


def _ref_snapshot(spark: SparkSession, ident: str, name: str) -> int:
    return int(spark.sql(f"SELECT snapshot_id FROM {ident}.refs WHERE name = '{name}'").first()[0])


@dataclass(frozen=True)
class RewriteBranch:
    """A rewrite's branch and the snapshot it was made at (``base``)."""

    name: str
    base: int


def open_branch(spark: SparkSession, config: CatalogConfig, table: str, origin: str, *,
                as_of: int | None = None) -> RewriteBranch:
    """A new branch ``kafkalake_<origin>_<run>`` at snapshot ``as_of`` (or main's current one).

    It keeps two snapshots, its head and its branch point: before the write that is the
    snapshot the rewrite reads, so the stream's snapshot expiry cannot take a long read's
    files; after it, the branch point the cherry-pick's validation needs."""
    ident = config.identifier(table)
    name = f"kafkalake_{origin}_{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"
    version = f" AS OF VERSION {as_of}" if as_of is not None else ""
    _create_ref(spark, ident, name,
                f"ALTER TABLE {ident} CREATE BRANCH `{name}`{version} WITH SNAPSHOT RETENTION 2 SNAPSHOTS")
    crash_point(f"{origin}.branch")
    return RewriteBranch(name, as_of if as_of is not None else _ref_snapshot(spark, ident, name))


@contextmanager
def rewrite_branch(spark: SparkSession, config: CatalogConfig, table: str, origin: str) -> Iterator[RewriteBranch]:
    """A rewrite's branch at the table's current snapshot, made before the rewrite plans its
    read of that snapshot and dropped when the block ends (published or not)."""
    branch = open_branch(spark, config, table, origin)
    try:
        yield branch
    finally:
        _drop_branch(spark, config.identifier(table), branch.name)


def drop_stale_branches(spark: SparkSession, config: CatalogConfig, table: str, origin: str) -> list[str]:
    """Drop the branches (and any other refs) an earlier run of ``origin`` left: it was killed
    before its cleanup."""
    ident = config.identifier(table)
    refs = [(r[0], r[1]) for r in spark.sql(f"SELECT name, type FROM {ident}.refs").collect()]
    stale = [(n, kind) for n, kind in refs if n.startswith(f"kafkalake_{origin}_")]
    for name, kind in stale:
        _drop_ref(spark, ident, kind, name)
        log.warning("%s: dropped %s %s of an interrupted %s run", ident, kind.lower(), name, origin)
    return [n for n, kind in stale if kind != "TAG"]


def _create_ref(spark: SparkSession, ident: str, name: str, statement: str) -> None:
    """Create a branch or tag of a name of its own, retried while the catalog is busy (a retry
    after a commit whose answer was lost finds the ref there; the name is new, so the first
    attempt does not look)."""
    tries = 0

    def attempt() -> None:
        nonlocal tries
        tries += 1
        if tries > 1 and not spark.sql(f"SELECT 1 FROM {ident}.refs WHERE name = '{name}'").isEmpty():
            return
        spark.sql(statement)

    with_retry(attempt, f"create {name} of {ident}")


def _drop_ref(spark: SparkSession, ident: str, kind: str, name: str) -> None:
    """Drop a branch or tag if it is there, retried while the catalog is busy."""
    statement = f"ALTER TABLE {ident} DROP {'TAG' if kind.upper() == 'TAG' else 'BRANCH'} IF EXISTS `{name}`"
    with_retry(lambda: spark.sql(statement), f"drop {name} of {ident}")


def _drop_branch(spark: SparkSession, ident: str, branch: str) -> None:
    _drop_ref(spark, ident, "BRANCH", branch)


class _Timer:
    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    def __call__(self, phase: str) -> _Timer:
        self.phase = phase
        return self

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.into[self.phase] = round(time.monotonic() - self.started, 3)
