"""pyspark, the Spark connector jars and the lock file must name one Spark version."""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _pom_property(name: str) -> str:
    root = ET.parse(REPO / "jvm" / "pom.xml").getroot()
    value = root.find(f"m:properties/m:{name}", NS)
    assert value is not None, name
    return value.text.strip()


def test_pyspark_pin_equals_the_connectors_spark_version() -> None:
    spark_version = _pom_property("spark.version")
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"pyspark=={spark_version}" in deps
    lock = (REPO / "requirements" / "lock.txt").read_text()
    assert re.search(rf"^pyspark=={re.escape(spark_version)}$", lock, re.M)
    assert "pyspark-client" not in re.findall(r"^([a-z0-9\-_.]+)==", lock, re.M)


def test_installed_pyspark_matches() -> None:
    import importlib.metadata

    assert importlib.metadata.version("pyspark") == _pom_property("spark.version")


def test_kafka_broker_is_a_current_4x() -> None:
    assert re.fullmatch(r"4\.\d+\.\d+", _pom_property("kafka.version"))


def test_pandas_below_3_for_pyspark() -> None:
    import pandas

    assert int(pandas.__version__.split(".")[0]) < 3
