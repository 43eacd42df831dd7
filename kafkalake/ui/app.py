"""The operator views as a FastAPI app, mounted on Airflow's api-server by the plugin.

docs/operator-views.md. Every route declares the access check it needs (``Access``, built
from the api-server's own ``requires_access_*`` dependencies by :mod:`kafkalake.airflow.views`),
and the app adds "signed in" to all of them: a route without a check of its own still
refuses anonymous callers. Airflow does not authenticate plugin apps by itself (a mounted
app inherits none of the core API's dependencies). The app reads; it has no write endpoint.
Pausing, compacting and backfilling are calls of the page's script to Airflow's REST API,
as the signed-in user, so Airflow's permissions decide.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

from kafkalake.compaction.plan import NOTHING_CLOSED
from kafkalake.config import Settings
from kafkalake.stream.config import StreamConfig, StreamConfigError, load_streams
from kafkalake.ui.charts import line_chart
from kafkalake.ui.lake import LakeReader, TableFacts, Watermarks, hour_rows, latest_report, report_png
from kafkalake.ui.schemas import MIGRATION_DAG, check, diff, migration_conf, subject_views
from kafkalake.ui.streams import CHART_WINDOW_S, DagState, StreamView, stream_views

log = logging.getLogger(__name__)

#: where the plugin mounts the app on the api-server
MOUNT = "/kafkalake"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Access:
    """The access checks of the routes, as FastAPI dependencies.

    ``streams`` returns the DAG ids the user may read (None: all); ``stream`` checks read
    access to the DAG of the path's ``name`` (``stream_<name>``) or ``dag_id``; ``dag_states``
    returns ``{dag_id: DagState fields}`` from Airflow's metadata DB.
    """

    authenticated: Callable[..., Any]
    streams: Callable[..., Any]
    stream: Callable[..., Any]
    lake: Callable[..., Any]
    schemas: Callable[..., Any]
    dag_states: Callable[..., Any]


def deny_all() -> Access:
    """Access that refuses every request (403): what the plugin mounts when Airflow's checks are missing."""

    def refuse() -> None:
        raise HTTPException(403, "kafkalake views: Airflow's access checks are not available")

    return Access(authenticated=refuse, streams=refuse, stream=refuse, lake=refuse, schemas=refuse, dag_states=refuse)


@dataclass
class Context:
    """What the routes share: settings, the cached lake reader, the background watermarks."""

    settings_factory: Callable[[], Settings]
    reader: LakeReader | None = None
    watermarks: Watermarks | None = None
    #: more work for :meth:`warm_up` (the app adds compiling its templates)
    warmers: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)

    def settings(self) -> Settings:
        return self.settings_factory()

    def lake(self) -> LakeReader:
        if self.reader is None:
            self.reader = LakeReader(self.settings())
        return self.reader

    def warm_up(self) -> threading.Thread:
        """Do in the background what a first view would: import pyiceberg and pyarrow, parse
        the tables' manifests, read the quarantine tables, compile the templates. The
        api-server starts it, so the operator's first view is served from warm caches."""

        def run() -> None:
            for what, step in (("the lake cache", lambda: lake_data(self)),
                               ("the streams", lambda: streams_data(self, {}, None)), *self.warmers):
                try:
                    step()
                except Exception as exc:  # no catalog yet: the first view says so
                    log.warning("kafkalake views: warming %s failed: %s", what, str(exc).splitlines()[0][:200])

        thread = threading.Thread(target=run, daemon=True, name="kafkalake-views-warm-up")
        thread.start()
        return thread

    def marks(self) -> Watermarks:
        if self.watermarks is None:
            self.watermarks = Watermarks(self.settings())
        return self.watermarks


def _streams(settings: Settings) -> dict[str, StreamConfig]:
    try:
        return load_streams(settings.streams_file)
    except StreamConfigError:
        return {}


def _lake_tables(ctx: Context, names: list[str]) -> tuple[dict[str, TableFacts], str | None]:
    try:
        return ctx.lake().tables(names), None
    except Exception as exc:  # an unreachable catalog is one line on the page, not an error page
        return {}, str(exc).splitlines()[0][:300]


def streams_data(ctx: Context, dags: dict[str, Any], only: set[str] | None, *,
                 name: str | None = None) -> tuple[list[StreamView], str | None]:
    """The Streams view: status files + Airflow's DAG state + the lake's counts."""
    settings = ctx.settings()
    states = {dag_id: DagState.from_doc(doc) for dag_id, doc in dags.items()}
    views = stream_views(settings, dags=states, only=only)
    if name is not None:
        views = [v for v in views if v.name == name]
    configs = _streams(settings)
    tables, error = _lake_tables(ctx, [t for v in views for t in configs[v.name].all_tables])
    for view in views:
        stream = configs[view.name]
        view.versions_seen = ctx.lake().versions_seen(stream, tables) if tables else None
        view.quarantine = ctx.lake().quarantine(stream, tables) if tables else None
    return views, error


