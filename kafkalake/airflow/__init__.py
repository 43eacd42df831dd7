"""Airflow adapters (hooks, operators, sensors). The only place that imports Airflow."""
