"""The ``kafkalake`` command: one module per command group, mounted on one Typer app.

Errors a user can act on (:class:`~kafkalake.errors.KafkalakeError`) print as one line on
stderr and exit with their :class:`~kafkalake.errors.ExitCode`; anything else is a bug and
keeps its traceback.
"""

# Each module registers its commands on import; this order is the order of `kafkalake --help`.
# isort: off
from kafkalake.cli import platform, streams, lake, spark  # noqa: F401 (imported to register the commands)
from kafkalake.cli import registry  # noqa: F401 (imported to register the commands)
# isort: on
from kafkalake.cli.app import app, main

__all__ = ["app", "main"]
