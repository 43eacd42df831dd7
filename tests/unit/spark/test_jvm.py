from __future__ import annotations

from pathlib import Path

import pytest

from kafkalake.config import Settings, get_settings
from kafkalake.errors import SetupError
from kafkalake.spark import jvm


@pytest.mark.parametrize(
    ("name", "artifact"),
    [
        ("kafka-clients-3.9.1.jar", "kafka-clients"),
        ("spark-sql-kafka-0-10_2.13-4.1.1.jar", "spark-sql-kafka-0-10_2.13"),
        ("zstd-jni-1.5.7-17.jar", "zstd-jni"),
        ("scala-library-2.13.15.jar", "scala-library"),
    ],
)
def test_artifact_name_strips_the_version(name: str, artifact: str) -> None:
    assert jvm.artifact_name(Path(name)) == artifact


def test_connector_jars_skip_what_pyspark_ships() -> None:
    jars = [j.name for j in jvm.spark_connector_jars(get_settings())]
    assert any(j.startswith("spark-sql-kafka-0-10_2.13-") for j in jars)
    assert any(j.startswith("spark-avro_2.13-") for j in jars)
    assert any(j.startswith("kafka-clients-") for j in jars)
    # pyspark's wheel has these; a second copy would be a classpath conflict
    bundled = {jvm.artifact_name(j) for j in jvm.pyspark_jars_dir().glob("*.jar")}
    assert "scala-library" in bundled
    assert not [j for j in jars if jvm.artifact_name(Path(j)) in bundled]


def test_missing_jars_say_run_make_jars(tmp_path: Path) -> None:
    settings = Settings.from_env({"KAFKALAKE_JARS_DIR": str(tmp_path)})
    with pytest.raises(SetupError, match="run `make jars`"):
        jvm.module_jars(settings, jvm.SPARK_CONNECTORS)


def test_java_17_is_found() -> None:
    assert jvm.java_major_version(jvm.find_java()) >= 17