def lake_data(ctx: Context) -> dict[str, Any]:
    """The Lake view: per table its snapshots and hours, per stream its watermark."""
    settings = ctx.settings()
    streams = _streams(settings)
    names = [t for s in streams.values() for t in s.all_tables]
    tables, error = _lake_tables(ctx, names)
    out = []
    for stream in streams.values():
        closed, note = ctx.marks().get(stream, list(streams.values()))
        for name in stream.all_tables:
            facts = tables.get(name)
            if facts is None:
                out.append({"table": name, "stream": stream.name, "exists": False})
                continue
            current = facts.snapshots[0] if facts.snapshots else {}
            quarantine = ctx.lake().quarantine(stream, tables) if name == stream.quarantine_table else None
            out.append({
                "table": name, "stream": stream.name, "exists": True, "identifier": facts.identifier,
                "kind": "quarantine" if name == stream.quarantine_table else "data", "formats": facts.formats,
                "snapshot_id": facts.snapshot_id, "rows": sum(f.rows for f in facts.files),
                "files": len(facts.files), "bytes": sum(f.bytes for f in facts.files),
                "total_rows_summary": current.get("total_rows"),
                "closed_before": closed.isoformat() if closed and closed != NOTHING_CLOSED else None,
                "watermark_note": note,
                "snapshots": facts.snapshots, "hours": [asdict(h) for h in hour_rows(facts, stream, closed)],
                "quarantine": None if quarantine is None else asdict(quarantine),
            })
    return {"tables": out, "error": error, "report": latest_report(settings)}


