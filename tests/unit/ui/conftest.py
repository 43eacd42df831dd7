"""Fixtures of the operator-view unit tests: a state folder with streams and their files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kafkalake.config import Settings, get_settings


@pytest.fixture
def ui_settings(tmp_path: Path) -> Settings:
    """Two streams (``fridge``, ``plant``), a state folder and a lake of their own."""
    doc = {"streams": [{"name": "fridge", "topics": ["fridge-events"], "subject": "fridge", "trigger": "5 seconds"},
                       {"name": "plant", "topics": ["plant-events"], "subject": "fridge", "trigger": "5 seconds",
                        "fail_on_data_loss": False}]}
    streams_file = tmp_path / "streams.yaml"
    streams_file.write_text(json.dumps(doc))
    return get_settings().with_overrides(streams_file=streams_file, state_dir=tmp_path / "state",
                                         lake_root=tmp_path / "lake")
