"""The fridge fleet simulator: old fridges keep sending v1 while new ones send v2."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kafkalake.wire.encoder import FramedEncoder
from kafkalake.wire.framing import HEADER, HEADER_SIZE, MAGIC, DecodeReason

ACTIONS = ("open", "close", "defrost", "door_alarm", "eco_mode")

#: Kinds of malformed payloads --inject-garbage mixes in: one per decode failure reason.
GARBAGE_KINDS: tuple[str, ...] = tuple(
    reason.value
    for reason in (
        DecodeReason.EMPTY, DecodeReason.SHORT_HEADER, DecodeReason.BAD_MAGIC, DecodeReason.UNKNOWN_SCHEMA_ID,
        DecodeReason.TRUNCATED, DecodeReason.CORRUPT, DecodeReason.TRAILING_BYTES,
    )
)
#: A schema id no registry hands out (ids are small, increasing integers).
UNREGISTERED_SCHEMA_ID = 2_000_000_000


#: One Kafka message to send: ``(key, value, schema_id, garbage_kind)``. ``schema_id`` is None
#: for a malformed payload, whose kind is then named. A plain tuple, not a class: one is made
#: per record in the hot loop, and a tuple display is the cheapest object Python builds.
FleetMessage = tuple[bytes, bytes, "int | None", "str | None"]


@dataclass
class FridgeFleet:
    """D fridges keyed by device id; the first ``round(D * v1_fraction)`` keep sending v1.

    As in the notebook, old devices never upgrade: a consumer on v2 must keep reading
    v1 records forever. Records are deterministic for a given ``seed``.
    """

    v1: FramedEncoder
    v2: FramedEncoder
    devices: int = 100
    v1_fraction: float = 0.3
    garbage_fraction: float = 0.0
    seed: int = 7
    start_time: int | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError("devices must be >= 1")
        if not 0.0 <= self.v1_fraction <= 1.0:
            raise ValueError("v1_fraction must be within [0, 1]")
        if not 0.0 <= self.garbage_fraction < 1.0:
            raise ValueError("garbage_fraction must be within [0, 1)")
        self._rng = random.Random(self.seed)
        self.device_ids = [f"fridge-{i:05d}" for i in range(self.devices)]
        self.device_keys = [d.encode() for d in self.device_ids]
        self.v1_devices = round(self.devices * self.v1_fraction)

    def records(self, count: int, *, shard: int = 0, shards: int = 1) -> Iterator[tuple[int, dict[str, Any]]]:
        """(device index, record) pairs; v1 devices' records have no temperature field.

        With ``shards`` > 1 only the records of devices ``dev % shards == shard`` are made, so
        parallel workers together send exactly the records one worker would (same count).
        """
        rng = random.Random(self.seed * 1_000 + shard) if shards > 1 else self._rng
        now = int(self.start_time if self.start_time is not None else time.time())
        n_dev = self.devices
        v1_devices = self.v1_devices
        for i in range(count):
            dev = i % n_dev
            if shards > 1 and dev % shards != shard:
                continue
            record: dict[str, Any] = {
                "name": self.device_ids[dev],
                "action": ACTIONS[rng.randrange(len(ACTIONS))],
                "sendtime": now + i // n_dev,
            }
            if dev >= v1_devices:
                record["temperature"] = round(rng.uniform(-4.0, 8.0), 2)
            yield dev, record

    def messages(self, count: int, *, shard: int = 0, shards: int = 1) -> Iterator[FleetMessage]:
        """``count`` valid records, plus malformed ones at ``garbage_fraction`` of the total."""
        garbage_every = round(1 / self.garbage_fraction) if self.garbage_fraction else 0
        kinds = shard
        emitted = 0
        for dev, record in self.records(count, shard=shard, shards=shards):
            encoder = self.v1 if dev < self.v1_devices else self.v2
            yield (self.device_keys[dev], encoder.encode(record), encoder.schema_id, None)
            emitted += 1
            if garbage_every and emitted % (garbage_every - 1 or 1) == 0:
                kind = GARBAGE_KINDS[kinds % len(GARBAGE_KINDS)]
                kinds += 1
                yield (self.device_keys[dev], self.garbage(kind), None, kind)

    def garbage(self, kind: str) -> bytes:
        """One malformed payload of the given kind (see :data:`GARBAGE_KINDS`)."""
        good = self.v2.encode(
            {"name": "fridge-broken", "action": "open", "sendtime": 1_700_000_000, "temperature": 3.5}
        )
        if kind == DecodeReason.EMPTY:
            return b""
        if kind == DecodeReason.SHORT_HEADER:
            return bytes(good[:3])
        if kind == DecodeReason.BAD_MAGIC:
            return b"\x01" + bytes(good[1:])
        if kind == DecodeReason.UNKNOWN_SCHEMA_ID:
            return HEADER.pack(MAGIC, UNREGISTERED_SCHEMA_ID) + bytes(good[HEADER_SIZE:])
        if kind == DecodeReason.TRUNCATED:
            return bytes(good[: HEADER_SIZE + 4])
        if kind == DecodeReason.CORRUPT:
            # name's length as a huge negative zig-zag varint: no reader can take it
            return bytes(good[:HEADER_SIZE]) + b"\xff\xff\xff\xff\x0f" + bytes(good[HEADER_SIZE + 1 :])
        if kind == DecodeReason.TRAILING_BYTES:
            return bytes(good) + b"\x00\x00junk"
        raise ValueError(f"unknown garbage kind {kind!r}; known: {', '.join(GARBAGE_KINDS)}")


def fleet_from_registry(
    registry: Any,
    *,
    subject: str = "fridge",
    v1_version: int = 1,
    v2_version: int | None = None,
    devices: int,
    v1_fraction: float,
    garbage_fraction: float = 0.0,
    seed: int = 7,
) -> FridgeFleet:
    """The notebook's fleet: old fridges on ``v1_version``, the rest on the latest version."""
    v2 = registry.latest(subject) if v2_version is None else registry.get(subject, v2_version)
    v1 = registry.get(subject, v1_version)
    return FridgeFleet(
        v1=FramedEncoder.for_version(v1),
        v2=FramedEncoder.for_version(v2),
        devices=devices,
        v1_fraction=v1_fraction,
        garbage_fraction=garbage_fraction,
        seed=seed,
    )


def expected_garbage(count: int, garbage_fraction: float) -> int:
    """How many malformed messages :meth:`FridgeFleet.messages` adds to ``count`` records."""
    if not garbage_fraction:
        return 0
    every = round(1 / garbage_fraction) - 1 or 1
    return count // every