def _airflow_root(request: Any) -> str:
    """Airflow's base path as the browser sees it (the app's root path without the mount)."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return root[: -len(MOUNT)] if root.endswith(MOUNT) else root


def _charts(view: StreamView, now: float) -> dict[str, str]:
    start = now - CHART_WINDOW_S
    return {
        "rps": line_chart([(e["t"], float(e.get("rps", 0))) for e in view.history], start=start, end=now,
                          label="rows/s"),
        "lag": line_chart([(e["t"], float(e.get("lag", 0))) for e in view.history], start=start, end=now,
                          label="lag", color="#c92a2a"),
    }


def create_app(access: Access, *, settings_factory: Callable[[], Settings], context: Context | None = None) -> Any:
    """The app; ``access`` decides who sees what (see :class:`Access`)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    ctx = context or Context(settings_factory)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["bytes"] = _human_bytes
    app = FastAPI(title="kafkalake operator views", dependencies=[Depends(access.authenticated)],
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.kafkalake = ctx
    ctx.warmers.append(("the templates", lambda: [env.get_template(name) for name in env.list_templates()]))

    def page(request: Request, template: str, **values: Any) -> HTMLResponse:
        started = time.perf_counter()
        html = env.get_template(template).render(airflow_root=_airflow_root(request), **values)
        return HTMLResponse(html, headers={"Server-Timing": f"render;dur={(time.perf_counter() - started) * 1000:.1f}"})

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> Any:
        """JSON for the API, a short page for the views (the same status: 401 stays 401)."""
        if request.url.path.startswith(f"{request.scope.get('root_path', '')}/api/") or exc.status_code >= 500:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        html = env.get_template("refused.html").render(airflow_root=_airflow_root(request), status=exc.status_code,
                                                       detail=exc.detail, next=str(request.url))
        return HTMLResponse(html, status_code=exc.status_code)

    _stream_routes(app, access, ctx, page)
    _lake_routes(app, access, ctx, page)
    _schema_routes(app, access, ctx, page)
    return app


Page = Callable[..., HTMLResponse]


def _stream_routes(app: FastAPI, access: Access, ctx: Context, page: Page) -> None:
    readable_streams, dag_states = Depends(access.streams), Depends(access.dag_states)

    @app.get("/", dependencies=[Depends(access.streams)])
    def index(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/streams")

    @app.get("/api/streams")
    def api_streams(only: set[str] | None = readable_streams,
                    dags: dict[str, Any] = dag_states) -> JSONResponse:
        views, error = streams_data(ctx, dags, only)
        return JSONResponse({"streams": [v.to_json() for v in views], "lake_error": error})

    @app.get("/api/streams/{name}", dependencies=[Depends(access.stream)])
    def api_stream(name: str, dags: dict[str, Any] = dag_states) -> JSONResponse:
        views, error = streams_data(ctx, dags, None, name=name)
        if not views:
            raise HTTPException(404, f"no stream {name!r} in streams.yaml")
        return JSONResponse({**views[0].to_json(), "lake_error": error})

    @app.get("/streams", response_class=HTMLResponse)
    def streams_page(request: Request, only: set[str] | None = readable_streams,
                     dags: dict[str, Any] = dag_states) -> HTMLResponse:
        views, error = streams_data(ctx, dags, only)
        now = time.time()
        return page(request, "streams.html", views=views, charts={v.name: _charts(v, now) for v in views},
                    lake_error=error, active="streams")

    def _stream_page(request: Request, name: str, dags: dict[str, Any]) -> HTMLResponse:
        views, error = streams_data(ctx, dags, None, name=name)
        if not views:
            raise HTTPException(404, f"no stream {name!r} in streams.yaml")
        return page(request, "stream.html", view=views[0], charts=_charts(views[0], time.time()),
                    lake_error=error, active="streams")

    @app.get("/streams/{name}", response_class=HTMLResponse, dependencies=[Depends(access.stream)])
    def stream_page(request: Request, name: str, dags: dict[str, Any] = dag_states) -> HTMLResponse:
        return _stream_page(request, name, dags)

    @app.get("/dag/{dag_id}", response_class=HTMLResponse, dependencies=[Depends(access.stream)])
    def dag_tab(request: Request, dag_id: str, dags: dict[str, Any] = dag_states) -> HTMLResponse:
        """The tab on every DAG's page: a stream DAG shows its stream, any other says so."""
        if not dag_id.startswith("stream_"):
            raise HTTPException(404, f"{dag_id} is not a kafkalake stream DAG (stream_<name>)")
        return _stream_page(request, dag_id.removeprefix("stream_"), dags)


def _lake_routes(app: FastAPI, access: Access, ctx: Context, page: Page) -> None:
    @app.get("/api/lake", dependencies=[Depends(access.lake)])
    def api_lake() -> JSONResponse:
        return JSONResponse(lake_data(ctx))

    @app.get("/lake", response_class=HTMLResponse, dependencies=[Depends(access.lake)])
    def lake_page(request: Request) -> HTMLResponse:
        return page(request, "lake.html", lake=lake_data(ctx), active="lake")

    @app.get("/lake/reports/{name}.png", dependencies=[Depends(access.lake)])
    def report_image(name: str) -> FileResponse:
        png = report_png(ctx.settings(), name)
        if png is None:
            raise HTTPException(404, f"no compaction report histogram {name!r}")
        return FileResponse(png, media_type="image/png")


def _schema_routes(app: FastAPI, access: Access, ctx: Context, page: Page) -> None:
    def _schemas() -> list[Any]:
        readers = {v.name: (v.subject, v.reader_version) for v in stream_views(ctx.settings(), history=False)}
        return subject_views(ctx.settings(), reader_versions=readers)

    @app.get("/api/schemas", dependencies=[Depends(access.schemas)])
    def api_schemas() -> dict[str, Any]:
        return {"subjects": [asdict(s) for s in _schemas()]}

    @app.get("/api/schemas/{subject}/diff", dependencies=[Depends(access.schemas)])
    def api_diff(subject: str, v1: int, v2: int) -> dict[str, Any]:
        return {"subject": subject, "v1": v1, "v2": v2, "changes": _diff_or_404(subject, v1, v2)}

    def _diff_or_404(subject: str, v1: int, v2: int) -> list[str]:
        from kafkalake.schema.model import SchemaError

        try:
            return diff(ctx.settings(), subject, v1, v2)
        except SchemaError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.post("/api/schemas/{subject}/check", dependencies=[Depends(access.schemas)])
    async def api_check(subject: str, request: Request) -> dict[str, Any]:
        """Checks a candidate schema (the request body); writes nothing."""
        return check(ctx.settings(), subject, (await request.body()).decode("utf-8", "replace"))

    @app.get("/schemas", response_class=HTMLResponse, dependencies=[Depends(access.schemas)])
    def schemas_page(request: Request, subject: str | None = None, v1: int | None = None,
                     v2: int | None = None) -> HTMLResponse:
        changes = _diff_or_404(subject, v1, v2) if subject and v1 and v2 else None
        return page(request, "schemas.html", subjects=_schemas(), diff_subject=subject, v1=v1, v2=v2,
                    changes=changes, result=None, candidate="", active="schemas")

    @app.post("/schemas/check", response_class=HTMLResponse, dependencies=[Depends(access.schemas)])
    def schemas_check(request: Request, subject: str = Form(...), candidate: str = Form(...)) -> HTMLResponse:
        """The form's "check" button: the registry's verdict, nothing registered."""
        result = check(ctx.settings(), subject, candidate)
        conf = migration_conf(subject, candidate) if result["compatible"] and result["existing"] is None else None
        return page(request, "schemas.html", subjects=_schemas(), diff_subject=None, v1=None, v2=None,
                    changes=None, result=result, candidate=candidate, check_subject=subject, migration_conf=conf,
                    migration_dag=MIGRATION_DAG,
                    active="schemas")


def _human_bytes(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
