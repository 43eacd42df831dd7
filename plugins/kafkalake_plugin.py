"""Registers kafkalake with Airflow: macros for templates, and the operator views.

The views (docs/operator-views.md) are a FastAPI app mounted on the api-server at
``/kafkalake``, with "Streams", "Lake" and "Schemas" in the navigation and a "kafkalake" tab
on every DAG's page (a ``stream_<name>`` DAG shows its stream there). Every route checks
Airflow's permissions itself (:mod:`kafkalake.airflow.views`); should those checks not
import, every route answers 403 (fail closed). Importing this file stays cheap: the app is
built from light modules, and reads nothing until a request comes.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)


def kafkalake_setting(name: str) -> str:
    """``{{ macros.kafkalake.kafkalake_setting('lake_root') }}``: a platform setting in a template."""
    from kafkalake.config import get_settings

    return str(getattr(get_settings(), name))


class _ViewsApp:
    """An ASGI app that builds the views' FastAPI app at its first request.

    Every Airflow process imports the plugins (a task does, for the macros); only the
    api-server serves the views, so only it pays for FastAPI and the access checks.
    """

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = _views_app()
        await self._app(scope, receive, send)


def _views_app() -> Any:
    from kafkalake.config import get_settings
    from kafkalake.ui.app import Access, create_app, deny_all

    try:
        from kafkalake.airflow.views import view_access

        access = Access(**view_access())
    except ImportError as exc:  # an Airflow without the api-server's access checks: refuse everything
        log.error("kafkalake views: Airflow's access checks do not import (%s); every route answers 403", exc)
        access = deny_all()
    app = create_app(access, settings_factory=get_settings)
    app.state.kafkalake.warm_up()
    return app


def _nav(name: str, route: str) -> dict[str, str]:
    """A navigation entry; ``href`` is relative to Airflow's base URL (works behind a path prefix)."""
    return {"name": name, "href": f"kafkalake/{route}", "destination": "nav", "url_route": f"kafkalake-{route}",
            "category": "browse"}


class KafkalakePlugin(AirflowPlugin):
    name = "kafkalake"
    macros = [kafkalake_setting]
    fastapi_apps = [{"app": _ViewsApp(), "url_prefix": "/kafkalake", "name": "kafkalake operator views"}]
    external_views = [
        _nav("Streams", "streams"),
        _nav("Lake", "lake"),
        _nav("Schemas", "schemas"),
        {"name": "kafkalake", "href": "kafkalake/dag/{DAG_ID}", "destination": "dag", "url_route": "kafkalake-stream"},
    ]
