"""``kafkalake registry serve``: the Confluent-compatible REST API over the registry folder."""

from __future__ import annotations

from pathlib import Path

import typer

from kafkalake.cli.app import _say, _settings, app

registry_app = typer.Typer(
    help="The Confluent-compatible Schema Registry API over the registry folder.", no_args_is_help=True
)
app.add_typer(registry_app, name="registry")


@registry_app.command("serve")
def serve(
    host: str | None = typer.Option(None, "--host", help="Address to bind (default: KAFKALAKE_REGISTRY_HOST)."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535,
                                    help="Port (default: KAFKALAKE_REGISTRY_PORT)."),
    allow_register: bool | None = typer.Option(
        None, "--allow-register/--read-only",
        help="Accept POST /subjects/<s>/versions (default: KAFKALAKE_REGISTRY_ALLOW_REGISTER).",
    ),
    schemas_dir: Path | None = typer.Option(
        None, "--schemas-dir", file_okay=False, help="Registry folder (default: KAFKALAKE_SCHEMAS_DIR)."
    ),
) -> None:
    """Serve schemas/ to Confluent clients until stopped; folder changes are served at once."""
    from kafkalake.registry_api.server import serve as serve_api

    settings = _settings()
    host = host or settings.registry_host
    port = port or settings.registry_port
    allowed = settings.registry_allow_register if allow_register is None else allow_register
    folder = schemas_dir or settings.schemas_dir
    _say(f"registry: serving {folder} at http://{host}:{port} ({'read-write' if allowed else 'read-only'})")
    serve_api(folder, host=host, port=port, allow_register=allowed)
