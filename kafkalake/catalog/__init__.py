"""The Iceberg catalog: one per platform, the only storage readers use.

docs/architecture.md: Any engine reads the lake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.catalog.config import CatalogConfig, CatalogError, catalog_config, open_catalog
    from kafkalake.catalog.iceberg import (
        CatalogUnavailable,
        Housekeeping,
        TableSpec,
        ensure_table,
        housekeep,
        last_committed_batch,
        load_table,
        with_retry,
    )

_EXPORTS = {
    "CatalogConfig": "config",
    "CatalogError": "config",
    "catalog_config": "config",
    "open_catalog": "config",
    "CatalogUnavailable": "iceberg",
    "Housekeeping": "iceberg",
    "TableSpec": "iceberg",
    "ensure_table": "iceberg",
    "housekeep": "iceberg",
    "last_committed_batch": "iceberg",
    "load_table": "iceberg",
    "with_retry": "iceberg",
}
__all__ = [
    "CatalogConfig",
    "CatalogError",
    "CatalogUnavailable",
    "Housekeeping",
    "TableSpec",
    "catalog_config",
    "ensure_table",
    "housekeep",
    "last_committed_batch",
    "load_table",
    "open_catalog",
    "with_retry",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
