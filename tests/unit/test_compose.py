"""docker-compose.yaml: the multi-node shape stays consistent with the code and with itself.

No Docker here: these tests read the file and check what a reviewer would check by eye.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kafkalake.config import ENV_VARS

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"

REQUIRED_SERVICES = {
    "kafka",
    "spark-master",
    "spark-worker",
    "postgres",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
AIRFLOW_SERVICES = sorted(s for s in REQUIRED_SERVICES if s.startswith("airflow-"))
CODE_FOLDERS = ("dags", "spark_jobs", "schemas", "plugins")
SHARED_SETTINGS = (
    "KAFKALAKE_BOOTSTRAP_SERVERS",
    "KAFKALAKE_SPARK_MASTER",
    "KAFKALAKE_LAKE_ROOT",
    "KAFKALAKE_SCHEMAS_DIR",
    "KAFKALAKE_STATE_DIR",
)
DEPENDS_ON_CONDITIONS = {"service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def is_one_shot(name: str) -> bool:
    return name.endswith("-init")


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """The environment as a dict, whether written as a mapping or a KEY=VALUE list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def mounts_of(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of each volume, short (`src:dst[:mode]`) or long syntax."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume.get("source", "")
        else:
            source, target, *_ = volume.split(":")
            mounts[target] = source
    return mounts


def as_text(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value or "")


def test_required_services_present(services: dict[str, Any]) -> None:
    assert REQUIRED_SERVICES <= services.keys(), REQUIRED_SERVICES - services.keys()


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    missing = [
        name
        for name, service in services.items()
        if not is_one_shot(name) and not (service.get("healthcheck") or {}).get("test")
    ]
    assert missing == []


def test_one_shot_services_do_not_restart(services: dict[str, Any]) -> None:
    one_shots = [name for name in services if is_one_shot(name)]
    assert one_shots, "expected an airflow-init one-shot service"
    for name in one_shots:
        assert str(services[name].get("restart", "no")) in {"no", "False"}, name


def test_depends_on_uses_conditions_on_existing_services(services: dict[str, Any]) -> None:
    checked = 0
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on must be a mapping with conditions"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert dependency != name
            condition = (spec or {}).get("condition")
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {dependency}: {condition!r}"
            if is_one_shot(dependency):
                assert condition == "service_completed_successfully", f"{name} -> {dependency}"
            else:
                assert condition == "service_healthy", f"{name} -> {dependency}"
            checked += 1
    assert checked > 0


def test_airflow_services_wait_for_init_and_database(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        depends_on = services[name].get("depends_on") or {}
        assert "postgres" in depends_on, name
        assert "airflow-init" in depends_on, name


def test_kafkalake_variable_names_match_config(compose_text: str) -> None:
    used = set(re.findall(r"\bKAFKALAKE_[A-Z0-9_]+", compose_text))
    assert used, "the compose file should speak the KAFKALAKE_* names"
    assert used - ENV_VARS.keys() == set()


def test_shared_anchor_sets_the_platform_settings(compose: dict[str, Any], services: dict[str, Any]) -> None:
    anchor = compose["x-kafkalake-common"]
    env = env_of(anchor)
    for name in SHARED_SETTINGS:
        assert env.get(name), f"x-kafkalake-common does not set {name}"
    # Every service running kafkalake code sees the same values.
    for name in ["spark-master", "spark-worker", *AIRFLOW_SERVICES]:
        service_env = env_of(services[name])
        for key in SHARED_SETTINGS:
            assert service_env.get(key) == env[key], f"{name}: {key}"


def test_settings_point_at_compose_services(compose: dict[str, Any], services: dict[str, Any]) -> None:
    env = env_of(compose["x-kafkalake-common"])
    for server in env["KAFKALAKE_BOOTSTRAP_SERVERS"].split(","):
        assert server.rpartition(":")[0] in services, server
    master = env["KAFKALAKE_SPARK_MASTER"]
    assert master.startswith("spark://")
    assert master.removeprefix("spark://").rpartition(":")[0] in services, master


def test_airflow_mounts_the_code_folders(services: dict[str, Any]) -> None:
    for folder in CODE_FOLDERS:
        assert (REPO / folder).is_dir(), f"{folder}/ is not a folder of the repo"
    for name in AIRFLOW_SERVICES:
        sources = set(mounts_of(services[name]).values())
        for folder in CODE_FOLDERS:
            assert f"./{folder}" in sources, f"{name} does not mount ./{folder}"


def test_bind_mount_sources_are_repo_folders(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for source in mounts_of(service).values():
            if source.startswith("./") and source.removeprefix("./").split("/")[0] in CODE_FOLDERS:
                assert (REPO / source).is_dir(), f"{name}: {source}"


def test_schemas_mounted_where_the_settings_say(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        mounts = mounts_of(services[name])
        assert mounts.get(env["KAFKALAKE_SCHEMAS_DIR"]) == "./schemas", name


def test_lake_volume_shared_by_spark_worker_and_airflow(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    assert "lake" in (compose.get("volumes") or {}), "`lake` must be a named volume"
    for name in ["spark-worker", *AIRFLOW_SERVICES]:
        env = env_of(services[name])
        mounts = mounts_of(services[name])
        assert mounts.get(env["KAFKALAKE_LAKE_ROOT"]) == "lake", f"{name} does not mount the lake volume"


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source in mounts_of(service).values():
            if source and not source.startswith(("/", ".", "$", "~")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_spark_connection_is_json_with_a_spark_master(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        conn = json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])
        assert conn["conn_type"] == "spark"
        assert conn["host"].startswith("spark://")
        assert conn["host"] == env["KAFKALAKE_SPARK_MASTER"], name


def test_kafka_connection_uses_the_bootstrap_servers(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        conn = json.loads(env["AIRFLOW_CONN_KAFKA_DEFAULT"])
        assert conn["conn_type"] == "kafka"
        assert conn["extra"]["bootstrap.servers"] == env["KAFKALAKE_BOOTSTRAP_SERVERS"], name


def test_airflow_configured_through_env(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == f"{env['KAFKALAKE_HOME']}/dags"
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == f"{env['KAFKALAKE_HOME']}/plugins"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:")
        assert env.get("AIRFLOW__API_AUTH__JWT_SECRET"), f"{name}: containers must share one JWT secret"


def test_no_pip_install_at_container_start(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for key in ("command", "entrypoint"):
            assert "pip install" not in as_text(service.get(key)), f"{name}.{key}"
        assert not env_of(service).get("_PIP_ADDITIONAL_REQUIREMENTS"), name
