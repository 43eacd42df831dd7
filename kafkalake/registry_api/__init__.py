"""A Confluent-compatible Schema Registry REST API over the git registry folder.

Confluent clients (serializers, deserializers, ``SchemaRegistryClient``) resolve kafkalake's
schema ids through it; the folder stays the single source of truth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.registry_api.app import create_app
    from kafkalake.registry_api.errors import RegistryApiError
    from kafkalake.registry_api.server import serve
    from kafkalake.registry_api.shapes import CONTENT_TYPE

_EXPORTS = {
    "CONTENT_TYPE": "shapes",
    "RegistryApiError": "errors",
    "create_app": "app",
    "serve": "server",
}
__all__ = [
    "CONTENT_TYPE",
    "RegistryApiError",
    "create_app",
    "serve",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
