"""Fixtures of the integration tests (the component fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkalake.config import Settings
from tests.conftest import make_settings, stop_platform


@pytest.fixture
def own_platform(tmp_path: Path) -> Iterator[Settings]:
    """Settings of a platform of the test's own, for tests that run `kafkalake up`. Whatever of it
    still runs at teardown is stopped, whole sessions, also when the test failed."""
    settings = make_settings(tmp_path / "state")
    try:
        yield settings
    finally:
        stop_platform(settings)


@pytest.fixture(scope="module")
def lake_spark(platform_settings: Settings) -> Iterator[Any]:
    """An in-process session with the platform's jars and conf (what spark-submit gives a job).
    Tests attach their own catalogs to it (``lake_helpers.attach_catalog``)."""
    import logging

    from pyspark.sql import SparkSession

    from kafkalake.spark import jvm
    from kafkalake.spark.submit import DEFAULT_CONF

    logging.getLogger("py4j").setLevel(logging.WARNING)
    builder = (SparkSession.builder.master("local[2]").appName("kafkalake-test-lake")
               .config("spark.jars", jvm.spark_jars_arg(platform_settings)).config("spark.ui.enabled", "false")
               .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"))
    for key, value in DEFAULT_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
