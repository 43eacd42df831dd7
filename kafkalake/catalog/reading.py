"""Reading the lake from Python without a JVM: pyiceberg on the platform's catalog.

docs/architecture.md: Any engine reads the lake. These helpers are conveniences for the CLI,
the demo and the tests; a user needs none of them (``SqlCatalog(...).load_table(...).scan()``
does the same). pyiceberg reads Parquet data files only: a table of Avro data files
(``sink_format: avro``) is read with Spark SQL or another engine with Avro support.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kafkalake.catalog.config import CatalogError, catalog_config, open_catalog
from kafkalake.config import Settings

if TYPE_CHECKING:
    import pyarrow as pa


def load(settings: Settings, table: str) -> Any:
    """The pyiceberg ``Table``; a missing one is one line naming it."""
    from pyiceberg.exceptions import NoSuchTableError

    config = catalog_config(settings)
    try:
        return open_catalog(settings).load_table(f"{config.namespace}.{table}")
    except NoSuchTableError:
        raise CatalogError(
            f"no table {config.identifier(table)}: it is created when its stream first starts "
            f"(`kafkalake stream run NAME`)"
        ) from None


def scan_arrow(settings: Settings, table: str, *, columns: tuple[str, ...] = ("*",), row_filter: str = "") -> pa.Table:
    """Rows of ``table`` as Arrow (``row_filter``: pyiceberg's SQL-like filter, e.g. ``"schema_version = 1"``)."""
    loaded = load(settings, table)
    if any(f.file_format.lower() != "parquet" for f in _data_files(loaded)):
        raise CatalogError(
            f"{catalog_config(settings).identifier(table)} has Avro data files, which pyiceberg cannot read: "
            "query it with `kafkalake sql` (Spark SQL)"
        )
    scan = loaded.scan(selected_fields=columns, row_filter=row_filter) if row_filter else loaded.scan(
        selected_fields=columns)
    return scan.to_arrow()


def row_count(settings: Settings, table: str) -> int:
    """Rows of ``table`` from its metadata (the current snapshot's summary): no data read."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        snapshot = load(settings, table).current_snapshot()
    except (CatalogError, NoSuchTableError):
        return 0
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.get("total-records", 0))


def _data_files(table: Any) -> list[Any]:
    snapshot = table.current_snapshot()
    if snapshot is None:
        return []
    return [entry.data_file for manifest in snapshot.manifests(table.io)
            for entry in manifest.fetch_manifest_entry(table.io)][:1]


def tables(settings: Settings) -> list[dict[str, Any]]:
    """Every table of the catalog's namespace with its current snapshot's figures."""
    catalog = open_catalog(settings)
    namespace = catalog_config(settings).namespace
    rows = []
    for ident in sorted(catalog.list_tables(namespace)):
        table = catalog.load_table(ident)
        snapshot = table.current_snapshot()
        summary = (snapshot.summary if snapshot else None) or {}
        rows.append({
            "table": ".".join(ident),
            "format": table.properties.get("write.format.default", "parquet"),
            "snapshots": len(table.snapshots()),
            "rows": int(summary.get("total-records", 0)),
            "files": int(summary.get("total-data-files", 0)),
            "bytes": int(summary.get("total-files-size", 0)),
        })
    return rows
