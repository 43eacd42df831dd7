"""Airflow hooks: connections and I/O (imported lazily by tasks: they pull in client libraries)."""
