"""The JVM side: find Java, and the Maven-managed jars (see jvm/pom.xml).

Spark's Kafka source and Avro functions are not in the pyspark wheel; Maven copies them (and
the Kafka broker) into ``<jars_dir>/<module>/``. Nothing is resolved at run time (no Ivy).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from kafkalake.config import Settings
from kafkalake.errors import SetupError

SPARK_CONNECTORS = "spark-connectors"
KAFKA_BROKER = "kafka-broker"
MIN_JAVA = 17

_VERSION_SUFFIX = re.compile(r"-\d+\.\d+[\w.\-]*\.jar$")


def find_java() -> Path:
    """The java binary: $JAVA_HOME/bin/java, else the one on PATH, and it must be >= 17."""
    java_home = os.environ.get("JAVA_HOME", "").strip()
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is None or not candidate.is_file():
        found = shutil.which("java")
        candidate = Path(found) if found else None
    if candidate is None:
        raise SetupError(
            "java not found (no $JAVA_HOME/bin/java, none on PATH): install Java 17 "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    major = java_major_version(candidate)
    if major < MIN_JAVA:
        raise SetupError(f"{candidate} is Java {major}; Kafka 4 and Spark 4 need Java {MIN_JAVA}+: set JAVA_HOME")
    return candidate


def java_major_version(java: Path) -> int:
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except OSError as exc:
        raise SetupError(f"cannot run {java}: {exc.strerror}; install Java 17 or fix JAVA_HOME") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise SetupError(f"cannot read the Java version from `{java} -version`: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def module_jars(settings: Settings, module: str) -> list[Path]:
    """All jars Maven copied for one module; a clear error when `make jars` never ran."""
    folder = settings.jars_dir / module
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise SetupError(f"no jars in {folder}: run `make jars` (Maven copies them from Maven Central)")
    return jars


def artifact_name(jar: Path) -> str:
    """``kafka-clients-3.9.1.jar`` -> ``kafka-clients``."""
    return _VERSION_SUFFIX.sub("", jar.name)


def pyspark_jars_dir() -> Path:
    """The jars folder inside the installed pyspark wheel (found without importing pyspark)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError("pyspark is not installed in this Python: run `make venv`")
    return Path(next(iter(spec.submodule_search_locations))) / "jars"


def spark_connector_jars(settings: Settings) -> list[Path]:
    """Connector jars to pass with ``--jars``: those the pyspark wheel does not ship already.

    Passing a second copy of, say, hadoop-client-runtime or scala-library puts two versions
    of one class on the classpath; the wheel's copies win and are the ones Spark was built with.
    """
    bundled = {artifact_name(jar) for jar in pyspark_jars_dir().glob("*.jar")}
    return [jar for jar in module_jars(settings, SPARK_CONNECTORS) if artifact_name(jar) not in bundled]


def spark_jars_arg(settings: Settings) -> str:
    """The comma-separated ``--jars`` value (what SparkSubmitOperator's ``jars`` takes)."""
    return ",".join(str(jar) for jar in spark_connector_jars(settings))
