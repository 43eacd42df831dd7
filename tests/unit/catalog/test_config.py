"""The catalog settings: what Spark and pyiceberg are given, and one line for each wrong value."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkalake.catalog.config import CatalogError, catalog_config
from kafkalake.config import Settings


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"KAFKALAKE_HOME": str(tmp_path), **env})


def test_embedded_default_is_sqlite_in_the_state_folder_with_the_warehouse_under_the_lake(tmp_path: Path) -> None:
    config = catalog_config(_settings(tmp_path))
    assert config.sqlite_file == tmp_path / ".kafkalake" / "catalog" / "iceberg.db"
    assert config.warehouse == (tmp_path / ".kafkalake" / "lake" / "warehouse").as_uri()
    assert config.identifier("fridge") == "kafkalake.lake.fridge"
    conf = config.spark_conf()
    assert conf["spark.sql.catalog.kafkalake"] == "org.apache.iceberg.spark.SparkCatalog"
    assert conf["spark.sql.catalog.kafkalake.type"] == "jdbc"
    assert conf["spark.sql.catalog.kafkalake.jdbc.schema-version"] == "V1"
    assert conf["spark.sql.catalog.kafkalake.uri"] == f"jdbc:sqlite:{config.sqlite_file}"
    # pyiceberg's SqlCatalog on the same file, same warehouse
    assert config.pyiceberg_properties() == {"uri": f"sqlite:///{config.sqlite_file}", "warehouse": config.warehouse}


def test_postgres_catalog_for_several_hosts(tmp_path: Path) -> None:
    config = catalog_config(_settings(tmp_path, KAFKALAKE_CATALOG_URI="jdbc:postgresql://db:5432/iceberg",
                                      KAFKALAKE_WAREHOUSE="s3://bucket/wh", KAFKALAKE_CATALOG="lh"))
    assert config.sqlite_file is None and config.warehouse == "s3://bucket/wh"
    assert config.pyiceberg_properties()["uri"] == "postgresql+psycopg2://db:5432/iceberg"
    assert "spark.sql.catalog.lh.jdbc.busy_timeout" not in config.spark_conf()


@pytest.mark.parametrize(("env", "message"), [
    ({"KAFKALAKE_CATALOG_URI": "thrift://hms:9083"}, "is not a JDBC catalog URI"),
    ({"KAFKALAKE_CATALOG_URI": "jdbc:sqlite:relative.db"}, "must be an absolute path"),
    ({"KAFKALAKE_WAREHOUSE": "relative/wh"}, "must be an absolute path or a URI"),
    ({"KAFKALAKE_WAREHOUSE": "ftp://host/wh"}, "scheme 'ftp' is not one of"),
    ({"KAFKALAKE_CATALOG": "my-catalog"}, "KAFKALAKE_CATALOG='my-catalog' must be"),
    ({"KAFKALAKE_NAMESPACE": "a.b"}, "KAFKALAKE_NAMESPACE='a.b' must be"),
])
def test_a_wrong_setting_is_one_line_naming_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(CatalogError, match=message) as caught:
        catalog_config(_settings(tmp_path, **env))
    assert "\n" not in str(caught.value)
