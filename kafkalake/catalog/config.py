"""The one Iceberg catalog of a platform: how Spark and Python reach it.

docs/architecture.md: Any engine reads the lake.

The embedded default is Iceberg's JDBC catalog on a SQLite file in the state folder, with the
warehouse under the lake root: Spark (``org.apache.iceberg.jdbc.JdbcCatalog`` + sqlite-jdbc)
and Python (pyiceberg's ``SqlCatalog`` on the same file) see the same tables, no server. On
several hosts the same catalog runs on PostgreSQL (``jdbc:postgresql://...``). Both sides
write the catalog's V1 table layout (an ``iceberg_type`` column; Java migrates a V0 file on
start, pyiceberg leaves the column null, which Java reads as a table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from kafkalake.config import Settings
from kafkalake.errors import ExitCode, KafkalakeError

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_URI_SCHEMES = ("file", "s3", "s3a", "gs", "abfs", "abfss", "hdfs")
#: how long a SQLite writer waits for another one's lock before the commit is retried (a commit holds
#: it for milliseconds; with the retries of ``with_retry`` a catalog locked for over a minute fails
#: the writer loudly)
SQLITE_BUSY_TIMEOUT_MS = 5_000


class CatalogError(KafkalakeError):
    """The catalog settings are wrong or the catalog cannot be reached; the message says what to fix."""

    exit_code = ExitCode.SETUP


@dataclass(frozen=True)
class CatalogConfig:
    """Where the catalog is and what it is called (from :class:`kafkalake.config.Settings`)."""

    name: str
    uri: str
    warehouse: str
    namespace: str

    @classmethod
    def from_settings(cls, settings: Settings) -> CatalogConfig:
        """Validated: a bad name, URI or warehouse fails here with one line naming the variable."""
        for value, var in ((settings.catalog_name, "KAFKALAKE_CATALOG"), (settings.namespace, "KAFKALAKE_NAMESPACE")):
            if not _NAME.match(value):
                raise CatalogError(f"{var}={value!r} must be a letter or _ followed by letters, digits or _")
        uri = settings.catalog_jdbc_uri
        if not (uri.startswith("jdbc:sqlite:") or uri.startswith("jdbc:postgresql://")):
            raise CatalogError(
                f"KAFKALAKE_CATALOG_URI={uri!r} is not a JDBC catalog URI: use jdbc:sqlite:/path/to/catalog.db "
                "or jdbc:postgresql://host:5432/database"
            )
        if uri.startswith("jdbc:sqlite:"):
            path = uri.removeprefix("jdbc:sqlite:").split("?", 1)[0]
            if not path.startswith("/"):
                raise CatalogError(f"KAFKALAKE_CATALOG_URI={uri!r}: the SQLite file must be an absolute path")
        return cls(settings.catalog_name, uri, _warehouse_uri(settings.warehouse_location), settings.namespace)

    @property
    def is_sqlite(self) -> bool:
        return self.uri.startswith("jdbc:sqlite:")

    @property
    def sqlite_file(self) -> Path | None:
        return Path(self.uri.removeprefix("jdbc:sqlite:").split("?", 1)[0]) if self.is_sqlite else None

    def identifier(self, table: str) -> str:
        """``<catalog>.<namespace>.<table>``: what Spark SQL names the table."""
        return f"{self.name}.{self.namespace}.{table}"

    def spark_conf(self) -> dict[str, str]:
        """The ``--conf`` entries that give a Spark session this catalog (and Iceberg's SQL)."""
        prefix = f"spark.sql.catalog.{self.name}"
        conf = {
            "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
            prefix: "org.apache.iceberg.spark.SparkCatalog",
            f"{prefix}.type": "jdbc",
            f"{prefix}.uri": self.uri,
            f"{prefix}.warehouse": self.warehouse,
            f"{prefix}.jdbc.schema-version": "V1",
        }
        if self.is_sqlite:
            conf[f"{prefix}.jdbc.busy_timeout"] = str(SQLITE_BUSY_TIMEOUT_MS)
        return conf

    def prepare_local(self) -> None:
        """Create the SQLite file's folder and a local warehouse folder (nothing for servers)."""
        if self.sqlite_file is not None:
            self.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        if self.warehouse.startswith("file:"):
            Path(urlparse(self.warehouse).path).mkdir(parents=True, exist_ok=True)

    def pyiceberg_properties(self) -> dict[str, Any]:
        """Properties of pyiceberg's ``SqlCatalog`` on the same database."""
        if self.is_sqlite:
            uri = f"sqlite:///{self.sqlite_file}"
        else:
            uri = "postgresql+psycopg2://" + self.uri.removeprefix("jdbc:postgresql://")
        return {"uri": uri, "warehouse": self.warehouse}


def _warehouse_uri(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme in _URI_SCHEMES:
        return value if parsed.scheme != "file" else Path(parsed.path).as_uri()
    if parsed.scheme:
        raise CatalogError(
            f"KAFKALAKE_WAREHOUSE={value!r}: scheme {parsed.scheme!r} is not one of {', '.join(_URI_SCHEMES)}"
        )
    if not value.startswith("/"):
        raise CatalogError(f"KAFKALAKE_WAREHOUSE={value!r} must be an absolute path or a URI (file:, s3:, ...)")
    return Path(value).as_uri()


def catalog_config(settings: Settings) -> CatalogConfig:
    return CatalogConfig.from_settings(settings)


def open_catalog(settings: Settings) -> SqlCatalog:
    """pyiceberg's view of the catalog: list, load and scan tables from Python, no JVM."""
    from pyiceberg.catalog.sql import SqlCatalog

    config = catalog_config(settings)
    if config.sqlite_file is not None and not config.sqlite_file.is_file():
        raise CatalogError(
            f"no Iceberg catalog at {config.sqlite_file}: start a stream first (it creates its tables), "
            "or check KAFKALAKE_CATALOG_URI"
        )
    try:
        return SqlCatalog(config.name, **config.pyiceberg_properties())
    except ModuleNotFoundError as exc:
        raise CatalogError(f"pyiceberg cannot open {config.uri}: {exc}; install its driver (pip install "
                           "'pyiceberg[sql-postgres]' for PostgreSQL)") from None
