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


def test_every_variable_overrides_its_field(tmp_path: Path) -> None:
    env = {
        "KAFKALAKE_HOME": str(tmp_path / "h"),
        "KAFKALAKE_STATE_DIR": str(tmp_path / "s"),
        "KAFKALAKE_BOOTSTRAP_SERVERS": "kafka:9092,kafka2:9092",
        "KAFKALAKE_KAFKA_CONTROLLER_PORT": "19093",
        "KAFKALAKE_LAKE_ROOT": str(tmp_path / "lake"),
        "KAFKALAKE_SCHEMAS_DIR": str(tmp_path / "reg"),
        "KAFKALAKE_STREAMS_FILE": str(tmp_path / "streams.yaml"),
        "KAFKALAKE_SPARK_MASTER": "spark://m:7077",
        "KAFKALAKE_JARS_DIR": str(tmp_path / "jars"),
        "KAFKALAKE_AIRFLOW_HOME": str(tmp_path / "af"),
        "KAFKALAKE_AIRFLOW_HOST": "0.0.0.0",
        "KAFKALAKE_AIRFLOW_PORT": "18080",
        "KAFKALAKE_COMPACTION_SCHEDULE": "15 * * * *",
    }
    assert set(env) == set(ENV_VARS)
    s = Settings.from_env(env)
    # to_env reproduces exactly what was given: a child process sees the same platform
    assert s.to_env() == env
    assert Settings.from_env(s.to_env()) == s
    assert s.bootstrap_host_port == ("kafka", 9092)


def test_blank_values_fall_back_to_defaults(tmp_path: Path) -> None:
    s = Settings.from_env({"KAFKALAKE_HOME": str(tmp_path), "KAFKALAKE_SPARK_MASTER": "  "})
    assert s.spark_master == "local[2]"


def test_bad_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not an integer"):
        Settings.from_env({"KAFKALAKE_AIRFLOW_PORT": "eighty"})


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
