"""Compaction planning, DAG params and the report — the pure parts (no Spark)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kafkalake.compaction import report as compaction_report
from kafkalake.compaction.plan import plan_table
from kafkalake.compaction.run import dag_job_args
from kafkalake.config import Settings
from kafkalake.lake.tables import Hour, LakeError, resolve_table
from kafkalake.stream.config import StreamConfigError
from kafkalake.testing.lakegen import generate_landing, hours_before


def _settings(tmp_path: Path, **compaction: object) -> Settings:
    doc = {"streams": [{"name": "fr", "topics": ["t"], "subject": "fridge", "sink_format": "both",
                        "compaction": compaction}]}
    (tmp_path / "streams.yaml").write_text(json.dumps(doc))
    return Settings.from_env({"KAFKALAKE_STATE_DIR": str(tmp_path / "state"),
                              "KAFKALAKE_STREAMS_FILE": str(tmp_path / "streams.yaml")})


def test_hours_parse_from_iso_and_refuse_partial_hours() -> None:
    assert Hour.parse("2026-11-24T05:00Z") == Hour("2026-11-24", 5)
    assert Hour.parse("2026-11-24T05") == Hour("2026-11-24", 5)
    assert Hour.parse("2026-11-24T07:00:00+02:00") == Hour("2026-11-24", 5)
    assert Hour("2026-11-24", 23).end == datetime(2026, 11, 25, tzinfo=UTC)
    with pytest.raises(LakeError, match="not on a whole hour"):
        Hour.parse("2026-11-24T05:30Z")
    with pytest.raises(LakeError, match="not an hour"):
        Hour.parse("yesterday")


def test_dag_params_become_job_arguments(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    plan = dag_job_args(settings, {"table": "all", "dry_run": False}, run_id="scheduled__2026-11-24T05:00:00+00:00",
                        run_type="scheduled")
    assert plan["args"][0] == "--report" and plan["tables"] == "all"
    assert "/" not in Path(plan["report"]).name.replace(".json", "").replace("_", "")  # run id made file-safe
    plan = dag_job_args(settings, {"table": "fr.avro", "hour_from": "2026-11-24T01:00Z", "hour_to": "2026-11-24T03:00Z",
                                   "target_mb": 64, "dry_run": True}, run_id="manual__x", run_type="manual")
    args = plan["args"]
    assert args[0] == "fr.avro" and "--dry-run" in args
    assert args[args.index("--from") + 1].startswith("2026-11-24T01:00")
    assert args[args.index("--to") + 1].startswith("2026-11-24T03:00")
    assert args[args.index("--target-mb") + 1] == "64"


def test_a_backfill_run_covers_its_data_interval(tmp_path: Path) -> None:
    start = datetime(2026, 11, 24, 5, tzinfo=UTC)
    plan = dag_job_args(_settings(tmp_path), {"table": "all"}, run_id="backfill__1", run_type="backfill",
                        interval=(start, start + timedelta(hours=1)))
    assert plan["hours"] == ["2026-11-24T05", "2026-11-24T05"]
    # what a task really gets: the Task SDK's enum (str() is "DagRunType.BACKFILL"), and with
    # the cron trigger timetable of "@hourly" a zero-length interval at the logical date
    from airflow.sdk.api.datamodels._generated import DagRunType

    plan = dag_job_args(_settings(tmp_path), {"table": "all"}, run_id="backfill__2", run_type=DagRunType.BACKFILL,
                        interval=(start, start))
    assert plan["hours"] == ["2026-11-24T05", "2026-11-24T05"]
    scheduled = dag_job_args(_settings(tmp_path), {"table": "all"}, run_id="s", run_type="scheduled",
                             interval=(start, start + timedelta(hours=1)))
    assert scheduled["hours"] == [None, None]  # scheduled runs catch up every closed hour


@pytest.mark.parametrize("params, message", [
    ({"table": "nope"}, "no stream 'nope'"),
    ({"table": "fr.orc"}, "format 'orc'"),
    ({"hour_from": "2026-11-24T05:00Z", "hour_to": "2026-11-24T04:00Z"}, "before hour_from"),
    ({"hour_from": "2026-11-24T05:10Z"}, "not on a whole hour"),
    ({"target_mb": 0}, "target_mb"),
])
def test_bad_params_fail_with_one_line(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises((LakeError, StreamConfigError)) as err:
        dag_job_args(_settings(tmp_path), params, run_id="m", run_type="manual")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_plan_counts_outputs_from_bytes_and_respects_the_range(tmp_path: Path) -> None:
    settings = _settings(tmp_path, target_file_mb=1)
    stream, paths = resolve_table(settings, "fr")
    hours = hours_before(count=3)
    generate_landing(paths.landing, hours, files_per_hour=3, rows_per_file=200, batches=2)
    plan = plan_table(stream, paths, closed_before=datetime.now(UTC), first=hours[1])
    assert [h.hour for h in plan.hours] == [h.key for h in hours[1:]]
    assert all(h.action == "compact" and h.outputs == 1 and h.files == 3 for h in plan.hours)
    assert plan_table(stream, paths, closed_before=datetime.now(UTC), target_mb=1).target_bytes == 2**20
    lines = plan.describe()
    assert "compact  3 files" in lines[1] and "-> 1 file(s)" in lines[1]
    # closed_before before the hours' end: every hour is open
    early = plan_table(stream, paths, closed_before=hours[0].start)
    assert {h.action for h in early.hours} == {"skip"}


def test_report_summary_and_png(tmp_path: Path) -> None:
    run = {"seconds": 3.0, "tables": [{
        "table": "fr", "format": "parquet", "dry_run": False, "seconds": 2.5, "recovered": [],
        "plan": [{"action": "compact"}, {"action": "skip"}],
        "hours": [{"source_sizes": [1000, 2000, 3000], "output_sizes": [6000]}],
        "totals": {"hours_compacted": 1, "hours_skipped": 1, "files_before": 3, "files_after": 1,
                   "bytes_before": 6000, "bytes_after": 5000, "rows": 42,
                   "mean_file_bytes_before": 2000, "mean_file_bytes_after": 5000},
    }]}
    lines = compaction_report.summary_lines(run)
    assert lines[0].startswith("fr (parquet): 1 hour(s) compacted, 1 skipped; files 3 -> 1;")
    assert "rows 42" in lines[0]
    png = compaction_report.render_png(run, tmp_path / "r.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(Exception, match="no compaction report"):
        compaction_report.load(tmp_path / "missing.json")


def test_the_all_tables_run_skips_a_stream_that_never_started_and_a_named_one_says_why(tmp_path: Path) -> None:
    from kafkalake.compaction.run import run_compaction
    from kafkalake.stream.watermark import StreamNotStarted

    settings = _settings(tmp_path)
    _stream, paths = resolve_table(settings, "fr")
    generate_landing(paths.landing, hours_before(count=1), files_per_hour=3, rows_per_file=5)  # an import, say
    lines: list[str] = []
    out = run_compaction(settings, None, dry_run=False, progress=lines.append)  # no Spark needed: nothing closed
    assert [t["format"] for t in out["tables"]] == ["parquet", "avro"]
    assert all(not t["hours"] for t in out["tables"])
    assert [h["action"] for h in out["tables"][0]["plan"]] == ["skip"]
    assert sum("skipped: stream 'fr' has not committed a batch" in line for line in lines) == 2
    with pytest.raises(StreamNotStarted, match="--closed-before"):
        run_compaction(settings, ["fr"], dry_run=True)


@pytest.mark.parametrize("compaction, message", [
    ({"row_group_mb": 0}, "compaction.row_group_mb must be at least 1"),
    ({"row_group_mb": "big"}, "compaction.row_group_mb must be a non-negative number"),
    ({"rowgroup_mb": 8}, "compaction takes target_file_mb, row_group_mb"),
    ({"cluster_by": "name, action"}, None),
    ({"cluster_by": [1]}, "compaction.cluster_by must be a list of column names"),
    ({"sort_by": {"name": 1}}, "compaction.sort_by must be a list of column names"),
])
def test_bad_compaction_settings_are_refused_with_one_line(tmp_path: Path, compaction: dict, message: str) -> None:
    settings = _settings(tmp_path, **compaction)
    if message is None:  # one string is one column name (no splitting): the compactor names it if unknown
        assert resolve_table(settings, "fr")[0].compaction.cluster_by == ("name, action",)
        return
    with pytest.raises(StreamConfigError) as err:
        resolve_table(settings, "fr")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert resolve_table(_settings(tmp_path, row_group_mb=4), "fr")[0].compaction.row_group_mb == 4
