"""Fixtures of the integration tests (the component fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kafkalake.config import Settings


@pytest.fixture(scope="module")
def lake_spark(platform_settings: Settings) -> Iterator[Any]:
    """An in-process session with the platform's jars and conf (what spark-submit gives a job)."""
    import logging

    from pyspark.sql import SparkSession

    from kafkalake.spark import jvm
    from kafkalake.spark.submit import DEFAULT_CONF

    logging.getLogger("py4j").setLevel(logging.WARNING)
    builder = (SparkSession.builder.master("local[2]").appName("kafkalake-test-compaction")
               .config("spark.jars", jvm.spark_jars_arg(platform_settings)).config("spark.ui.enabled", "false"))
    for key, value in DEFAULT_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
