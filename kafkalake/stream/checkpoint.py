"""What a stream's checkpoint says: the offsets it resumes from, the gaps it accepted."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from kafkalake.config import Settings
from kafkalake.stream.config import StreamConfig, StreamPaths

log = logging.getLogger(__name__)


def checkpoint_resume_offsets(checkpoint: Path) -> dict[str, int] | None:
    """Where the query will resume reading: ``{"topic-partition": offset}`` from its checkpoint.

    The offsets log holds each batch's planned end offsets; a batch without a commit file is
    re-run from the previous batch's end. None before the first batch.
    """
    offsets_dir, commits_dir = checkpoint / "offsets", checkpoint / "commits"
    batches = sorted(int(p.name) for p in offsets_dir.glob("[0-9]*")) if offsets_dir.is_dir() else []
    if not batches:
        return None
    last = batches[-1]
    if not (commits_dir / str(last)).exists():
        if len(batches) < 2:
            return None
        last = batches[-2]
    lines = (offsets_dir / str(last)).read_text().splitlines()
    resume: dict[str, int] = {}
    for line in lines[2:]:  # "v1", batch metadata, then one line per source
        if line.strip().startswith("{"):
            for topic, parts in json.loads(line).items():
                resume.update({f"{topic}-{part}": int(off) for part, off in parts.items()})
    return resume


def _recorded_gaps(paths: StreamPaths) -> set[tuple[str, int]]:
    try:
        lines = paths.gaps_file.read_text().splitlines()
    except FileNotFoundError:
        return set()
    return {(g["topic_partition"], g["from_offset"]) for line in lines for g in json.loads(line)["gaps"]}


def _append_gaps(paths: StreamPaths, stream: StreamConfig, gaps: list[dict[str, Any]], *, when: str) -> None:
    """Append new gaps (one found at start and again by its first batch is written once)."""
    known = _recorded_gaps(paths)
    gaps = [g for g in gaps if (g["topic_partition"], g["from_offset"]) not in known]
    if not gaps:
        return
    entry = {"stream": stream.name, "detected": when, "recorded": time.time(), "gaps": gaps}
    paths.state.mkdir(parents=True, exist_ok=True)
    with open(paths.gaps_file, "a") as out:
        out.write(json.dumps(entry) + "\n")
    log.warning("stream %s accepted a data-loss gap (fail_on_data_loss: false): %s", stream.name, entry)


def _gaps_against_earliest(
    settings: Settings, stream: StreamConfig, next_offsets: dict[str, int]
) -> list[dict[str, Any]]:
    from kafkalake.kafka.topics import earliest_offsets

    earliest = earliest_offsets(settings.bootstrap_servers, stream.topics)
    return [
        {"topic_partition": tp, "from_offset": start, "to_offset": earliest[tp], "missing": earliest[tp] - start}
        for tp, start in sorted(next_offsets.items())
        if tp in earliest and earliest[tp] > start
    ]


def _record_start_gaps(settings: Settings, stream: StreamConfig, paths: StreamPaths) -> None:
    """At start: offsets between the checkpoint's resume point and Kafka's earliest are lost."""
    resume = checkpoint_resume_offsets(paths.checkpoint)
    if resume:
        _append_gaps(paths, stream, _gaps_against_earliest(settings, stream, resume), when="start")


def _record_batch_gaps(settings: Settings, stream: StreamConfig, paths: StreamPaths, summary: dict[str, Any]) -> None:
    """While running: a batch that read fewer rows than its offset range skipped lost offsets."""
    expected = sum(end - start for start, end in summary["offset_ranges"].values())
    if expected <= summary["input_rows"]:
        return
    starts = {tp: start for tp, (start, _end) in summary["offset_ranges"].items()}
    _append_gaps(paths, stream, _gaps_against_earliest(settings, stream, starts), when=f"batch {summary['batch_id']}")
