"""docker-compose.yaml: the multi-node shape stays consistent with the code and with itself.

No Docker here: these tests validate the file against the Compose specification's JSON schema
(tests/fixtures/compose-spec.json, its origin in compose-spec.SOURCE) and check what a reviewer
would check by eye: the 3-broker KRaft quorum, Spark master + 2 workers, PostgreSQL behind
Airflow and the catalog, healthchecks and start order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kafkalake.config import ENV_VARS

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
COMPOSE_SPEC = REPO / "tests" / "fixtures" / "compose-spec.json"
COMPOSE_SPEC_SOURCE = REPO / "tests" / "fixtures" / "compose-spec.SOURCE"

BROKERS = ("kafka-1", "kafka-2", "kafka-3")
SPARK_WORKERS = ("spark-worker-1", "spark-worker-2")
REGISTRY = "schema-registry"
REQUIRED_SERVICES = {
    *BROKERS,
    "spark-master",
    *SPARK_WORKERS,
    "postgres",
    REGISTRY,
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
AIRFLOW_SERVICES = sorted(s for s in REQUIRED_SERVICES if s.startswith("airflow-"))
#: services that run kafkalake code and so share x-kafkalake-common's settings
KAFKALAKE_SERVICES = ["spark-master", *SPARK_WORKERS, REGISTRY, *AIRFLOW_SERVICES]
CODE_FOLDERS = ("dags", "spark_jobs", "schemas", "plugins")
SHARED_SETTINGS = (
    "KAFKALAKE_BOOTSTRAP_SERVERS",
    "KAFKALAKE_SPARK_MASTER",
    "KAFKALAKE_LAKE_ROOT",
    "KAFKALAKE_CATALOG_URI",
    "KAFKALAKE_WAREHOUSE",
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
    for name in KAFKALAKE_SERVICES:
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
    for name in [*SPARK_WORKERS, *AIRFLOW_SERVICES]:
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


# --- the Compose specification -------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SPEC.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_compose_spec_fixture_names_its_source() -> None:
    source = COMPOSE_SPEC_SOURCE.read_text()
    assert "github.com/compose-spec/compose-go" in source
    assert re.search(r"\bv2\.\d+\.\d+\b", source), "the vendored schema's version"
    assert json.loads(COMPOSE_SPEC.read_text())["title"] == "Compose Specification"


def test_file_follows_the_compose_specification(
    compose: dict[str, Any], compose_validator: jsonschema.protocols.Validator
) -> None:
    errors = [f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
              for error in compose_validator.iter_errors(compose)]
    assert errors == []


@pytest.mark.parametrize(
    ("where", "broken"),
    [
        ("a misspelt service key", {"healthchek": {"test": ["CMD", "true"]}}),
        ("a depends_on condition Compose does not know", {"depends_on": {"postgres": {"condition": "healthy"}}}),
        ("a healthcheck without a test list or string", {"healthcheck": {"test": 1}}),
    ],
)
def test_the_schema_refuses_what_compose_refuses(
    compose: dict[str, Any], compose_validator: jsonschema.protocols.Validator, where: str, broken: dict[str, Any]
) -> None:
    doc = json.loads(json.dumps(compose))
    doc["services"]["postgres"].update(broken)
    assert not compose_validator.is_valid(doc), where


# --- the multi-node shape ------------------------------------------------------------------


def test_three_kraft_nodes_form_one_three_voter_quorum(services: dict[str, Any]) -> None:
    envs = {name: env_of(services[name]) for name in BROKERS}
    node_ids = {name: env["KAFKA_NODE_ID"] for name, env in envs.items()}
    assert len(set(node_ids.values())) == 3, node_ids
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1, "one cluster id"
    quorums = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs.values()}
    assert len(quorums) == 1, "every node must name the same voters"
    voters = dict(voter.split("@", 1) for voter in quorums.pop().split(","))
    assert len(voters) == 3
    for name, env in envs.items():
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller", name
        assert voters[node_ids[name]].rpartition(":")[0] == name, f"{name} is not the voter of its node id"
        controller_port = voters[node_ids[name]].rpartition(":")[2]
        assert f"CONTROLLER://:{controller_port}" in env["KAFKA_LISTENERS"], name
        assert f"PLAINTEXT://{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"], name


def test_brokers_replicate_three_ways_with_min_isr_two(services: dict[str, Any]) -> None:
    for name in BROKERS:
        env = env_of(services[name])
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3", name
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2", name
        for internal in ("OFFSETS_TOPIC", "TRANSACTION_STATE_LOG", "SHARE_COORDINATOR_STATE_TOPIC"):
            assert env[f"KAFKA_{internal}_REPLICATION_FACTOR"] == "3", f"{name}: {internal}"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2", name


def test_each_broker_keeps_its_own_log_volume(services: dict[str, Any]) -> None:
    sources = [mounts_of(services[name]).get(env_of(services[name])["KAFKA_LOG_DIRS"]) for name in BROKERS]
    assert all(sources) and len(set(sources)) == 3, sources


def test_bootstrap_servers_list_every_broker(compose: dict[str, Any]) -> None:
    servers = env_of(compose["x-kafkalake-common"])["KAFKALAKE_BOOTSTRAP_SERVERS"].split(",")
    assert sorted(server.rpartition(":")[0] for server in servers) == sorted(BROKERS)


def test_spark_master_and_two_workers(services: dict[str, Any]) -> None:
    master_command = as_text(services["spark-master"]["command"])
    assert "org.apache.spark.deploy.master.Master" in master_command
    master_url = env_of(services["spark-master"])["KAFKALAKE_SPARK_MASTER"]
    workers = [name for name, service in services.items()
               if "org.apache.spark.deploy.worker.Worker" in as_text(service.get("command"))]
    assert sorted(workers) == sorted(SPARK_WORKERS)
    for name in workers:
        command = services[name]["command"]
        assert command[-1] == master_url, name
        assert services[name]["depends_on"]["spark-master"]["condition"] == "service_healthy"


def test_start_order_waits_for_healthy_dependencies(services: dict[str, Any]) -> None:
    """The scheduler runs the Spark drivers: Kafka, the master and the workers are up first."""
    scheduler = services["airflow-scheduler"]["depends_on"]
    for dependency in [*BROKERS, "spark-master", *SPARK_WORKERS, "airflow-apiserver", "postgres"]:
        assert scheduler.get(dependency, {}).get("condition") == "service_healthy", dependency
    assert services["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_postgres_backs_airflow_and_the_catalog(compose: dict[str, Any], services: dict[str, Any]) -> None:
    pg_env = env_of(services["postgres"])
    database = pg_env["POSTGRES_DB"]
    catalog_uri = env_of(compose["x-kafkalake-common"])["KAFKALAKE_CATALOG_URI"]
    assert catalog_uri.startswith(f"jdbc:postgresql://postgres:5432/{database}"), catalog_uri
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        sql_conn = env_of(services[name])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert re.fullmatch(rf"postgresql\+psycopg2://{pg_env['POSTGRES_USER']}:[^@]+@postgres(:5432)?/{database}",
                            sql_conn), f"{name}: {sql_conn}"


def test_schema_registry_serves_the_registry_folder(services: dict[str, Any]) -> None:
    registry = services[REGISTRY]
    assert as_text(registry["command"]).endswith("kafkalake.cli registry serve")
    env = env_of(registry)
    assert env["KAFKALAKE_REGISTRY_HOST"] == "0.0.0.0"  # reachable from the other containers
    assert mounts_of(registry).get(env["KAFKALAKE_SCHEMAS_DIR"]) == "./schemas"
    port = env["KAFKALAKE_REGISTRY_PORT"]
    assert f"{port}:{port}" in registry["ports"]
    assert port in as_text(registry["healthcheck"]["test"])
    # the others reach it by its service name
    for name in AIRFLOW_SERVICES:
        assert env_of(services[name])["KAFKALAKE_REGISTRY_HOST"] == REGISTRY, name


def test_host_ports_do_not_collide(services: dict[str, Any]) -> None:
    """Spark's master UI listens on 8080 in its container; on the host 8080 is Airflow's, 8081 the registry's."""
    published: dict[str, str] = {}
    for name, service in services.items():
        for port in service.get("ports") or []:
            host_port = str(port).rsplit(":", 1)[0].rpartition(":")[2]
            assert host_port not in published, f"{name} and {published.get(host_port)} both publish {host_port}"
            published[host_port] = name
    assert published["8080"] == "airflow-apiserver" and published["8081"] == REGISTRY
