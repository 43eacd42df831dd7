"""Fast, lossless Avro producer and the fridge-fleet simulator (the notebook's devices).

Why it is fast (the notebook's approach builds a new ``avro.io.DatumWriter`` + ``BytesIO`` + ``BinaryEncoder``
per record and calls ``produce()`` for each):

* the writer schema is parsed once (fastavro), and each record is encoded by fastavro's
  compiled writer straight into a ``bytearray`` that already holds the 5-byte Confluent header
  (no second copy for framing);
* librdkafka batches (``linger.ms``, large ``batch.size``) and compresses (lz4, cheap on CPU);
* delivery reports stay in C for successes (``delivery.report.only.error``): Python sees
  only failures, and success is counted exactly as *produced - failed - still queued* once
  ``flush()`` has returned 0 — a message is either delivered, or reported failed, or queued.

Why it is safe: idempotence on, ``acks=all``; any record that is not delivered makes the run
fail with the count (``ProduceReport.ok``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafkalake.errors import KafkalakeError
from kafkalake.produce.fleet import FleetMessage

log = logging.getLogger(__name__)


#: librdkafka settings: safe (idempotent, acks=all) and tuned for throughput on 2 cores.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 25,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "delivery.report.only.error": True,
    "message.timeout.ms": 120_000,
}


class ProduceError(KafkalakeError):
    """Records were not delivered; the message gives the count and the first error."""


def producer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap_servers, **PRODUCER_DEFAULTS, **overrides}


@dataclass
class ProduceReport:
    """What happened to every message handed to :func:`produce_messages`."""

    produced: int = 0
    failed: int = 0
    undelivered: int = 0  # still queued when flush gave up
    garbage: int = 0
    by_schema_id: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    first_error: str | None = None
    workers: int = 1

    @property
    def delivered(self) -> int:
        return self.produced - self.failed - self.undelivered

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.undelivered == 0

    @property
    def rate(self) -> float:
        return self.produced / self.seconds if self.seconds else 0.0

    def merge(self, other: ProduceReport) -> None:
        """Add a worker's report (counts add up; the wall clock is the caller's)."""
        self.produced += other.produced
        self.failed += other.failed
        self.undelivered += other.undelivered
        self.garbage += other.garbage
        for schema_id, n in other.by_schema_id.items():
            self.by_schema_id[schema_id] = self.by_schema_id.get(schema_id, 0) + n
        self.first_error = self.first_error or other.first_error

    def raise_for_loss(self, topic: str) -> None:
        if not self.ok:
            raise ProduceError(
                f"{self.failed + self.undelivered} of {self.produced} records were not delivered to "
                f"{topic!r} ({self.failed} failed, {self.undelivered} still queued): {self.first_error or 'timeout'}; "
                "check that the broker is up (`kafkalake kafka status`) and produce again"
            )


#: Messages handed to librdkafka per ``produce_batch`` call: one C call instead of thousands.
BATCH = 5_000


def produce_messages(
    producer: Any,
    topic: str,
    messages: Iterable[FleetMessage],
    *,
    rate: float | None = None,
    on_progress: Callable[[int, float], None] | None = None,
    progress_every: int = 50_000,
    flush_timeout: float = 120.0,
) -> ProduceReport:
    """Send every message; count delivery failures; never drop silently.

    ``rate`` (records/s) paces the loop in slices of 1/50 s; None means as fast as possible.
    """
    from confluent_kafka import KafkaError

    report = ProduceReport()
    by_id = report.by_schema_id

    def on_delivery(err: Any, _msg: Any) -> None:
        # with delivery.report.only.error only failures reach Python
        if err is not None:
            report.failed += 1
            if report.first_error is None:
                report.first_error = str(err)

    queue_full = KafkaError._QUEUE_FULL

    def send(batch: list[dict[str, Any]]) -> None:
        while batch:
            queued = producer.produce_batch(topic, batch, on_delivery=on_delivery)
            if queued == len(batch):
                return
            retry = []
            for item in batch:
                err = item.pop("_error", None)
                if err is None:
                    continue
                if err.code() == queue_full:  # local queue full: let librdkafka drain it
                    retry.append(item)
                else:
                    report.failed += 1
                    report.first_error = report.first_error or str(err)
            batch = retry
            producer.poll(0.05)

    started = time.perf_counter()
    chunk = max(1, min(BATCH, int(rate / 50))) if rate else BATCH
    next_report = progress_every
    batch: list[dict[str, Any]] = []
    append = batch.append
    counts: dict[int | None, int] = {}  # schema id -> messages; None -> malformed
    count_of = counts.get
    produced = 0
    for key, value, schema_id, _kind in messages:
        append({"value": value, "key": key})
        counts[schema_id] = count_of(schema_id, 0) + 1
        if len(batch) < chunk:
            continue
        send(batch)
        produced += len(batch)
        batch.clear()
        producer.poll(0)
        if rate:
            ahead = produced / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
        if on_progress is not None and produced >= next_report:
            next_report += progress_every
            on_progress(produced, time.perf_counter() - started)
    if batch:
        send(batch)
        produced += len(batch)
    report.produced, report.garbage = produced, counts.pop(None, 0)
    by_id.update(counts)
    report.undelivered = producer.flush(flush_timeout)
    producer.poll(0)  # run the callbacks of the last failures
    report.seconds = time.perf_counter() - started
    if on_progress is not None:
        on_progress(report.produced, report.seconds)
    return report


def produce_parallel(
    *,
    bootstrap_servers: str,
    topic: str,
    shard_messages: Callable[[int, int], Iterable[FleetMessage]],
    workers: int,
    rate: float | None = None,
    on_progress: Callable[[int, float], None] | None = None,
    progress_every: int = 50_000,
    producer_overrides: Mapping[str, Any] | None = None,
    flush_timeout: float = 130.0,
) -> ProduceReport:
    """Run :func:`produce_messages` in ``workers`` forked processes, one producer each.

    ``shard_messages(shard, shards)`` yields the messages of one shard; sharding by message
    key keeps every device's records in order (one key -> one worker -> one partition).
    Encoding is CPU-bound Python: a second process is what uses the second core.
    """
    if workers <= 1:
        started = time.perf_counter()
        report = produce_messages(
            make_producer(bootstrap_servers, **(producer_overrides or {})), topic, shard_messages(0, 1),
            rate=rate, on_progress=on_progress, progress_every=progress_every, flush_timeout=flush_timeout,
        )
        report.seconds = time.perf_counter() - started
        return report

    import multiprocessing as mp

    ctx = mp.get_context("fork")  # the shard function and its encoders are inherited, not pickled
    progress = ctx.Array("q", workers)
    results = ctx.SimpleQueue()
    shard_rate = rate / workers if rate else None

    def run(shard: int) -> None:
        def tick(done: int, _elapsed: float) -> None:
            progress[shard] = done

        try:
            report = produce_messages(
                make_producer(bootstrap_servers, **(producer_overrides or {})), topic, shard_messages(shard, workers),
                rate=shard_rate, on_progress=tick, progress_every=max(1, progress_every // workers),
                flush_timeout=flush_timeout,
            )
            results.put((shard, report, None))
        except BaseException as exc:  # reported to the parent, which raises
            results.put((shard, None, f"{type(exc).__name__}: {exc}"))

    started = time.perf_counter()
    procs = [ctx.Process(target=run, args=(shard,), name=f"kafkalake-produce-{shard}") for shard in range(workers)]
    for proc in procs:
        proc.start()
    total = ProduceReport(workers=workers)
    pending = workers
    errors: list[str] = []
    last = 0
    while pending:
        if results.empty():
            time.sleep(0.1)
            done = sum(progress)
            if on_progress is not None and done - last >= progress_every:
                last = done
                on_progress(done, time.perf_counter() - started)
            if not any(p.is_alive() for p in procs) and results.empty():
                errors.append("a producer worker died without a report")
                break
            continue
        _shard, report, error = results.get()
        pending -= 1
        if error:
            errors.append(error)
        else:
            total.merge(report)
    for proc in procs:
        proc.join()
    total.seconds = time.perf_counter() - started
    if errors:
        raise ProduceError(f"producer worker failed: {errors[0]}")
    if on_progress is not None:
        on_progress(total.produced, total.seconds)
    return total


def make_producer(bootstrap_servers: str, **overrides: Any) -> Any:
    from confluent_kafka import Producer

    # librdkafka's own log lines (e.g. "idempotence PID: coordinator load in progress:
    # retrying" on a fresh broker) are retries it handles; lost records surface as
    # delivery failures, which ProduceReport counts.
    rdkafka_log = logging.getLogger("kafkalake.producer.rdkafka")
    rdkafka_log.setLevel(logging.ERROR)
    return Producer({**producer_config(bootstrap_servers, **overrides), "logger": rdkafka_log})


def produce_timed(bootstrap_servers: str, topic: str, messages: Iterable[tuple[bytes, bytes, float]]) -> int:
    """Send ``(key, value, timestamp in seconds)`` with explicit (CreateTime) timestamps, in
    order; waits for delivery. For replays of buffered readings (demo) and past hours (tests)."""
    producer = make_producer(bootstrap_servers)
    sent = 0
    for key, value, stamp in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key, timestamp=int(stamp * 1000))
                break
            except BufferError:
                producer.poll(0.1)
        sent += 1
    if producer.flush(60):
        raise ProduceError(f"not every record reached {topic} within 60 s")
    return sent
