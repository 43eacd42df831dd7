"""Airflow sensors of the platform."""
