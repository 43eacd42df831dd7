"""What the DAG files share: table choices, param patterns, failing a task without retries.

Cheap to import at DAG parse time (no Spark, no Kafka client); the task bodies import the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kafkalake.config import Settings, get_settings
from kafkalake.lake.tables import HOUR_PATTERN, table_names
from kafkalake.schema.model import SUBJECT_PATTERN, Compatibility
from kafkalake.stream.config import load_streams

if TYPE_CHECKING:
    from kafkalake.errors import KafkalakeError

#: the compatibility modes a migration may override the subject's with (the trigger form's enum)
COMPATIBILITY_MODES = [mode.value for mode in Compatibility]

#: A stream DAG that failed this many runs in a row is paused by Airflow (DAG argument
#: ``max_consecutive_failed_dag_runs``): a refusal (exit code of FINAL_EXIT_CODES) fails every run
#: at once, and a @continuous DAG would otherwise start the refused job again and again.
STREAM_MAX_CONSECUTIVE_FAILED_RUNS = 3

__all__ = [
    "COMPATIBILITY_MODES", "HOUR_PATTERN", "STREAM_MAX_CONSECUTIVE_FAILED_RUNS", "SUBJECT_PATTERN",
    "fail_without_retry", "table_choices",
]


def table_choices(settings: Settings | None = None) -> list[str]:
    """Every table of the declared streams (``fridge``, ``fridge_avro``): a DAG's table enum."""
    settings = settings or get_settings()
    return table_names(load_streams(settings.streams_file).values())


@contextlib.contextmanager
def fail_without_retry(
    prefix: str = "", *, errors: tuple[type[KafkalakeError], ...] | None = None
) -> Iterator[None]:
    """Turn ``errors`` (default: any :class:`KafkalakeError`: bad params, a refused request) into a
    task failure that Airflow does not retry: the same input would be refused again."""
    from airflow.sdk.exceptions import AirflowFailException

    from kafkalake.errors import KafkalakeError

    caught = errors or (KafkalakeError,)
    try:
        yield
    except caught as exc:
        raise AirflowFailException(f"{prefix}{exc}") from None
