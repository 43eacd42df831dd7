"""The rollout's evolve step: the subject's tables follow its latest version, before the streams roll.

docs/architecture.md: Schema changes are checked before they exist; Any engine reads the lake.

For every stream of the subject, each of its tables is created when missing and otherwise
evolved (:func:`kafkalake.catalog.evolution.evolve_table`, the same call a stream driver makes
at its start): new columns with their v3 defaults, widened types, one schema commit per table.
No data file is rewritten; files written before a column existed read its default. Then each
table is checked to hold the reader schema.

:func:`tables_behind` answers from pyiceberg, without a JVM, whether the Spark step has anything
to do (a DAG skips it when not: re-running a rollout is cheap).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafkalake.catalog.config import CatalogError, catalog_config, open_catalog
from kafkalake.catalog.evolution import evolve_table, plan_evolution, reader_struct, with_reader_details
from kafkalake.catalog.iceberg import ensure_table, iceberg_schema_json, load_table
from kafkalake.config import Settings
from kafkalake.migration.rollout import MigrationError, streams_of
from kafkalake.schema.registry import Registry
from kafkalake.stream.decode import META_COLUMNS, decode, decode_plan
from kafkalake.stream.sink import table_specs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: the Kafka source's columns (what :func:`kafkalake.stream.decode.decode` reads), as DDL
KAFKA_ROW_DDL = ("key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp, "
                 "timestampType int, headers array<struct<key:string,value:binary>>")


def tables_behind(settings: Settings, subject: str) -> list[str]:
    """The tables of ``subject``'s streams that are missing or do not hold its latest version
    (from pyiceberg: no JVM). Anything it cannot tell counts as behind."""
    reader = reader_struct(json.loads(Registry(settings.schemas_dir).latest(subject).schema_json))
    namespace = catalog_config(settings).namespace
    names = [t for s in streams_of(settings, subject) for t in s.tables.values()]
    try:
        catalog = open_catalog(settings)
    except CatalogError:
        return names
    behind = []
    for name in names:
        try:
            current = json.loads(catalog.load_table(f"{namespace}.{name}").schema().model_dump_json(by_alias=True))
            if not plan_evolution(current, reader, name, ignore=META_COLUMNS).empty:
                behind.append(name)
        except Exception:  # missing, unreadable or refused: the Spark step decides (and says why)
            behind.append(name)
    return behind


def _empty_kafka_rows(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], KAFKA_ROW_DDL)


def evolve_tables(spark: SparkSession, settings: Settings, subject: str, *,
                  say: Callable[[str], None] = print) -> dict[str, Any]:
    """Create or evolve every table of ``subject``'s streams to its latest version, then check
    that each holds it. Returns ``{table: what was done}``."""
    config = catalog_config(settings)
    plan = decode_plan(Registry(settings.schemas_dir), subject)
    reader = reader_struct(json.loads(plan.reader.schema_json))
    decoded = decode(_empty_kafka_rows(spark), plan)
    done: dict[str, Any] = {}
    for stream in streams_of(settings, subject):
        for spec in table_specs(stream, plan, decoded):
            table, created = ensure_table(spark, config, spec)
            if created:
                done[spec.name] = {"created": True}
                say(f"{spec.name}: created with {subject} v{plan.reader.version}")
            elif spec.name in stream.tables.values():
                target = with_reader_details(json.loads(iceberg_schema_json(spark, spec)), reader)
                evolved = evolve_table(spark, table, target, config.identifier(spec.name))
                done[spec.name] = evolved.to_json()
                say(evolved.describe())
                after = load_table(spark, config, spec.name)
                current = json.loads(spark._jvm.org.apache.iceberg.SchemaParser.toJson(after.schema()))
                left = plan_evolution(current, target, spec.name)
                if not left.empty:
                    raise MigrationError(f"{spec.name} does not hold {subject} v{plan.reader.version} after the "
                                         f"evolve step: {left.describe()}")
                done[spec.name]["columns"] = [f["name"] for f in current["fields"]]
    return done
