"""Reading a file sink's commit log like Spark does (compact files, deletes, leftovers)."""

from __future__ import annotations

import json
from pathlib import Path

from kafkalake.lake.landing import committed_entries, committed_files


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


def test_a_new_batch_is_seen_though_the_parsed_log_is_kept_and_every_uri_form_reads(tmp_path: Path) -> None:
    meta = tmp_path / "_spark_metadata"
    meta.mkdir()
    _log(meta / "0", _add("/lake/zone%3Dlanding/a.parquet"), {**_add("x"), "path": "file:/lake/b.parquet"},
         {**_add("x"), "path": "hdfs://nn:8020/lake/c%25.parquet"})
    first = committed_entries(tmp_path)
    assert list(first) == [Path("/lake/zone=landing/a.parquet"), Path("/lake/b.parquet"), Path("/lake/c%.parquet")]
    first.clear()  # a caller changing its copy changes nothing for the next one
    assert len(committed_entries(tmp_path)) == 3
    _log(meta / "1", {**_add("/lake/zone%3Dlanding/a.parquet"), "action": "delete"}, _add("/lake/d.parquet"))
    assert committed_files(tmp_path) == [Path("/lake/b.parquet"), Path("/lake/c%.parquet"), Path("/lake/d.parquet")]
    _log(meta / "1", _add("/lake/d.parquet"), _add("/lake/e.parquet"))  # same name, other content (size)
    assert committed_files(tmp_path)[-1] == Path("/lake/e.parquet")


def test_no_commit_log_means_no_files(tmp_path: Path) -> None:
    (tmp_path / "part-0.parquet").write_bytes(b"x")
    assert committed_files(tmp_path) == []


def test_the_arrow_read_path_takes_int96_and_micros_timestamps_side_by_side(tmp_path: Path) -> None:
    """Spark writes INT96 timestamps by default, kafkalake's jobs TIMESTAMP_MICROS: a landing (or
    lake) with files of both writers has both kinds, and pyarrow cannot merge them unaided."""
    import pyarrow.parquet as pq

    from kafkalake.config import Settings
    from kafkalake.lake.read import read_table_arrow
    from kafkalake.lake.tables import resolve_table
    from kafkalake.testing.lakegen import generate_landing, hours_before

    (tmp_path / "streams.yaml").write_text(
        json.dumps({"streams": [{"name": "fr", "topics": ["t"], "subject": "fridge"}]})
    )
    settings = Settings.from_env({"KAFKALAKE_STATE_DIR": str(tmp_path / "state"),
                                  "KAFKALAKE_STREAMS_FILE": str(tmp_path / "streams.yaml")})
    _stream, paths = resolve_table(settings, "fr")
    generate_landing(paths.landing, hours_before(count=1), files_per_hour=2, rows_per_file=50, batches=1)
    expected = read_table_arrow("fr", settings=settings).sort_by("offset")
    old = committed_files(paths.landing)[0]
    pq.write_table(pq.read_table(old), old, use_deprecated_int96_timestamps=True)  # as Spark's INT96 default wrote it
    assert str(pq.read_schema(old).field("timestamp").type) == "timestamp[ns]"
    mixed = read_table_arrow("fr", settings=settings).sort_by("offset")
    assert mixed.num_rows == 100
    assert mixed["timestamp"].to_pylist() == expected["timestamp"].to_pylist()
    assert mixed.column_names == expected.column_names
