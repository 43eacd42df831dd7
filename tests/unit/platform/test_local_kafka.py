"""The local broker's pure parts."""

from __future__ import annotations

import base64

from kafkalake.platform.local_kafka import _new_cluster_id


def test_cluster_ids_never_start_with_a_dash() -> None:
    """One id in 64 would: kafka-storage's parser took it for an option and the session's broker
    never started (a CI run failed so)."""
    dashed = bytes([0xF8]) + bytes(15)  # base64 "-A...": 0xF8 >> 2 == 62, the "-" of the URL-safe alphabet
    assert base64.urlsafe_b64encode(dashed).decode().startswith("-")
    draws = iter([dashed, dashed, bytes(range(16))])
    cluster_id = _new_cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")
    assert len(cluster_id) == 22 and not any(_new_cluster_id().startswith("-") for _ in range(500))
