"""Shared by the lake tests (compaction, backfill, migration): settings, Spark, readers, producers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kafkalake.config import Settings
from kafkalake.lake.tables import Hour


def table_settings(base: Settings, tmp_path: Path, name: str = "fr", *, topic: str = "unused",
                   sink_format: str = "parquet", stream: dict[str, Any] | None = None, **compaction: Any) -> Settings:
    """Settings of a test's own stream, state folder and Iceberg catalog (a name of its own,
    so that one Spark session can attach the catalogs of several tests)."""
    doc = {"streams": [{"name": name, "topics": [topic], "subject": "fridge", "sink_format": sink_format,
                        "trigger": "1 second", "max_offsets_per_trigger": 700, "starting_offsets": "earliest",
                        "compaction": {"sort_by": ["name", "timestamp"], **compaction}, **(stream or {})}]}
    (tmp_path / "streams.yaml").write_text(json.dumps(doc))
    return base.with_overrides(streams_file=tmp_path / "streams.yaml", lake_root=tmp_path / "lake",
                               state_dir=tmp_path / "state", catalog_name=f"t{uuid.uuid4().hex[:10]}")


def attach_catalog(spark: Any, settings: Settings) -> str:
    """Give a running Spark session the catalog of ``settings`` (catalogs load lazily by name);
    returns the catalog name to use in SQL."""
    from kafkalake.catalog.config import catalog_config

    config = catalog_config(settings)
    config.prepare_local()
    for key, value in config.spark_conf().items():
        if key != "spark.sql.extensions":
            spark.conf.set(key, value)
    # the test's other processes (stream, compaction) commit too: always read the newest metadata
    spark.conf.set(f"spark.sql.catalog.{config.name}.cache-enabled", "false")
    return config.name


def arrow_table(settings: Settings, table: str = "fr") -> Any:
    """A table read by pyiceberg, no Spark (what any Python user does)."""
    from kafkalake.catalog.config import catalog_config, open_catalog

    return open_catalog(settings).load_table(f"{catalog_config(settings).namespace}.{table}").scan().to_arrow()


def arrow_state(settings: Settings, name: str = "fr") -> tuple[int, str, int]:
    """(rows, order-independent digest, distinct Kafka coordinates) of a table through pyiceberg."""
    import hashlib

    table = arrow_table(settings, name).drop_columns(["headers"])
    digest = 0
    for row in table.to_pylist():
        digest += int.from_bytes(hashlib.blake2b(repr(sorted(row.items())).encode(), digest_size=8).digest(), "big")
    digest %= 1 << 64
    unique = len(set(zip(table["partition"].to_pylist(), table["offset"].to_pylist(), strict=True)))
    return table.num_rows, f"{digest:016x}", unique


def produce_at(settings: Settings, topic: str, stamps: list[datetime], *, seed: int = 3) -> int:
    """Fridge records (30 % v1) with the given CreateTime timestamps, in order."""
    from kafkalake.produce.fleet import fleet_from_registry
    from kafkalake.produce.producer import produce_timed
    from kafkalake.schema.registry import Registry

    fleet = fleet_from_registry(Registry(settings.schemas_dir), devices=50, v1_fraction=0.3, seed=seed)
    messages = fleet.messages(len(stamps))
    return produce_timed(settings.bootstrap_servers, topic,
                         ((key, value, stamp.timestamp())
                          for stamp, (key, value, _s, _k) in zip(stamps, messages, strict=True)))


def create_time_topic(settings: Settings) -> str:
    from kafkalake.kafka.topics import create_topic

    topic = f"compact-{uuid.uuid4().hex[:8]}"
    create_topic(settings.bootstrap_servers, topic, partitions=2, config={"message.timestamp.type": "CreateTime"})
    return topic


def past_stamps(hours: list[Hour], per_hour: int) -> list[datetime]:
    return [h.start + timedelta(seconds=3600 * i / per_hour) for h in hours for i in range(per_hour)]


def wait_for(
    what: str, check: Callable[[], Any], timeout: float, *, every: float = 1.0, log: Path | None = None
) -> Any:
    """Poll ``check`` every ``every`` seconds until it returns something truthy (returned);
    fail the test after ``timeout`` seconds, with the tail of ``log`` when given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}" + (f"\n{log.read_text()[-3000:]}" if log else ""))
