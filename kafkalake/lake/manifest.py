"""The lake zone's manifest: which version folder holds each published hour."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kafkalake._files import write_json_atomic
from kafkalake.lake.tables import LakeError, TablePaths


def read_manifest(paths: TablePaths) -> dict[str, Any]:
    """The table's manifest (an empty one before the first publish)."""
    try:
        doc = json.loads(paths.manifest.read_text())
    except FileNotFoundError:
        return {"version": 1, "table": paths.name, "format": paths.fmt, "hours": {}, "retired": []}
    except json.JSONDecodeError as exc:
        raise LakeError(f"{paths.manifest} is not valid JSON ({exc}); restore it from the journal or backup") from None
    return doc


def write_manifest(paths: TablePaths, doc: dict[str, Any]) -> None:
    """Atomic: write a temp file, fsync, rename over the manifest, fsync the folder."""
    write_json_atomic(paths.manifest, {**doc, "updated_at": time.time()}, indent=1)


def lake_files(paths: TablePaths, manifest: dict[str, Any] | None = None) -> dict[str, list[Path]]:
    """``{hour key: [files]}`` of the hours the manifest publishes."""
    manifest = read_manifest(paths) if manifest is None else manifest
    return {key: [paths.lake / entry["dir"] / f for f in entry["files"]] for key, entry in manifest["hours"].items()}
