"""Airflow's side of the operator views (:mod:`kafkalake.ui`): who may see what, and DAG state.

docs/operator-views.md: Access. The checks are the api-server's own ``requires_access_*``
dependencies, so a view asks the configured auth manager exactly what Airflow's own pages
ask it, with the same token (the ``_token`` session cookie of Airflow's UI, or an
``Authorization: Bearer`` header); no token is 401, a token without the permission is 403.

* Streams: read access to the stream's DAG (``stream_<name>``); the list shows only the
  stream DAGs the user may read.
* Lake: read access to the ``compaction`` DAG, the DAG that rewrites the tables.
* Schemas: read access to assets (the registry is the lake's data contract).
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import (
    GetUserDep,
    requires_access_asset,
    requires_access_dag,
    requires_authenticated,
)
from fastapi import Request

STREAM_DAG_PREFIX = "stream_"
LAKE_DAG = "compaction"

_authenticated = requires_authenticated()
_lake = requires_access_dag("GET", param_dag_id=LAKE_DAG)
_schemas = requires_access_asset("GET")


def signed_in(request: Request, user: GetUserDep) -> None:
    """Any signed-in user: the floor under every route of the app."""
    _authenticated(request, user)


def readable_stream_dags(request: Request, user: GetUserDep, session: SessionDep) -> set[str]:
    """The stream DAG ids the user may read (403 when the user may read no DAG at all)."""
    requires_access_dag("GET")(request, user)
    ids = get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session)
    return {dag_id for dag_id in ids if dag_id.startswith(STREAM_DAG_PREFIX)}


def read_stream_dag(request: Request, user: GetUserDep) -> None:
    """Read access to the DAG of the path's ``dag_id``, or of stream ``name`` (``stream_<name>``)."""
    dag_id = request.path_params.get("dag_id") or f"{STREAM_DAG_PREFIX}{request.path_params.get('name', '')}"
    requires_access_dag("GET", param_dag_id=dag_id)(request, user)


def read_lake(request: Request, user: GetUserDep) -> None:
    _lake(request, user)


def read_schemas(request: Request, user: GetUserDep) -> None:
    _schemas(request, user)


def stream_dag_states(session: SessionDep) -> dict[str, dict[str, Any]]:
    """Per stream DAG: paused or not, its newest run and that run's task states."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import func, select

    like = DagModel.dag_id.like(f"{STREAM_DAG_PREFIX.replace('_', '#_')}%", escape="#")
    dags = {dag_id: {"dag_id": dag_id, "is_paused": bool(paused), "tasks": {}}
            for dag_id, paused in session.execute(select(DagModel.dag_id, DagModel.is_paused).where(like))}
    if not dags:
        return {}
    newest = (select(func.max(DagRun.id).label("id")).where(DagRun.dag_id.in_(list(dags)))
              .group_by(DagRun.dag_id).subquery())
    runs = session.execute(select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.start_date)
                           .where(DagRun.id.in_(select(newest.c.id)))).all()
    for dag_id, run_id, state, start in runs:
        dags[dag_id].update(run_id=run_id, run_state=_text(state),
                            run_start=start.isoformat() if start else None)
    wanted = {(dag_id, run_id) for dag_id, run_id, _, _ in runs}
    tis = session.execute(select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state)
                          .where(TaskInstance.run_id.in_([r for _, r in wanted]))).all()
    for dag_id, run_id, task_id, state in tis:
        if (dag_id, run_id) in wanted:
            dags[dag_id]["tasks"][task_id] = _text(state)
    return dags


def _text(state: Any) -> str | None:
    """An Airflow state enum (or None) as its plain value: ``running``."""
    return None if state is None else str(getattr(state, "value", state))


def view_access() -> Any:
    """The :class:`kafkalake.ui.app.Access` fields, as keyword arguments."""
    return {
        "authenticated": signed_in, "streams": readable_stream_dags, "stream": read_stream_dag,
        "lake": read_lake, "schemas": read_schemas, "dag_states": stream_dag_states,
    }
