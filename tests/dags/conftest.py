from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkalake.config import Settings
from kafkalake.platform.local_airflow import airflow_env


@pytest.fixture(scope="session")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A DagBag over dags/, parsed with the platform's Airflow environment (own AIRFLOW_HOME)."""
    state = tmp_path_factory.mktemp("dagbag")
    env = airflow_env(Settings.from_env({"KAFKALAKE_STATE_DIR": str(state)}), base={})
    # Parse under the platform's AIRFLOW_* settings, then restore the environment: other
    # tests must not inherit them.
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            if key.startswith("AIRFLOW"):
                mp.setenv(key, value)
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=Path(env["AIRFLOW__CORE__DAGS_FOLDER"]))
    yield bag
