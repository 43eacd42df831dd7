"""Compaction planning, DAG params and the report — the pure parts (no Spark)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kafkalake.compaction import report as compaction_report
from kafkalake.compaction.merge import CompactionError, within_file_order
from kafkalake.compaction.plan import OPEN, DataFile, outputs_for, plan_hours
from kafkalake.compaction.run import OrphanSweeps, dag_job_args
from kafkalake.config import Settings
from kafkalake.lake.tables import Hour, LakeError, resolve_table
from kafkalake.stream.config import MIB, StreamConfigError

H0, H1, H2 = Hour("2026-11-24", 3), Hour("2026-11-24", 4), Hour("2026-11-24", 5)
CLOSED = H2.end  # every hour above is closed


def _settings(tmp_path: Path, **compaction: object) -> Settings:
    doc = {"streams": [{"name": "fr", "topics": ["t"], "subject": "fridge", "sink_format": "both",
                        "compaction": compaction}]}
    (tmp_path / "streams.yaml").write_text(json.dumps(doc))
    return Settings.from_env({"KAFKALAKE_STATE_DIR": str(tmp_path / "state"),
                              "KAFKALAKE_STREAMS_FILE": str(tmp_path / "streams.yaml")})


def _files(*sizes: int) -> list[DataFile]:
    return [DataFile(size, size // 10) for size in sizes]


def test_an_hour_is_merged_when_it_has_more_files_than_its_bytes_need() -> None:
    target = 10 * MIB
    files = {
        H0: _files(*[MIB] * 4),  # 4 MiB in 4 files: 1 file
        H1: _files(*[3 * MIB] * 9),  # 27 MiB in 9 files: 3 files
        H2: _files(12 * MIB, 11 * MIB, 2 * MIB),  # 25 MiB need 3 files and have 3: skip
    }
    plans = {p.hour: p for p in plan_hours(files, closed_before=CLOSED, target_bytes=target)}
    assert (plans[H0.key].action, plans[H0.key].outputs, plans[H0.key].files) == ("compact", 1, 4)
    assert (plans[H1.key].action, plans[H1.key].outputs) == ("compact", 3)
    assert plans[H1.key].bytes == 27 * MIB and plans[H1.key].rows == 9 * (3 * MIB // 10)
    assert plans[H2.key].action == "skip" and plans[H2.key].why.startswith("compacted: 3 file(s)")
    assert plans[H0.key].file_sizes == [MIB] * 4


def test_one_file_is_never_split_and_a_merged_hour_is_skipped_next_time() -> None:
    target = 10 * MIB
    # one file larger than the target: needs 3 by bytes, has 1 — no split
    assert plan_hours({H0: _files(25 * MIB)}, closed_before=CLOSED, target_bytes=target)[0].action == "skip"
    # the rule's fixed point: what a merge writes is planned as done
    for sizes in ([100] * 50, [4 * MIB] * 20, [MIB] * 3):
        merged = outputs_for(sum(sizes), target)
        assert plan_hours({H0: _files(*sizes)}, closed_before=CLOSED, target_bytes=target)[0].action == "compact"
        same_bytes = [sum(sizes) // merged] * merged
        assert plan_hours({H0: _files(*same_bytes)}, closed_before=CLOSED, target_bytes=target)[0].action == "skip"
    assert outputs_for(0, target) == 1 and outputs_for(target, target) == 1 and outputs_for(target + 1, target) == 2


def test_open_hours_and_the_range_are_respected() -> None:
    files = {h: _files(100, 100) for h in (H0, H1, H2)}
    plans = plan_hours(files, closed_before=H1.end, target_bytes=MIB)
    assert [(p.hour, p.action) for p in plans] == [(H0.key, "compact"), (H1.key, "compact"), (H2.key, "skip")]
    assert plans[2].why == OPEN
    # an hour ending a second after the cut-off is open
    assert plan_hours({H0: _files(1, 1)}, closed_before=H0.end - timedelta(seconds=1),
                      target_bytes=MIB)[0].why == OPEN
    ranged = plan_hours(files, closed_before=CLOSED, target_bytes=MIB, first=H1, last=H1)
    assert [p.hour for p in ranged] == [H1.key]
    assert plan_hours({H0: []}, closed_before=CLOSED, target_bytes=MIB) == []


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
    plan = dag_job_args(settings, {"table": "fr_avro", "hour_from": "2026-11-24T01:00Z", "hour_to": "2026-11-24T03:00Z",
                                   "target_mb": 64, "dry_run": True}, run_id="manual__x", run_type="manual")
    args = plan["args"]
    assert args[0] == "fr_avro" and "--dry-run" in args
    assert args[args.index("--from") + 1].startswith("2026-11-24T01:00")
    assert args[args.index("--to") + 1].startswith("2026-11-24T03:00")
    assert args[args.index("--target-mb") + 1] == "64"
    assert dag_job_args(settings, {"table": "fr_quarantine"}, run_id="m", run_type="manual")["tables"] == [
        "fr_quarantine"]


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
    ({"table": "nope"}, "no table 'nope'"),
    ({"table": "fr.avro"}, "no table 'fr.avro'"),
    ({"hour_from": "2026-11-24T05:00Z", "hour_to": "2026-11-24T04:00Z"}, "before hour_from"),
    ({"hour_from": "2026-11-24T05:10Z"}, "not on a whole hour"),
    ({"target_mb": 0}, "target_mb"),
])
def test_bad_params_fail_with_one_line(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises((LakeError, StreamConfigError)) as err:
        dag_job_args(_settings(tmp_path), params, run_id="m", run_type="manual")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_report_summary_and_png(tmp_path: Path) -> None:
    run = {"seconds": 3.0, "tables": [{
        "table": "fr", "format": "parquet", "dry_run": False, "seconds": 2.5,
        "recovered": ["dropped branch kafkalake_compaction_x of an interrupted run"], "orphan_files_removed": 2,
        "plan": [{"action": "compact"}, {"action": "skip"}],
        "hours": [{"source_sizes": [1000, 2000, 3000], "output_sizes": [6000]}],
        "totals": {"hours_compacted": 1, "hours_skipped": 1, "files_before": 3, "files_after": 1,
                   "bytes_before": 6000, "bytes_after": 5000, "rows": 42,
                   "mean_file_bytes_before": 2000, "mean_file_bytes_after": 5000},
    }]}
    lines = compaction_report.summary_lines(run)
    assert lines[0].startswith("fr (parquet): 1 hour(s) compacted, 1 skipped; files 3 -> 1;")
    assert "rows 42" in lines[0] and "mean file 2.0 KiB -> 4.9 KiB" in lines[0]
    assert lines[1] == "  recovered: dropped branch kafkalake_compaction_x of an interrupted run"
    assert lines[2].startswith("  removed 2 orphan file(s)")
    png = compaction_report.render_png(run, tmp_path / "r.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(Exception, match="no compaction report"):
        compaction_report.load(tmp_path / "missing.json")


def test_the_all_tables_run_skips_a_stream_that_never_started_and_a_named_one_says_why(tmp_path: Path) -> None:
    from kafkalake.compaction.run import run_compaction
    from kafkalake.stream.watermark import StreamNotStarted

    settings = _settings(tmp_path)
    lines: list[str] = []
    out = run_compaction(settings, None, dry_run=False, progress=lines.append)  # no Spark needed: no table yet
    assert [(t["table"], t["format"]) for t in out["tables"]] == [
        ("fr", "parquet"), ("fr_avro", "avro"), ("fr_quarantine", "quarantine")]
    assert all(not t["hours"] and t["snapshot_id"] is None for t in out["tables"])
    assert sum("skipped: stream 'fr' has not committed a batch" in line for line in lines) == 1
    assert sum("no table yet" in line for line in lines) == 3
    with pytest.raises(StreamNotStarted, match="--closed-before"):
        run_compaction(settings, ["fr"], dry_run=True)


def test_an_unknown_order_column_is_named_before_anything_is_read(tmp_path: Path) -> None:
    stream, ref = resolve_table(_settings(tmp_path, cluster_by=["device"]), "fr")
    with pytest.raises(CompactionError, match=r"compaction.cluster_by of fr: no column\(s\) device \(columns: name, "):
        within_file_order(stream, ref, ["name", "timestamp"])
    _stream, quarantine = resolve_table(_settings(tmp_path, cluster_by=["device"]), "fr_quarantine")
    assert within_file_order(stream, quarantine, ["value"]) == []  # the quarantine table keeps its order


@pytest.mark.parametrize("compaction, message", [
    ({"row_group_mb": 0}, "compaction.row_group_mb must be at least 1"),
    ({"row_group_mb": "big"}, "compaction.row_group_mb must be a non-negative number"),
    ({"rowgroup_mb": 8}, "compaction takes target_file_mb, row_group_mb"),
    ({"cluster_by": "name, action"}, None),
    ({"cluster_by": [1]}, "compaction.cluster_by must be a list of column names"),
    ({"sort_by": {"name": 1}}, "compaction.sort_by must be a list of column names"),
    ({"orphan_sweep_hours": -1}, "compaction.orphan_sweep_hours must be a non-negative number"),
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


def test_orphan_sweeps_are_due_daily_at_once_after_a_recovery_and_when_nothing_is_known(tmp_path: Path) -> None:
    import time

    settings = _settings(tmp_path)
    assert resolve_table(settings, "fr")[0].compaction.orphan_sweep_hours == 24
    sweeps = OrphanSweeps(settings)
    assert sweeps.due_at("fr", 24) == 0  # never swept: due now
    before = time.time()
    sweeps.swept("fr")
    sweeps.swept("fr_avro")
    assert before + 24 * 3600 <= OrphanSweeps(settings).due_at("fr", 24) <= time.time() + 24 * 3600
    assert sweeps.due_at("fr", 0) == 0  # 0: every run
    sweeps.mark_due("fr")  # a run recovered an interrupted one of this table
    assert sweeps.due_at("fr", 24) == 0 and sweeps.due_at("fr_avro", 24) > time.time()
    sweeps.path.write_text("{ half written")
    assert sweeps.due_at("fr_avro", 24) == 0  # unreadable: sweep rather than leave files
