"""Streams: Kafka -> decode per writer schema (in the JVM) -> Iceberg tables, supervised."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.stream.checkpoint import checkpoint_resume_offsets
    from kafkalake.stream.config import (
        FORMATS,
        StreamConfig,
        StreamConfigError,
        StreamPaths,
        get_stream,
        load_streams,
        stream_paths,
    )
    from kafkalake.stream.decode import DecodePlan, decode, decode_plan, quarantine_rows, table_rows
    from kafkalake.stream.driver import driver_processes, pid_alive, request_stop, terminate_driver
    from kafkalake.stream.health import Action, Thresholds, Verdict, assess
    from kafkalake.stream.job import StreamBusyError, StreamDataLossError, run_stream
    from kafkalake.stream.sink import IcebergBatchSink
    from kafkalake.stream.status import FAILED, RUNNING, STARTING, STOPPED, read_status
    from kafkalake.stream.watermark import StreamNotStarted, closed_before, stream_watermark

_EXPORTS = {
    "FORMATS": "config",
    "StreamConfig": "config",
    "StreamConfigError": "config",
    "StreamPaths": "config",
    "get_stream": "config",
    "load_streams": "config",
    "stream_paths": "config",
    "DecodePlan": "decode",
    "decode": "decode",
    "decode_plan": "decode",
    "quarantine_rows": "decode",
    "IcebergBatchSink": "sink",
    "table_rows": "decode",
    "StreamBusyError": "job",
    "StreamDataLossError": "job",
    "run_stream": "job",
    "checkpoint_resume_offsets": "checkpoint",
    "FAILED": "status",
    "RUNNING": "status",
    "STARTING": "status",
    "STOPPED": "status",
    "read_status": "status",
    "Action": "health",
    "Thresholds": "health",
    "Verdict": "health",
    "assess": "health",
    "driver_processes": "driver",
    "pid_alive": "driver",
    "request_stop": "driver",
    "terminate_driver": "driver",
    "StreamNotStarted": "watermark",
    "closed_before": "watermark",
    "stream_watermark": "watermark",
}
__all__ = [
    "Action",
    "DecodePlan",
    "FAILED",
    "FORMATS",
    "IcebergBatchSink",
    "RUNNING",
    "STARTING",
    "STOPPED",
    "StreamBusyError",
    "StreamConfig",
    "StreamConfigError",
    "StreamDataLossError",
    "StreamNotStarted",
    "StreamPaths",
    "Thresholds",
    "Verdict",
    "assess",
    "checkpoint_resume_offsets",
    "closed_before",
    "decode",
    "decode_plan",
    "driver_processes",
    "get_stream",
    "load_streams",
    "pid_alive",
    "quarantine_rows",
    "read_status",
    "request_stop",
    "run_stream",
    "stream_paths",
    "stream_watermark",
    "table_rows",
    "terminate_driver",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
