"""The Airflow environment: connections must resolve the way the providers read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kafkalake.config import Settings
from kafkalake.platform.local_airflow import airflow_env


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"KAFKALAKE_STATE_DIR": str(tmp_path), **env})


def test_folders_examples_and_connections(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    env = airflow_env(s, base={"PATH": "/usr/bin"})
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"].endswith("/plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert json.loads(env["AIRFLOW_CONN_KAFKA_DEFAULT"])["extra"]["bootstrap.servers"] == s.bootstrap_servers
    # the venv's bin (airflow, spark-submit) comes first
    assert env["PATH"].split(":")[0].endswith("/bin") and env["PATH"].endswith("/usr/bin")


def test_spark_default_resolves_to_local_master_not_yarn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The URI form `spark://local[2]` silently becomes yarn; our JSON form must not."""
    env = airflow_env(_settings(tmp_path), base={})
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", env["AIRFLOW_CONN_SPARK_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    hook = SparkSubmitHook(conn_id="spark_default")
    cmd = hook._build_spark_submit_command("app.py")
    assert cmd[cmd.index("--master") + 1] == "local[2]"
    assert "--deploy-mode" not in cmd or cmd[cmd.index("--deploy-mode") + 1] == "client"


def test_spark_master_follows_settings(tmp_path: Path) -> None:
    env = airflow_env(_settings(tmp_path, KAFKALAKE_SPARK_MASTER="spark://spark-master:7077"), base={})
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])["host"] == "spark://spark-master:7077"
