"""Errors a user can act on: the CLI prints ``str(error)`` as one line and exits non-zero."""

from __future__ import annotations


class KafkalakeError(Exception):
    """Base class: the message is one actionable line (what failed, what to do next)."""

    exit_code: int = 1


class SetupError(KafkalakeError):
    """The machine lacks something the platform needs (Java, jars, a free port)."""

    exit_code = 3


class ServiceError(KafkalakeError):
    """A local service (Kafka, Airflow) failed to start, stop or answer."""

    exit_code = 4
