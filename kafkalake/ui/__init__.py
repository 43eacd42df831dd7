"""Operator views: Streams, Lake and Schemas in Airflow's UI (data, the FastAPI app, templates).

The data functions read files and Iceberg metadata only and take Airflow's facts as
arguments, so they run (and are tested) without Airflow; the plugin mounts :func:`create_app`
on the api-server with the access checks of :mod:`kafkalake.airflow.views`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.ui.app import MOUNT, Access, Context, create_app, lake_data, streams_data
    from kafkalake.ui.lake import LakeReader, Watermarks
    from kafkalake.ui.schemas import subject_views
    from kafkalake.ui.streams import DagState, StreamView, status_table, stream_state, stream_views

_EXPORTS = {
    "MOUNT": "app",
    "Access": "app",
    "Context": "app",
    "create_app": "app",
    "lake_data": "app",
    "streams_data": "app",
    "LakeReader": "lake",
    "Watermarks": "lake",
    "subject_views": "schemas",
    "DagState": "streams",
    "StreamView": "streams",
    "status_table": "streams",
    "stream_state": "streams",
    "stream_views": "streams",
}
__all__ = [
    "Access",
    "Context",
    "DagState",
    "LakeReader",
    "MOUNT",
    "StreamView",
    "Watermarks",
    "create_app",
    "lake_data",
    "status_table",
    "stream_state",
    "stream_views",
    "streams_data",
    "subject_views",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
