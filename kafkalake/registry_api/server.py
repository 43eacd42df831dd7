"""Run the API with uvicorn on a socket bound here first.

Binding before uvicorn starts turns a taken port into one actionable line (a
:class:`~kafkalake.errors.SetupError`, exit code 3) instead of uvicorn's log and exit 1,
and leaves no window in which another process could take the port between check and bind.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from kafkalake.errors import SetupError
from kafkalake.registry_api.app import create_app

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port, or a SetupError naming the setting to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SetupError(
            f"registry: cannot listen on {host}:{port} ({exc.strerror}); stop the process using it "
            "or choose another port with KAFKALAKE_REGISTRY_PORT (or --port)"
        ) from None
    return sock


def serve(schemas_dir: Path | str, *, host: str, port: int, allow_register: bool = False) -> None:
    """Serve until SIGTERM or Ctrl-C (uvicorn shuts down gracefully on both)."""
    import uvicorn

    sock = bind(host, port)
    app = create_app(schemas_dir, allow_register=allow_register)
    config = uvicorn.Config(app, log_level="info", access_log=True, server_header=False)
    log.info("serving %s read-%s", schemas_dir, "write" if allow_register else "only")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
