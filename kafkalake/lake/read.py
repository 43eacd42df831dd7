"""THE read path of a table: lake hours from the manifest plus landing hours not yet compacted."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkalake.config import Settings
from kafkalake.lake.landing import _landing_hour_paths
from kafkalake.lake.manifest import lake_files, read_manifest
from kafkalake.lake.tables import LANDING_ONLY, Hour, LakeError, TablePaths, resolve_table
from kafkalake.stream.config import StreamConfig
from kafkalake.stream.decode import LANDING

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


def landing_schema(spark: SparkSession, reader_json: str) -> StructType:
    """The landing sink's full schema, stated rather than inferred.

    Inference would open "a" data file of the sink — possibly one housekeeping deleted
    (a compacted hour). Stating it also makes files written before a schema change read with
    the new columns as null.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro
    from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

    record = spark.range(0).select(from_avro(F.lit(None).cast("binary"), reader_json).alias("r")).schema["r"].dataType
    meta = {
        "schema_id": IntegerType(), "schema_version": IntegerType(), "topic": StringType(), "partition": IntegerType(),
        "offset": LongType(), "timestamp": TimestampType(), "reason": StringType(), "raw_key": BinaryType(),
        "raw_value": BinaryType(), "zone": StringType(), "dt": StringType(), "hour": IntegerType(),
    }
    fields = [StructField(f.name, f.dataType, True) for f in record.fields]
    return StructType(fields + [StructField(name, kind, True) for name, kind in meta.items()])


def table_columns(schema: StructType) -> list[str]:
    """A table row's columns: the reader schema's fields, the Kafka metadata, dt and hour."""
    return [f.name for f in schema.fields if f.name not in LANDING_ONLY]


def _reader_json(settings: Settings, stream: StreamConfig) -> str:
    from kafkalake.schema.registry import Registry

    return Registry(settings.schemas_dir).latest(stream.subject).schema_json


def read_landing_hours(spark: SparkSession, paths: TablePaths, schema: StructType,
                       hours: Iterable[Hour] | None = None, exclude: Iterable[str] = ()) -> DataFrame:
    """Landing rows of ``hours`` (all when None) minus the hour keys in ``exclude``, as table rows.

    Reads through Spark's file-sink index, so the commit log decides which files count;
    the hour filter only touches partition columns, so Spark prunes files before opening any.
    """
    from pyspark.sql import functions as F

    reader = spark.read.schema(schema).format(paths.fmt)
    if paths.fmt == "avro":
        reader = reader.option("ignoreExtension", "true")
    df = reader.load(str(paths.landing)).where(F.col("zone") == LANDING)
    key = F.format_string("%sT%02d", F.col("dt"), F.col("hour"))
    if hours is not None:
        wanted = sorted({h.key for h in hours})
        df = df.where(key.isin(wanted) if wanted else F.lit(False))
    excluded = sorted(set(exclude))
    if excluded:
        df = df.where(~key.isin(excluded))
    return df.select(*table_columns(schema))


def read_lake_files(spark: SparkSession, fmt: str, files: list[Path], schema: StructType) -> DataFrame:
    """Lake files (which carry dt/hour as columns) as table rows of ``schema``'s table columns."""
    from pyspark.sql import functions as F

    columns = table_columns(schema)
    wanted = [f for f in schema.fields if f.name in columns]
    from pyspark.sql.types import StructType as _StructType

    df = spark.read.schema(_StructType(wanted)).format(fmt).load([str(f) for f in files])
    return df.select(*[F.col(c) for c in columns])


