from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kafkalake.config import ENV_VARS, ConfigError, Settings


def test_local_defaults_derive_from_home_and_state(tmp_path: Path) -> None:
    s = Settings.from_env({"KAFKALAKE_HOME": str(tmp_path)})
    assert s.state_dir == tmp_path / ".kafkalake"
    assert s.lake_root == tmp_path / ".kafkalake" / "lake"
    assert s.jars_dir == tmp_path / ".kafkalake" / "jars"
    assert s.airflow_home == tmp_path / ".kafkalake" / "airflow"
    assert s.schemas_dir == tmp_path / "schemas"
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.spark_master == "local[2]"
    assert s.airflow_url == "http://127.0.0.1:8080"
    assert s.registry_url == "http://127.0.0.1:8081"
    assert s.registry_allow_register is False
    assert s.catalog_jdbc_uri == f"jdbc:sqlite:{tmp_path / '.kafkalake' / 'catalog' / 'iceberg.db'}"
    assert s.warehouse_location == str(tmp_path / ".kafkalake" / "lake" / "warehouse")


def test_every_variable_overrides_its_field(tmp_path: Path) -> None:
    env = {
        "KAFKALAKE_HOME": str(tmp_path / "h"),
        "KAFKALAKE_STATE_DIR": str(tmp_path / "s"),
        "KAFKALAKE_BOOTSTRAP_SERVERS": "kafka:9092,kafka2:9092",
        "KAFKALAKE_KAFKA_CONTROLLER_PORT": "19093",
        "KAFKALAKE_LAKE_ROOT": str(tmp_path / "lake"),
        "KAFKALAKE_CATALOG": "lakehouse",
        "KAFKALAKE_CATALOG_URI": "jdbc:postgresql://db:5432/iceberg",
        "KAFKALAKE_WAREHOUSE": "s3://bucket/warehouse",
        "KAFKALAKE_NAMESPACE": "streams",
        "KAFKALAKE_SCHEMAS_DIR": str(tmp_path / "reg"),
        "KAFKALAKE_STREAMS_FILE": str(tmp_path / "streams.yaml"),
        "KAFKALAKE_SPARK_MASTER": "spark://m:7077",
        "KAFKALAKE_JARS_DIR": str(tmp_path / "jars"),
        "KAFKALAKE_AIRFLOW_HOME": str(tmp_path / "af"),
        "KAFKALAKE_AIRFLOW_HOST": "0.0.0.0",
        "KAFKALAKE_AIRFLOW_PORT": "18080",
        "KAFKALAKE_COMPACTION_SCHEDULE": "15 * * * *",
        "KAFKALAKE_REGISTRY_HOST": "0.0.0.0",
        "KAFKALAKE_REGISTRY_PORT": "18081",
        "KAFKALAKE_REGISTRY_ALLOW_REGISTER": "true",
        "KAFKALAKE_CLUSTER": "false",
        "KAFKALAKE_HOST_NAME": "worker-7",
    }
    assert set(env) == set(ENV_VARS)
    s = Settings.from_env(env)
    # to_env reproduces exactly what was given: a child process sees the same platform
    assert s.to_env() == env
    assert Settings.from_env(s.to_env()) == s
    assert s.bootstrap_host_port == ("kafka", 9092)


def test_a_cluster_gets_three_brokers_and_a_standalone_master(tmp_path: Path) -> None:
    single = Settings.from_env({"KAFKALAKE_HOME": str(tmp_path)})
    assert not single.cluster and single.replication_factor == 1
    assert single.kafka_nodes == [(1, "127.0.0.1", 9092, 9093)]
    s = Settings.from_env({"KAFKALAKE_HOME": str(tmp_path), "KAFKALAKE_CLUSTER": "true"})
    assert s.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert s.kafka_nodes == [(1, "127.0.0.1", 9092, 9093), (2, "127.0.0.1", 9094, 9095), (3, "127.0.0.1", 9096, 9097)]
    assert s.spark_master == "spark://127.0.0.1:7077" and s.replication_factor == 3
    # a child process sees the same cluster
    assert Settings.from_env(s.to_env()) == s
    # brokers given by the user stay; so does a spark:// master
    chosen = Settings.from_env({"KAFKALAKE_HOME": str(tmp_path), "KAFKALAKE_CLUSTER": "1",
                                "KAFKALAKE_BOOTSTRAP_SERVERS": "h:1,h:5,h:9", "KAFKALAKE_SPARK_MASTER": "spark://m:1"})
    assert [n[2] for n in chosen.kafka_nodes] == [1, 5, 9] and chosen.spark_master == "spark://m:1"
    # `kafkalake up --cluster` marks the state folder: later commands there see the cluster
    marker = tmp_path / ".kafkalake" / "run" / "cluster"
    marker.parent.mkdir(parents=True)
    marker.write_text("")
    assert Settings.from_env({"KAFKALAKE_HOME": str(tmp_path)}).cluster
    assert not Settings.from_env({"KAFKALAKE_HOME": str(tmp_path), "KAFKALAKE_CLUSTER": "false"}).cluster


def test_blank_values_fall_back_to_defaults(tmp_path: Path) -> None:
    s = Settings.from_env({"KAFKALAKE_HOME": str(tmp_path), "KAFKALAKE_SPARK_MASTER": "  "})
    assert s.spark_master == "local[2]"


def test_bad_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not an integer"):
        Settings.from_env({"KAFKALAKE_AIRFLOW_PORT": "eighty"})


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("1", True), ("ON", True), ("false", False),
                                               ("no", False), ("", False)])
def test_allow_register_reads_the_usual_spellings(text: str, expected: bool) -> None:
    assert Settings.from_env({"KAFKALAKE_REGISTRY_ALLOW_REGISTER": text}).registry_allow_register is expected


def test_a_misspelt_flag_is_a_config_error_not_false() -> None:
    with pytest.raises(ConfigError, match="KAFKALAKE_REGISTRY_ALLOW_REGISTER='yess' is not a boolean"):
        Settings.from_env({"KAFKALAKE_REGISTRY_ALLOW_REGISTER": "yess"})


def test_bad_bootstrap_servers_is_a_config_error() -> None:
    s = Settings.from_env({"KAFKALAKE_BOOTSTRAP_SERVERS": "localhost"})
    with pytest.raises(ConfigError, match="host:port"):
        _ = s.bootstrap_host_port


def _code_strings(tree: ast.AST) -> list[str]:
    """String constants in code, docstrings excluded (prose may name a default)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_host_port_or_path_literal_outside_config() -> None:
    """Hosts, ports and state paths are written only in kafkalake/config.py."""
    repo = Path(__file__).resolve().parents[2]
    offenders = []
    sources = [*(repo / "kafkalake").rglob("*.py"), *(repo / "dags").glob("*.py"), *(repo / "spark_jobs").glob("*.py")]
    assert len(sources) > 10
    for path in sources:
        if path.name == "config.py":
            continue
        for text in _code_strings(ast.parse(path.read_text())):
            for literal in ("127.0.0.1", "localhost", ":9092", ":8080", ".kafkalake", "local[2]"):
                if literal in text:
                    offenders.append(f"{path.relative_to(repo)}: {text!r}")
    assert offenders == []
