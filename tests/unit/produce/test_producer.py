"""The fleet simulator and the framed encoder (pure logic; producing is in tests/integration)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kafkalake.produce.fleet import GARBAGE_KINDS, FridgeFleet, expected_garbage, fleet_from_registry
from kafkalake.produce.producer import ProduceError, ProduceReport
from kafkalake.schema.registry import Registry
from kafkalake.wire.decoder import Decoder
from kafkalake.wire.encoder import FramedEncoder, encode
from kafkalake.wire.framing import DecodeError

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(SCHEMAS)


def _fleet(registry: Registry, **kwargs) -> FridgeFleet:
    args = {"devices": 10, "v1_fraction": 0.3, "seed": 3} | kwargs
    return fleet_from_registry(registry, **args)


def test_framed_encoder_equals_the_reference_wire_encoder(registry: Registry) -> None:
    for version in (registry.get("fridge", 1), registry.get("fridge", 2)):
        record = {"name": "fridge-00001", "action": None, "sendtime": 1_795_000_000}
        if version.version == 2:
            record["temperature"] = -2.5
        assert FramedEncoder.for_version(version).encode(record) == encode(version, record)


def test_v1_devices_send_v1_and_are_read_with_the_default(registry: Registry) -> None:
    fleet = _fleet(registry, devices=10, v1_fraction=0.3)
    decoder = Decoder(registry, "fridge")
    ids = Counter()
    for key, value, schema_id, kind in fleet.messages(1000):
        assert kind is None
        ids[schema_id] += 1
        decoded = decoder.decode_message(value)
        assert decoded.schema_id == schema_id
        assert decoded.record["name"] == key.decode()
        if schema_id == 1:
            assert decoded.record["temperature"] is None  # v1 bytes read with the v2 reader
        else:
            assert isinstance(decoded.record["temperature"], float)
    assert ids == {1: 300, 2: 700}


def test_every_garbage_kind_is_refused_with_its_own_reason(registry: Registry) -> None:
    fleet = _fleet(registry)
    decoder = Decoder(registry, "fridge")
    for kind in GARBAGE_KINDS:
        with pytest.raises(DecodeError) as caught:
            decoder.decode(fleet.garbage(kind))
        assert caught.value.reason.value == kind


def test_garbage_fraction_mixes_in_every_kind(registry: Registry) -> None:
    fleet = _fleet(registry, garbage_fraction=0.05)
    messages = list(fleet.messages(7_000))
    kinds = Counter(kind for _k, _v, schema_id, kind in messages if schema_id is None)
    valid = sum(1 for m in messages if m[2] is not None)
    assert valid == 7_000
    assert sum(kinds.values()) == expected_garbage(7_000, 0.05)
    assert set(kinds) == set(GARBAGE_KINDS)
    assert abs(sum(kinds.values()) / len(messages) - 0.05) < 0.002


def test_shards_together_send_what_one_worker_sends(registry: Registry) -> None:
    fleet = _fleet(registry, devices=7)
    single = Counter(key for key, *_ in fleet.messages(1_001))
    sharded = Counter()
    for shard in range(3):
        keys = [key for key, *_ in fleet.messages(1_001, shard=shard, shards=3)]
        assert {int(k.decode().split("-")[1]) % 3 for k in keys} == {shard}  # one key, one worker
        sharded.update(keys)
    assert sharded == single


def test_records_are_deterministic_per_seed(registry: Registry) -> None:
    a = [v for _k, v, *_ in _fleet(registry, seed=5).messages(50)]
    b = [v for _k, v, *_ in _fleet(registry, seed=5).messages(50)]
    c = [v for _k, v, *_ in _fleet(registry, seed=6).messages(50)]
    assert a == b and a != c


def test_bad_fleet_parameters_are_refused(registry: Registry) -> None:
    with pytest.raises(ValueError, match="v1_fraction"):
        _fleet(registry, v1_fraction=1.5)
    with pytest.raises(ValueError, match="devices"):
        _fleet(registry, devices=0)


def test_a_lost_record_is_an_error_with_the_count() -> None:
    report = ProduceReport(produced=10, failed=2, undelivered=1, first_error="Local: Message timed out")
    assert report.delivered == 7 and not report.ok
    with pytest.raises(ProduceError, match="3 of 10 records were not delivered to 'fleet'"):
        report.raise_for_loss("fleet")
    ProduceReport(produced=10).raise_for_loss("fleet")  # nothing lost: no error
