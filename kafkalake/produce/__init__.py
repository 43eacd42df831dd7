"""Producing Avro records to Kafka: the fast producer and the fridge fleet simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.produce.fleet import GARBAGE_KINDS, FridgeFleet, expected_garbage, fleet_from_registry
    from kafkalake.produce.producer import (
        PRODUCER_DEFAULTS,
        ProduceError,
        ProduceReport,
        make_producer,
        produce_messages,
        produce_parallel,
        produce_timed,
    )

_EXPORTS = {
    "PRODUCER_DEFAULTS": "producer",
    "ProduceError": "producer",
    "ProduceReport": "producer",
    "make_producer": "producer",
    "produce_messages": "producer",
    "produce_parallel": "producer",
    "produce_timed": "producer",
    "GARBAGE_KINDS": "fleet",
    "FridgeFleet": "fleet",
    "expected_garbage": "fleet",
    "fleet_from_registry": "fleet",
}
__all__ = [
    "FridgeFleet",
    "GARBAGE_KINDS",
    "PRODUCER_DEFAULTS",
    "ProduceError",
    "ProduceReport",
    "expected_garbage",
    "fleet_from_registry",
    "make_producer",
    "produce_messages",
    "produce_parallel",
    "produce_timed",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
