"""Every DAG imports cleanly and carries what an operator needs (docs, tags, owner, retries)."""

from __future__ import annotations

import ast
from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = {"pyspark", "pandas", "confluent_kafka", "fastavro", "pyarrow", "duckdb"}


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "kafkalake_platform_check" in dagbag.dags


def test_dag_policy(dagbag) -> None:
    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 80, f"{dag_id}: doc_md missing or too short"
        assert dag.tags, f"{dag_id}: no tags"
        assert dag.catchup is False, f"{dag_id}: catchup must be explicit False"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id}: no owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id}: no retries"


def test_dag_files_import_nothing_heavy_at_parse_time() -> None:
    for path in DAGS.glob("*.py"):
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {(n.module or "").split(".")[0] for n in top_level if isinstance(n, ast.ImportFrom)}
        names |= {a.name.split(".")[0] for n in top_level if isinstance(n, ast.Import) for a in n.names}
        assert not names & HEAVY, f"{path.name} imports {names & HEAVY} at parse time"
