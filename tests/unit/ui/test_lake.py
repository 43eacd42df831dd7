"""The Lake view's hour rule: open, closed, compacted, as the compaction planner decides it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kafkalake.compaction.report import render_png
from kafkalake.config import Settings
from kafkalake.lake.tables import Hour
from kafkalake.stream.config import MIB, StreamConfig
from kafkalake.ui.lake import FileEntry, TableFacts, hour_rows, latest_report, report_png

FRIDGE = StreamConfig(name="fridge", topics=("t",), subject="fridge")  # target 128 MiB per file


def facts(files: dict[str, list[int]]) -> TableFacts:
    entries = [FileEntry(f"{hour}-{i}", Hour.parse(hour), 10, size, (1, 2))
               for hour, sizes in files.items() for i, size in enumerate(sizes)]
    return TableFacts("fridge", "kafkalake.lake.fridge", "loc", 1, [], entries)


def test_hours_are_open_closed_or_compacted_newest_first() -> None:
    table = facts({"2026-11-24T05": [MIB] * 40, "2026-11-24T06": [200 * MIB, 10 * MIB], "2026-11-24T09": [MIB] * 3})
    rows = hour_rows(table, FRIDGE, datetime(2026, 11, 24, 8, tzinfo=UTC))
    assert [(r.hour, r.state) for r in rows] == [
        ("2026-11-24T09", "open"),
        ("2026-11-24T06", "compacted"),  # 210 MiB need 2 files of 128 MiB: it has 2
        ("2026-11-24T05", "closed, not compacted"),
    ]
    assert (rows[2].files, rows[2].bytes, rows[2].mean_file_bytes, rows[2].rows) == (40, 40 * MIB, MIB, 400)


def test_without_a_watermark_no_hour_is_called_closed() -> None:
    rows = hour_rows(facts({"2026-11-24T05": [MIB] * 4, "2026-11-24T06": [MIB]}), FRIDGE, None)
    assert [(r.state, r.closed) for r in rows] == [("compacted", None), ("closed: unknown", None)]


def test_the_newest_report_and_only_its_folders_pngs(ui_settings: Settings, tmp_path: Path) -> None:
    assert latest_report(ui_settings) is None
    folder = ui_settings.state_dir / "reports" / "compaction"
    folder.mkdir(parents=True)
    run = {"tables": [{"table": "fridge", "format": "parquet",
                       "hours": [{"source_sizes": [100, 200], "output_sizes": [300]}]}]}
    (folder / "run_1.json").write_text("{}")
    (folder / "run_2.json").write_text('{"tables": []}')
    render_png(run, folder / "run_2.png")
    report = latest_report(ui_settings)
    assert report["name"] == "run_2" and report["png"] == str(folder / "run_2.png")
    assert report_png(ui_settings, "run_2") == folder / "run_2.png"
    (tmp_path / "secret.png").write_bytes(b"x")
    assert report_png(ui_settings, "../../../secret") is None and report_png(ui_settings, "run_1") is None
