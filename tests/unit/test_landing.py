"""Reading a file sink's commit log like Spark does (compact files, deletes, leftovers)."""

from __future__ import annotations

import json
from pathlib import Path

from kafkalake.landing import committed_files


def _log(path: Path, *entries: dict) -> None:
    path.write_text("v1\n" + "".join(json.dumps(e) + "\n" for e in entries))


def _add(p: str) -> dict:
    return {"path": f"file://{p}", "size": 1, "isDir": False, "modificationTime": 1, "blockReplication": 1,
            "blockSize": 1, "action": "add"}


def test_only_logged_files_count_and_compact_files_replace_older_logs(tmp_path: Path) -> None:
    meta = tmp_path / "_spark_metadata"
    meta.mkdir()
    _log(meta / "8", _add("/lake/a-8.parquet"))  # older than the compact file: ignored
    _log(meta / "9.compact", _add("/lake/a.parquet"), _add("/lake/b%20c.parquet"))
    _log(meta / "10", _add("/lake/d.parquet"))
    _log(meta / "11", {**_add("/lake/a.parquet"), "action": "delete"}, _add("/lake/e.parquet"))
    (tmp_path / "zone=landing").mkdir()
    (tmp_path / "zone=landing" / "crashed-batch.parquet").write_bytes(b"leftover")
    assert committed_files(tmp_path) == [Path("/lake/b c.parquet"), Path("/lake/d.parquet"), Path("/lake/e.parquet")]


def test_no_commit_log_means_no_files(tmp_path: Path) -> None:
    (tmp_path / "part-0.parquet").write_bytes(b"x")
    assert committed_files(tmp_path) == []
