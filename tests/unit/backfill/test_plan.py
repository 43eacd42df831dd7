"""The pure half of backfill: request validation, hour ranges, coverage, refusals, counts, job arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kafkalake.backfill.request import (
    BackfillError,
    BackfillRequest,
    HourCount,
    check_cover,
    count_problems,
    hour_ranges,
    incomplete_hours,
    open_hours,
    parse_offsets,
    parse_request,
    records_in,
    refuse_open,
)
from kafkalake.backfill.verify import summary_lines
from kafkalake.lake.tables import Hour

UTC = UTC


def request(**kw: object) -> BackfillRequest:
    args: dict[str, object] = {"start": "2026-11-24T05:00Z", "end": "2026-11-24T07:00Z", **kw}
    return parse_request(args.pop("table", "fridge"), **args)  # type: ignore[arg-type]


def test_a_range_is_whole_hours_with_an_exclusive_end() -> None:
    req = request()
    assert [h.key for h in req.hours] == ["2026-11-24T05", "2026-11-24T06"]
    assert req.mode == "timestamps"
    assert req.start == datetime(2026, 11, 24, 5, tzinfo=UTC) and req.end == datetime(2026, 11, 24, 7, tzinfo=UTC)
    # every spelling of an hour the form's pattern allows
    for start in ("2026-11-24T05", "2026-11-24T05:00", "2026-11-24T05:00:00Z", "2026-11-24T05:00+00:00",
                  "2026-11-24T06:00+01:00"):
        assert request(start=start).hours[0].key == "2026-11-24T05", start
    assert request(start=datetime(2026, 11, 24, 6, tzinfo=UTC)).hours == [Hour("2026-11-24", 6)]
    assert request(end="2026-11-25T00:00Z").hours[-1].key == "2026-11-24T23"


@pytest.mark.parametrize(("kw", "message"), [
    ({"start": "2026-11-24T05:30Z"}, "start: '2026-11-24T05:30Z' is not on a whole hour"),
    ({"end": "2026-11-24T06:00:01Z"}, "end: '2026-11-24T06:00:01Z' is not on a whole hour"),
    ({"start": "yesterday"}, "start: 'yesterday' is not an hour like"),
    ({"start": None}, "start is required"),
    ({"end": ""}, "end is required"),
    ({"end": "2026-11-24T04:00Z"}, "end 2026-11-24T04:00:00Z is not after start 2026-11-24T05:00:00Z"),
    ({"end": "2026-11-24T05:00Z"}, "is not after start"),
    ({"end": "2027-01-24T05:00Z"}, "at most 744 per backfill"),
    ({"table": "../etc"}, "table '../etc' is not a table name"),
    ({"table": "/etc/passwd"}, "is not a table name"),
    ({"table": "fridge/../x"}, "is not a table name"),
    ({"table": "fridge.csv"}, "is not a table name"),
    ({"table": "fridge.avro"}, "is not a table name: a table of a stream in streams.yaml (e.g. fridge, fridge_avro)"),
    ({"table": "Fridge"}, "is not a table name"),
    ({"table": ""}, "is not a table name"),
    ({"table": None}, "is not a table name"),
    ({"starting_offsets": {"t": {"0": 1}}}, "give both starting_offsets and ending_offsets"),
    ({"starting_offsets": {"t": {"0": 1}}, "ending_offsets": {"u": {"0": 2}}}, "name the same topics in both"),
])
def test_bad_requests_are_refused_with_one_line(kw: dict[str, object], message: str) -> None:
    with pytest.raises(BackfillError) as err:
        request(**kw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_table_names_are_iceberg_table_names() -> None:
    assert request(table="fridge_avro").table == "fridge_avro"
    assert request(table="fridge_backlog").table == "fridge_backlog"


def test_offsets_are_parsed_from_json_or_objects_with_sentinels() -> None:
    req = request(starting_offsets='{"fridge-events": {"0": 12, "1": -2}}',
                  ending_offsets={"fridge-events": {"0": -1, "1": 40}})
    assert req.mode == "offsets"
    assert req.starting_offsets == {"fridge-events": {"0": 12, "1": -2}}
    assert req.ending_offsets == {"fridge-events": {"0": -1, "1": 40}}
    with pytest.raises(BackfillError, match="offset -1 of t-0 must be a whole number >= 0 \\(or -2 for earliest\\)"):
        parse_offsets("starting_offsets", {"t": {"0": -1}}, sentinel=-2)
    with pytest.raises(BackfillError, match="or -1 for latest"):
        parse_offsets("ending_offsets", {"t": {"0": -2}}, sentinel=-1)
    with pytest.raises(BackfillError, match="is not JSON"):
        parse_offsets("starting_offsets", "{t: 1}", sentinel=-2)
    with pytest.raises(BackfillError, match="partition 'x' of 't' is not a partition number"):
        parse_offsets("starting_offsets", {"t": {"x": 1}}, sentinel=-2)
    with pytest.raises(BackfillError, match="offset True"):
        parse_offsets("starting_offsets", {"t": {"0": True}}, sentinel=-2)
    with pytest.raises(BackfillError, match="not a valid Kafka topic name"):
        parse_offsets("starting_offsets", {"../x": {"0": 1}}, sentinel=-2)
    with pytest.raises(BackfillError, match="must be an object"):
        parse_offsets("starting_offsets", [1, 2], sentinel=-2)


def test_job_arguments_round_trip_through_the_jobs_parser() -> None:
    from spark_jobs.backfill import parser

    req = request(starting_offsets={"t": {"0": 1, "1": -2}}, ending_offsets={"t": {"0": 9, "1": -1}})
    args = parser().parse_args(req.job_args(report="/tmp/r.json", dry_run=True))
    again = parse_request(args.table, start=args.start, end=args.end,
                          starting_offsets=args.starting_offsets, ending_offsets=args.ending_offsets)
    assert again == req and args.dry_run and str(args.report) == "/tmp/r.json"
    plain = parser().parse_args(request(table="fridge_avro").job_args())
    assert (plain.table, plain.starting_offsets, plain.dry_run, plain.report) == ("fridge_avro", None, False, None)



def test_hour_ranges_and_estimates_come_from_offsets_at_the_boundaries() -> None:
    boundaries = [{"t-0": 0, "t-1": 10}, {"t-0": 400, "t-1": 10}, {"t-0": 1000, "t-1": 700}]
    ranges = hour_ranges(boundaries)
    assert ranges == [{"t-0": (0, 400), "t-1": (10, 10)}, {"t-0": (400, 1000), "t-1": (10, 700)}]
    assert [records_in(r) for r in ranges] == [400, 1290]
    assert records_in({"t-0": (9, 5)}) == 0  # out-of-order CreateTime: never negative


def test_open_hours_are_refused_naming_the_hour_and_the_watermark() -> None:
    hours = request(end="2026-11-24T09:00Z").hours
    cutoff = datetime(2026, 11, 24, 7, 50, tzinfo=UTC)
    assert [h.key for h in open_hours(hours, cutoff)] == ["2026-11-24T07", "2026-11-24T08"]
    refuse_open(hours[:2], cutoff, stream="fridge", grace_minutes=10)  # closed: fine
    with pytest.raises(BackfillError) as err:
        refuse_open(hours, cutoff, stream="fridge", grace_minutes=10)
    assert str(err.value) == (
        "hour 2026-11-24T07 (and 1 later hour(s)) is still open to stream 'fridge': its watermark "
        "minus 10 min grace is 2026-11-24T07:50:00Z; backfill only hours ending by then "
        "(hour 2026-11-24T07 is closed once the stream has passed 2026-11-24T08:10:00Z)"
    )


def test_hours_retention_may_have_touched_are_found() -> None:
    hours = request(start="2026-11-24T03:00Z", end="2026-11-24T07:00Z").hours
    stamp = datetime(2026, 11, 24, 4, 20, tzinfo=UTC)
    gone = incomplete_hours(hours, {"t-0": (0, None), "t-1": (350, stamp)})
    assert sorted(gone) == ["2026-11-24T03", "2026-11-24T04"]
    assert ("t-1: offsets before 350 were deleted (retention), the oldest left is from 2026-11-24T04:20:00Z"
            == gone["2026-11-24T04"])
    assert incomplete_hours(hours, {"t-0": (12, None)}).keys() == {h.key for h in hours}  # all deleted
    assert incomplete_hours(hours, {"t-0": (0, None)}) == {}


def test_an_offset_range_must_cover_the_hours_on_every_partition() -> None:
    first, end = {"t-0": 100, "t-1": 50}, {"t-0": 300, "t-1": 90}
    check_cover({"t-0": 0, "t-1": 50}, {"t-0": 999, "t-1": 90}, first, end, span="[a, b)")
    with pytest.raises(BackfillError, match=r"offsets t-0 101\.\.999 do not cover hours \[a, b\) fully: on t-0 "
                                            r"those hours are offsets 100\.\.300"):
        check_cover({"t-0": 101, "t-1": 50}, {"t-0": 999, "t-1": 90}, first, end, span="[a, b)")
    with pytest.raises(BackfillError, match=r"t-1 0\.\.89 do not cover"):
        check_cover({"t-0": 100, "t-1": 0}, {"t-0": 300, "t-1": 89}, first, end, span="[a, b)")
    with pytest.raises(BackfillError, match="leave out partition"):
        check_cover({"t-0": 0}, {"t-0": 999}, first, end, span="[a, b)")
    with pytest.raises(BackfillError, match="t-7 are not partitions"):
        check_cover({**first, "t-7": 0}, {**end, "t-7": 1}, first, end, span="[a, b)")
    with pytest.raises(BackfillError, match="ending offset 5 is before starting offset 100"):
        check_cover(first, {"t-0": 5, "t-1": 90}, first, end, span="[a, b)")


def test_every_hour_must_add_up_with_kafkas_offsets_each_coordinate_once() -> None:
    offsets = {"2026-11-24T05": 1005, "2026-11-24T06": 500, "2026-11-24T07": 3}
    good = {"2026-11-24T05": HourCount(1000, 5, 1005), "2026-11-24T06": HourCount(500, 0, 500),
            "2026-11-24T07": HourCount(0, 3, 3)}
    assert count_problems(offsets, good) == []
    assert HourCount(1000, 5, 1005).records == 1005
    short = {**good, "2026-11-24T06": HourCount(499, 0, 499)}
    assert count_problems(offsets, short) == ["2026-11-24T06: 499 rows + 0 quarantined != 500 offsets in range"]
    twice = {**good, "2026-11-24T05": HourCount(1000, 5, 1004)}  # one offset read twice, another not at all
    assert count_problems(offsets, twice) == [
        "2026-11-24T05: 1,005 records read but 1,004 distinct (topic, partition, offset)"]
    missing = {k: v for k, v in good.items() if k != "2026-11-24T07"}
    assert count_problems(offsets, missing) == ["2026-11-24T07: 0 rows + 0 quarantined != 3 offsets in range"]


def test_summary_of_a_dry_run_report() -> None:
    report = {"table": "fridge", "quarantine_table": "fridge_quarantine", "dry_run": True,
              "plan": [{"action": "replace", "offsets_in_range": 1200}, {"action": "skip", "offsets_in_range": 0}]}
    assert summary_lines(report) == ["fridge + fridge_quarantine: dry run, would replace 1 hour(s) (~1,200 records "
                                     "in Kafka); nothing changed"]


def test_summary_of_a_run_that_changed_nothing() -> None:
    report = {"table": "fridge", "quarantine_table": "fridge_quarantine", "run_id": "r1", "seconds": 3.0,
              "totals": {"hours": 1, "rows": 10, "quarantined": 2},
              "tables": {"fridge": {"hours_replaced": [], "hours_emptied": [], "published_snapshot": None},
                         "fridge_quarantine": {"hours_replaced": ["2026-11-24T05"], "hours_emptied": [],
                                               "published_snapshot": 42}},
              "hours": [{"hour": "2026-11-24T05", "action": "replace", "rows": 10, "quarantined": 2,
                         "offsets_in_range": 12, "checksum": "a-b"}]}
    lines = summary_lines(report)
    assert "  fridge: unchanged (every hour already holds these rows), no commit" in lines
    assert "  fridge_quarantine: 1 hour(s) replaced in snapshot 42, 0 emptied" in lines
    assert lines[-1] == "  2026-11-24T05: 10 rows, 2 quarantined, 12 offsets in range, checksum a-b"


def test_hours_are_one_hour_apart_across_days() -> None:
    req = request(start="2026-12-31T22:00Z", end="2027-01-01T02:00Z")
    assert [h.key for h in req.hours] == ["2026-12-31T22", "2026-12-31T23", "2027-01-01T00", "2027-01-01T01"]
    assert all(b.start - a.start == timedelta(hours=1) for a, b in zip(req.hours, req.hours[1:], strict=False))
