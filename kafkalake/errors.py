"""Errors a user can act on: the CLI prints ``str(error)`` as one line and exits with its code.

:class:`ExitCode` is the one table of exit codes (the README lists it); each error class names
its code, so a script or an Airflow task can tell a refusal from a crash.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of ``kafkalake`` and the Spark jobs in ``spark_jobs/``."""

    OK = 0
    #: a refused or invalid input (a schema, a stream declaration, a parameter)
    ERROR = 1
    #: bad command-line arguments (click's usage errors)
    USAGE = 2
    #: the machine lacks something the platform needs (Java, jars, a free port)
    SETUP = 3
    #: a local service (Kafka, Airflow) failed to start, stop or answer
    SERVICE = 4
    #: another driver holds the stream's checkpoint
    STREAM_BUSY = 5
    #: Kafka no longer holds offsets the stream needs (accept the gap deliberately)
    DATA_LOSS = 6
    #: a compaction run failed; nothing of it was published
    COMPACTION = 7
    #: a schema migration step failed
    MIGRATION = 8
    #: a backfill was refused or failed; nothing of it was published
    BACKFILL = 9
    #: the published hours of a backfill do not add up with Kafka's offsets
    BACKFILL_VERIFY = 10
    #: a check job found the platform wrong (e.g. the platform check read an unexpected count)
    CHECK_FAILED = 11
    #: a stream driver ended itself: its supervisor asked it to, or it made no progress for
    #: twice its health window (a restart from the checkpoint fixes it)
    STALLED = 12
    #: interrupted (Ctrl-C)
    INTERRUPTED = 130


#: exit codes of a Spark job that a retry cannot change (the same input, setup or checkpoint
#: owner would be refused again): the Airflow task fails at once instead of retrying
FINAL_EXIT_CODES = frozenset({ExitCode.USAGE, ExitCode.SETUP, ExitCode.STREAM_BUSY, ExitCode.DATA_LOSS,
                              ExitCode.CHECK_FAILED})


class KafkalakeError(Exception):
    """Base class: the message is one actionable line (what failed, what to do next)."""

    exit_code: ExitCode = ExitCode.ERROR


class SetupError(KafkalakeError):
    """The machine lacks something the platform needs (Java, jars, a free port)."""

    exit_code = ExitCode.SETUP


class ServiceError(KafkalakeError):
    """A local service (Kafka, Airflow) failed to start, stop or answer."""

    exit_code = ExitCode.SERVICE
