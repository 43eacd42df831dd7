"""Registers kafkalake with Airflow: macros for templates (cheap: no I/O at import)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def kafkalake_setting(name: str) -> str:
    """``{{ macros.kafkalake.kafkalake_setting('lake_root') }}``: a platform setting in a template."""
    from kafkalake.config import get_settings

    return str(getattr(get_settings(), name))


class KafkalakePlugin(AirflowPlugin):
    name = "kafkalake"
    macros = [kafkalake_setting]