def read_table(
    spark: SparkSession, name: str, *, fmt: str | None = None, settings: Settings | None = None
) -> DataFrame:
    """THE read path: every row of table ``name`` exactly once — lake hours ∪ landing hours not
    yet compacted. Consistent while compaction, backfill or migration run: the manifest is read
    once, and nothing it or the landing log lists is deleted within the reader grace period.

    Columns: the subject's latest reader schema (older rows get null/default for newer fields),
    ``schema_id, schema_version, topic, partition, offset, timestamp, dt, hour``.
    """
    from kafkalake.config import get_settings

    settings = settings or get_settings()
    stream, paths = resolve_table(settings, name, fmt)
    schema = landing_schema(spark, _reader_json(settings, stream))
    manifest = read_manifest(paths)
    published = lake_files(paths, manifest)
    frames = []
    # Landing hours not yet in the lake; once every one is, the landing is not opened at all
    # (Spark would parse its whole commit log only to prune every file). Nothing published yet:
    # no need to parse the log here too.
    if paths.landing.exists() and (not published or any(h.key not in published for h in _landing_hour_paths(paths))):
        frames.append(read_landing_hours(spark, paths, schema, exclude=published))
    files = [f for fs in published.values() for f in fs]
    if files:
        frames.append(read_lake_files(spark, paths.fmt, files, schema))
    if not frames:
        return spark.createDataFrame([], schema).select(*table_columns(schema))
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def read_table_arrow(name: str, *, fmt: str | None = None, settings: Settings | None = None,
                     columns: list[str] | None = None) -> pa.Table:
    """The same rows as :func:`read_table`, without a JVM (pyarrow; DuckDB reads the result).

    Files written before and after a schema change differ; every file's footer is read and the
    schemas unified (pyarrow would otherwise take the first file's), and fields of the reader
    schema no file has yet come back as nulls. Parquet tables only (Avro: read the files
    :func:`table_files` lists with fastavro).
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    from kafkalake.config import get_settings

    settings = settings or get_settings()
    stream, paths = resolve_table(settings, name, fmt)
    if paths.fmt != "parquet":
        raise LakeError(f"read_table_arrow reads Parquet tables; {name} is {paths.fmt}: use table_files + fastavro")
    landing, lake = table_files(paths)
    parts = []
    if landing:
        hive = pa.schema([("zone", pa.string()), ("dt", pa.string()), ("hour", pa.int32())])
        schema = pa.unify_schemas([_unified_schema(landing), hive])
        table = ds.dataset([str(f) for f in landing], format="parquet", schema=schema,
                           partitioning=ds.partitioning(hive, flavor="hive"),
                           partition_base_dir=str(paths.landing)).to_table()
        parts.append(_normalized(table.select([c for c in table.column_names if c not in LANDING_ONLY])))
    if lake:
        schema = _unified_schema(lake)
        parts.append(_normalized(ds.dataset([str(f) for f in lake], format="parquet", schema=schema).to_table()))
    if not parts:
        return pa.table({})
    out = pa.concat_tables(parts, promote_options="permissive")
    for position, (field, kind) in enumerate(_arrow_reader_fields(_reader_json(settings, stream))):
        if field not in out.column_names and kind is not None:
            out = out.add_column(position, field, pa.nulls(out.num_rows, kind))
    return out.select(columns) if columns else out


def _arrow_reader_fields(reader_json: str) -> list[tuple[str, Any]]:
    """(field, arrow type) of the reader schema's top-level fields; None for types not mapped."""
    import pyarrow as pa

    primitive = {"string": pa.string(), "int": pa.int32(), "long": pa.int64(), "double": pa.float64(),
                 "float": pa.float32(), "boolean": pa.bool_(), "bytes": pa.binary()}
    out = []
    for field in json.loads(reader_json)["fields"]:
        kind = field["type"]
        if isinstance(kind, list):
            branches = [k for k in kind if k != "null"]
            kind = branches[0] if len(branches) == 1 else None
        out.append((field["name"], primitive.get(kind) if isinstance(kind, str) else None))
    return out


def _unified_schema(files: list[Path]) -> pa.Schema:
    """Every file's footer schema, unified, with one timestamp type: Spark writes UTC instants
    either way, but its INT96 files read as naive nanoseconds and its TIMESTAMP_MICROS files
    as UTC microseconds, and pyarrow refuses to merge the two (a table written across the
    change of Spark's default to micros has both)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    utc = pa.timestamp("us", tz="UTC")
    schemas = []
    for path in files:
        schema = pq.read_schema(path)
        for i, field in enumerate(schema):
            if pa.types.is_timestamp(field.type) and field.type != utc:
                schema = schema.set(i, field.with_type(utc))
        schemas.append(schema)
    return pa.unify_schemas(schemas, promote_options="permissive")


def _normalized(table: pa.Table) -> pa.Table:
    """One arrow type per column whoever wrote the file (Spark INT96 vs. micros, hive dt)."""
    import pyarrow as pa

    wanted = {"dt": pa.string(), "hour": pa.int32(), "timestamp": pa.timestamp("us", tz="UTC")}
    for name, kind in wanted.items():
        if name in table.column_names and table.schema.field(name).type != kind:
            table = table.set_column(table.column_names.index(name), name, table[name].cast(kind))
    return table


def table_files(paths: TablePaths) -> tuple[list[Path], list[Path]]:
    """(landing files of hours not in the lake, lake files): every file a reader must read, once."""
    manifest = read_manifest(paths)
    published = lake_files(paths, manifest)
    landing = [
        Path(f) for hour, files in _landing_hour_paths(paths).items() if hour.key not in published for f in files
    ]
    return landing, [f for files in published.values() for f in files]


def table_checksum_arrow(table: pa.Table) -> tuple[int, str]:
    """(rows, order-independent digest) of a pyarrow table — an independent check for tests/tools."""
    rows = table.to_pylist()
    digest = 0
    for row in rows:
        canonical = json.dumps({k: row[k] for k in sorted(row)}, default=str, sort_keys=True)
        digest = (digest + int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")) % (1 << 64)
    return len(rows), f"{digest:016x}"
