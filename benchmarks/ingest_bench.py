"""Ingest throughput: the project's stream job vs the notebook's single-schema job, same data, same run.

1,000,000 fridge records (30 % of the devices still on v1) are preloaded into one topic with
the project's producer; then each job runs ``--available-now`` on the platform's master
(``local[2]``) with a fresh checkpoint and a new table, reading the whole topic in
:data:`BATCHES` micro-batches (``max_offsets_per_trigger`` = records / 5 for every job), with
kafkalake's Kafka read options (:data:`kafkalake.spark.KAFKA_READ_OPTIONS`) in every job:

* ``kafkalake``: ``kafkalake stream run NAME --available-now`` (spark_jobs/stream_ingest.py, a
  temp streams.yaml): routes every record to the ``from_avro`` of its writer version, checks
  it, counts what fails for the quarantine table, commits each batch to the stream's Iceberg
  table with its commit marker (:class:`kafkalake.stream.sink.IcebergBatchSink`).
* the notebook's approach, benchmarks/jobs/notebook_ingest.py: one ``from_avro`` with the
  subject's latest schema for every record (no routing, no check, no quarantine), the same
  columns as the stream's table. It decodes the v1 records wrongly (as all-null rows), so it
  is the cost floor, not an alternative. It runs twice per round:
  - ``notebook_iceberg``: into the same kind of Iceberg table (made by
    :func:`kafkalake.catalog.iceberg.ensure_table`: the same table properties, format v3,
    ``hours(timestamp)``), a ``foreachBatch`` append per batch. Same source, same columns,
    same table: THIS is the floor the goal is judged against, as only the decode and the
    sink's bookkeeping differ.
  - ``notebook_parquet``: into a plain Parquet file sink partitioned ``dt``/``hour`` of the
    Kafka timestamp: what the table format costs beside files alone (reported, not judged).

Clocks per run (the job order reverses every round so load drift is shared):

* processing: per micro-batch, from the checkpoint's ``offsets/N`` file (written when the
  batch is planned) to its ``commits/N`` file (written after the sink committed). Excludes
  JVM start, session and query start-up: decode + write + commit. The steady rate takes
  batches 2..N (the first batch of a fresh JVM also pays JIT warm-up); the verdict uses it.
* wall: the whole spark-submit process (the same JVM/Python start-up in every job).
* CPU of each run's JVM threads (:class:`ThreadCpu`): the task threads and the JIT compiler.

Medians over the rounds. Goal: kafkalake's steady rate >= 0.95x the ``notebook_iceberg``
job's, with every record in the stream's table once, under its writer version (read back
with pyiceberg, :func:`kafkalake.catalog.reading.scan_arrow`), and none quarantined.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.platform import bench_kafka, results_dir
from kafkalake.catalog.reading import row_count, scan_arrow
from kafkalake.config import Settings, get_settings
from kafkalake.kafka.topics import create_topic
from kafkalake.produce.fleet import fleet_from_registry
from kafkalake.produce.producer import produce_parallel
from kafkalake.schema.registry import Registry
from kafkalake.spark import jvm
from kafkalake.spark.session import KAFKA_READ_OPTIONS
from kafkalake.spark.submit import job_conf, job_env, spark_submit_argv, stream_conf
from kafkalake.stream.config import StreamConfig, get_stream, stream_paths

RECORDS = 1_000_000
#: five fresh JVMs per job: one run differs from the next by up to 20 % on these machines
ROUNDS = 5
#: rounds of a quick look (``--records`` below a fifth of :data:`RECORDS`)
QUICK_ROUNDS = 2
V1_FRACTION = 0.3
DEVICES = 100
GOAL_RATIO = 0.95
RUN_TIMEOUT = 1800.0
#: micro-batches per job: the verdict uses batches 2..N (steady state), all jobs alike
BATCHES = 5
#: the baseline the goal is judged against (see the module docstring)
BASELINE = "notebook_iceberg"
#: the notebook jobs, by the sink they write
NOTEBOOK_JOBS = ("notebook_iceberg", "notebook_parquet")
#: Spark settings of the Parquet file sink: a micro-batch touches one or two hour folders; keep
#: their writers open side by side instead of sorting every batch by the partition columns
PARQUET_SINK_CONF = {"spark.sql.maxConcurrentOutputFileWriters": "8"}
#: the notebook's single-schema job: a benchmark baseline, so it lives here, not in spark_jobs/
NOTEBOOK_JOB = Path(__file__).resolve().parent / "jobs" / "notebook_ingest.py"


# --------------------------------------------------------------------------- Spark processes


def _thread_kind(name: str) -> str:
    """A JVM thread's kind from its (15-character) Linux name."""
    if name.startswith("Executor task"):
        return "task"
    if name.startswith(("C1 Compiler", "C2 Compiler")):
        return "jit"
    if "GC" in name:
        return "gc"
    return "other"


class ThreadCpu:
    """CPU seconds (user + system) of a process's threads by kind, read from ``/proc``.

    Wall-clock rates swing by up to 20 % from one run to the next on these machines; the CPU
    the task threads burn per record is steadier, and the JIT's share shows what a fresh JVM
    pays. Sampled while the process runs; a thread that ended keeps its last reading, so the
    figures are short by at most one sampling interval of a thread that was busy when it ended
    (task threads are idle by the time the query stops). Linux only: empty elsewhere.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.threads: dict[str, tuple[str, int]] = {}

    def sample(self) -> None:
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat") as stat:
                    text = stat.read()
            except OSError:  # the thread ended meanwhile
                continue
            name = text[text.index("(") + 1:text.rindex(")")]
            fields = text[text.rindex(")") + 2:].split()
            self.threads[tid] = (name, int(fields[11]) + int(fields[12]))  # utime + stime

    def by_kind(self) -> dict[str, float]:
        kinds: dict[str, float] = {"task": 0.0, "jit": 0.0, "gc": 0.0, "other": 0.0}
        for name, ticks in self.threads.values():
            kinds[_thread_kind(name)] += ticks / self.tick
        return {kind: round(seconds, 2) for kind, seconds in kinds.items()}


def script_submit_argv(settings: Settings, script: Path, job_args: Sequence[str] = (), *,
                       conf: Mapping[str, str] | None = None) -> list[str]:
    """:func:`~kafkalake.spark.submit.spark_submit_argv` for a script outside spark_jobs/ (which
    ``job_path`` refuses): the same spark-submit, master, jars and conf."""
    jvm.find_java()
    argv = [str(Path(sys.executable).parent / "spark-submit"), "--master", settings.spark_master,
            "--name", f"kafkalake-{script.stem}", "--jars", jvm.spark_jars_arg(settings)]
    for key, value in job_conf(settings, conf).items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, str(script), *job_args]


class SparkProcess:
    """One spark-submit in its own process group: the JVM, the Python driver and any workers.

    Stopping kills that group only (SIGTERM, then SIGKILL), so nothing outlives a failed or
    interrupted benchmark.
    """

    def __init__(self, settings: Settings, job: str | Path, job_args: Sequence[str], *,
                 conf: Mapping[str, str] | None, log_path: Path) -> None:
        """``job``: a job name in spark_jobs/, or the path of a script elsewhere (a baseline's)."""
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w")  # closed in stop()
        if isinstance(job, Path):
            argv = script_submit_argv(settings, job, job_args, conf=conf)
        else:
            argv = spark_submit_argv(settings, job, job_args, conf=conf)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=job_env(settings), stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.cpu = ThreadCpu(self.proc.pid)  # spark-submit execs the JVM: same pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, *, timeout: float, label: str, tick: Callable[[], str] | None = None, every: float = 10.0) -> float:
        """Wait for the exit (progress line every ``every`` s); the process's wall seconds."""
        next_tick = time.perf_counter() + every
        while self.proc.poll() is None:
            now = time.perf_counter()
            if now - self.started > timeout:
                raise TimeoutError(f"{label}: spark-submit still running after {timeout:.0f}s (log: {self.log_path})")
            if now >= next_tick:
                next_tick += every
                print(f"    {label}: {now - self.started:5.0f}s {tick() if tick else ''}", flush=True)
            self.cpu.sample()
            time.sleep(0.2)
        seconds = time.perf_counter() - self.started
        if self.proc.returncode != 0:
            raise RuntimeError(f"{label}: spark-submit exited {self.proc.returncode}\n{self.tail()}")
        return seconds

    def tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) + f"\n(full log: {self.log_path})"

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, grace: float = 15.0) -> None:
        """Kill the process group if it is still there (idempotent)."""
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:  # the JVM is gone: make sure no child of its group lingers
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM (and SIGINT, which a non-interactive shell makes background jobs ignore) raise
    SystemExit in the main thread, so the ``finally`` blocks stop Spark and the broker."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, _frame: Any) -> None:
        print(f"interrupted ({signal.Signals(signum).name}): stopping Spark and the broker", flush=True)
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------- checkpoint


def _end_offsets(offsets_file: Path) -> dict[str, int]:
    ends: dict[str, int] = {}
    for line in offsets_file.read_text().splitlines()[2:]:
        if line.strip().startswith("{"):
            for topic, parts in json.loads(line).items():
                ends.update({f"{topic}-{p}": int(o) for p, o in parts.items()})
    return ends


def batch_seconds(checkpoint: Path) -> list[dict[str, Any]]:
    """Per committed batch: ``commits/N`` mtime - ``offsets/N`` mtime (planning -> committed),
    and its rows (end offsets of N minus those of N-1; the topic starts at offset 0)."""
    out = []
    commits = checkpoint / "commits"
    if not commits.is_dir():
        return out
    previous: dict[str, int] = {}
    for commit in sorted((p for p in commits.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        offsets = checkpoint / "offsets" / commit.name
        if offsets.exists():
            seconds = (commit.stat().st_mtime_ns - offsets.stat().st_mtime_ns) / 1e9
            ends = _end_offsets(offsets)
            rows = sum(end - previous.get(tp, 0) for tp, end in ends.items())
            previous = ends
            out.append({"batch_id": int(commit.name), "seconds": round(seconds, 3), "rows": rows})
    return out


def checkpoint_tick(checkpoint: Path) -> Callable[[], str]:
    def tick() -> str:
        planned = len([p for p in (checkpoint / "offsets").glob("[0-9]*")]) if (checkpoint / "offsets").is_dir() else 0
        done = len(batch_seconds(checkpoint))
        return f"batches planned {planned}, committed {done}" if planned else "starting (JVM, session, query)"

    return tick


# --------------------------------------------------------------------------- the runs

#: Spark's phases of a micro-batch (``durationMs``) the report splits each run's last batch into
PHASES = ("addBatch", "queryPlanning", "other")


def batch_phases(durations: Mapping[str, int]) -> dict[str, int]:
    """A batch's ``durationMs`` as ``addBatch`` (the tasks and the sink's commit),
    ``queryPlanning`` (the driver optimising the batch's plan) and ``other`` (offset lookups,
    offset and commit logs). The report takes each run's last batch: a steady one in every job.
    """
    add, planning = durations.get("addBatch", 0), durations.get("queryPlanning", 0)
    other = max(0, durations.get("triggerExecution", 0) - add - planning)
    return {"addBatch": add, "queryPlanning": planning, "other": other}


def _stream_settings(settings: Settings, name: str, topic: str, *, trigger: str = "5 seconds",
                     max_offsets_per_trigger: int | None = None,
                     housekeeping: Mapping[str, float] | None = None) -> tuple[Settings, StreamConfig]:
    """A temp streams.yaml with one stream on ``topic``; settings pointing at it."""
    entry: dict[str, Any] = {"name": name, "topics": [topic], "subject": "fridge", "sink_format": "parquet",
                             "trigger": trigger, "starting_offsets": "earliest"}
    if max_offsets_per_trigger:
        entry["max_offsets_per_trigger"] = max_offsets_per_trigger
    if housekeeping:
        entry["housekeeping"] = dict(housekeeping)
    streams_file = settings.state_dir / f"streams-{name}.yaml"
    streams_file.write_text(json.dumps({"streams": [entry]}))  # JSON is YAML
    stream_settings = settings.with_overrides(streams_file=streams_file)
    return stream_settings, get_stream(stream_settings, name)


def _run_kafkalake(settings: Settings, topic: str, round_no: int, max_offsets: int) -> dict[str, Any]:
    stream_settings, stream = _stream_settings(settings, f"ingest_r{round_no}", topic,
                                               max_offsets_per_trigger=max_offsets)
    paths = stream_paths(stream_settings, stream)
    job = SparkProcess(stream_settings, "stream_ingest", [stream.name, "--available-now"], conf=stream_conf(stream),
                       log_path=settings.state_dir / "logs" / f"{stream.name}.log")
    try:
        wall = job.wait(timeout=RUN_TIMEOUT, label=f"kafkalake{'':11} round {round_no}",
                        tick=checkpoint_tick(paths.checkpoint))
    finally:
        job.stop()
    status = json.loads(paths.status_file.read_text())
    last = status["queries"].get(stream.name, {})
    return {"wall_seconds": round(wall, 3), "batches": batch_seconds(paths.checkpoint),
            "table": stream.name, "quarantine_table": stream.quarantine_table,
            "cpu_seconds": job.cpu.by_kind(), "last_batch_ms": batch_phases(last.get("durations_ms") or {}),
            "status": {"state": status["state"], "lag": status.get("lag"), "last_batch": {
                k: last.get(k) for k in ("batch_id", "input_rows", "batch_duration_ms")}}}


def _run_notebook(settings: Settings, topic: str, round_no: int, schema: dict[str, Any], max_offsets: int, *,
                  name: str) -> dict[str, Any]:
    checkpoint = settings.state_dir / "checkpoints" / name / f"r{round_no}"
    args = ["--topic", topic, "--schema-file", schema["file"], "--schema-id", str(schema["id"]),
            "--schema-version", str(schema["version"]), "--checkpoint", str(checkpoint),
            "--max-offsets-per-trigger", str(max_offsets), *[f"--kafka-option={k}={v}"
                                                             for k, v in KAFKA_READ_OPTIONS.items()]]
    if name == "notebook_iceberg":
        sink: dict[str, Any] = {"table": f"{name}_r{round_no}"}
        args += ["--table", sink["table"]]
        conf = None
    else:
        sink = {"path": settings.lake_root / name / f"r{round_no}"}
        args += ["--path", str(sink["path"])]
        conf = PARQUET_SINK_CONF
    job = SparkProcess(settings, NOTEBOOK_JOB, args, conf=conf,
                       log_path=settings.state_dir / "logs" / f"{name}_r{round_no}.log")
    try:
        wall = job.wait(timeout=RUN_TIMEOUT, label=f"{name:20} round {round_no}", tick=checkpoint_tick(checkpoint))
        progress = next((json.loads(line.split(" ", 1)[1]) for line in job.output().splitlines()
                         if line.startswith("NOTEBOOK_PROGRESS ")), None)
    finally:
        job.stop()
    last = (progress or {}).get("batches") or [{}]
    return {"wall_seconds": round(wall, 3), "batches": batch_seconds(checkpoint), **sink,
            "cpu_seconds": job.cpu.by_kind(), "last_batch_ms": batch_phases(last[-1].get("durations_ms") or {}),
            "spark_progress": progress}


# --------------------------------------------------------------------------- checks


def check_kafkalake_table(settings: Settings, table: str, quarantine_table: str, produced: int,
                          by_version: dict[int, int]) -> dict[str, Any]:
    """Through pyiceberg: every record once (distinct Kafka coordinates), per writer version;
    v1 rows carry temperature null, v2 rows a temperature; nothing quarantined."""
    import pyarrow.compute as pc

    rows = scan_arrow(settings, table, columns=("schema_version", "temperature", "partition", "offset"))
    versions = {row["schema_version"]: row["schema_version_count"]
                for row in rows.group_by("schema_version").aggregate([("schema_version", "count")]).to_pylist()}
    distinct = rows.group_by(["partition", "offset"]).aggregate([]).num_rows
    is_v1 = pc.equal(rows["schema_version"], 1)
    wrong_temperature = pc.sum(pc.xor(is_v1, pc.invert(pc.is_valid(rows["temperature"])))).as_py() or 0
    quarantined = row_count(settings, quarantine_table)
    ok = (rows.num_rows == produced and distinct == produced and dict(sorted(versions.items())) == by_version
          and wrong_temperature == 0 and quarantined == 0)
    return {"ok": ok, "rows": rows.num_rows, "distinct_offsets": distinct, "by_version": versions,
            "expected_by_version": by_version, "rows_with_wrong_temperature": wrong_temperature,
            "quarantined": quarantined}


def check_notebook_output(settings: Settings, result: Mapping[str, Any]) -> dict[str, Any]:
    """Rows a notebook job wrote, and how many are all-null (records it could not decode)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if "table" in result:
        names = scan_arrow(settings, result["table"], columns=("name",))["name"]
    else:  # Spark's file sink: its commit log and temp files start with _ or ., which the dataset skips
        names = ds.dataset(result["path"], format="parquet", partitioning="hive").to_table(columns=["name"])["name"]
    return {"rows": len(names), "all_null_rows": len(names) - (pc.count(names).as_py() or 0)}


# --------------------------------------------------------------------------- main


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def mean_ratio_interval(ratios: list[float], *, resamples: int = 10_000) -> dict[str, float] | None:
    """The paired ratios' geometric mean and a 95 % bootstrap interval of it (fixed seed).

    One round's ratio moves by up to 20 % on two cores; the interval says whether a run of
    many rounds can tell its mean from a goal. A round without a rate (ratio 0 or nan) is left
    out; None below four rounds (too few to resample).
    """
    import math
    import random

    logs = [math.log(r) for r in ratios if r > 0]
    if len(logs) < 4:
        return None
    rng = random.Random(0)
    means = sorted(statistics.fmean(rng.choices(logs, k=len(logs))) for _ in range(resamples))
    low, high = means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]
    return {"mean": round(math.exp(statistics.fmean(logs)), 3), "low": round(math.exp(low), 3),
            "high": round(math.exp(high), 3)}


def _rates(result: dict[str, Any], count: int) -> None:
    processing = sum(b["seconds"] for b in result["batches"])
    result["processing_seconds"] = round(processing, 3)
    result["processing_rate"] = round(count / processing, 1) if processing else None
    steady = result["batches"][1:]  # the first batch of a fresh JVM also pays JIT warm-up
    steady_s = sum(b["seconds"] for b in steady)
    result["steady_rate"] = round(sum(b["rows"] for b in steady) / steady_s, 1) if steady_s else None
    result["wall_rate"] = round(count / result["wall_seconds"], 1)


def main(*, records: int | None = None, rounds: int | None = None) -> int:
    count = records or RECORDS
    rounds = rounds or (ROUNDS if count >= RECORDS // 5 else QUICK_ROUNDS)
    registry = Registry(get_settings().schemas_dir)
    fleet = fleet_from_registry(registry, devices=DEVICES, v1_fraction=V1_FRACTION)
    versions_by_id = {registry.get("fridge", n).schema_id: n for n in registry.versions("fridge")}
    workers = min(4, os.cpu_count() or 1)
    print(f"ingest benchmark: {count:,} fridge records ({V1_FRACTION:.0%} of {DEVICES} devices on v1), "
          f"{rounds} rounds, kafkalake stream vs notebook jobs ({', '.join(NOTEBOOK_JOBS)}), --available-now",
          flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"kafkalake": [], **{name: [] for name in NOTEBOOK_JOBS}}
    checks: list[dict[str, Any]] = []
    notebook_checks: dict[str, list[dict[str, Any]]] = {name: [] for name in NOTEBOOK_JOBS}
    with terminate_as_exit(), bench_kafka() as settings:
        print(f"  spark master {settings.spark_master}; broker {settings.bootstrap_servers}", flush=True)
        topic = f"bench-ingest-{int(time.time())}"
        create_topic(settings.bootstrap_servers, topic, partitions=2)
        report = produce_parallel(
            bootstrap_servers=settings.bootstrap_servers, topic=topic, workers=workers,
            shard_messages=lambda shard, shards: fleet.messages(count, shard=shard, shards=shards),
            on_progress=lambda done, secs: print(f"  preloading {done:>10,} records ({secs:.1f}s)", flush=True),
            progress_every=max(10_000, count // 4),
        )
        report.raise_for_loss(topic)
        by_version = {versions_by_id[sid]: n for sid, n in sorted(report.by_schema_id.items())}
        print(f"  preloaded {report.delivered:,} records {by_version} (by version) in {report.seconds:.1f}s",
              flush=True)
        latest = registry.latest("fridge")
        schema_file = settings.state_dir / "notebook-schema.avsc"
        schema_file.write_text(latest.schema_json)
        schema = {"file": str(schema_file), "id": latest.schema_id, "version": latest.version}

        max_offsets = max(1, count // BATCHES)
        for round_no in range(1, rounds + 1):
            order = list(runs) if round_no % 2 else list(reversed(runs))
            for name in order:
                if name == "kafkalake":
                    result = _run_kafkalake(settings, topic, round_no, max_offsets)
                    check = check_kafkalake_table(settings, result["table"], result["quarantine_table"],
                                                  report.delivered, by_version)
                    checks.append(check)
                    result["check_ok"] = check["ok"]
                    extra = f"table check {'ok' if check['ok'] else 'FAILED'}"
                else:
                    result = _run_notebook(settings, topic, round_no, schema, max_offsets, name=name)
                    written = check_notebook_output(settings, result)
                    notebook_checks[name].append(written)
                    result["rows_written"] = written["rows"]
                    extra = f"{written['all_null_rows']:,} of {written['rows']:,} rows all-null (misdecoded)"
                _rates(result, count)
                runs[name].append(result)
                print(f"  round {round_no} {name:17} steady {result['steady_rate'] or 0:>9,.0f} rec/s | "
                      f"processing {result['processing_seconds']:6.1f}s = {result['processing_rate'] or 0:>9,.0f}"
                      f" rec/s ({len(result['batches'])} batch(es)) | wall {result['wall_seconds']:6.1f}s = "
                      f"{result['wall_rate']:>9,.0f} rec/s | CPU task {result['cpu_seconds']['task']:5.2f}s "
                      f"JIT {result['cpu_seconds']['jit']:5.2f}s | {extra}", flush=True)

    def ratios(rates: Mapping[str, float]) -> dict[str, float]:
        """kafkalake's rate over each notebook job's."""
        return {base: round(rates["kafkalake"] / rates[base], 3) if rates[base] else float("nan")
                for base in NOTEBOOK_JOBS}

    steady = {n: _median([r["steady_rate"] or 0.0 for r in rs]) for n, rs in runs.items()}
    processing = {n: _median([r["processing_seconds"] for r in rs]) for n, rs in runs.items()}
    wall = {n: _median([r["wall_seconds"] for r in rs]) for n, rs in runs.items()}
    rate = {n: round(count / s, 1) if s else 0.0 for n, s in processing.items()}
    wall_rate = {n: round(count / s, 1) for n, s in wall.items()}
    steady_ratio, ratio, wall_ratio = ratios(steady), ratios(rate), ratios(wall_rate)
    # each round runs every job back to back: its own ratio shows how far one run can be trusted
    per_round = [ratios({n: rs[i]["steady_rate"] or 0.0 for n, rs in runs.items()}) for i in range(rounds)]
    paired = {base: [r[base] for r in per_round] for base in NOTEBOOK_JOBS}
    interval = {base: mean_ratio_interval(paired[base]) for base in NOTEBOOK_JOBS}
    # CPU per run, whole run (all batches): the baseline's seconds over ours reads like a rate ratio
    cpu = {n: {kind: _median([r["cpu_seconds"][kind] for r in rs]) for kind in ("task", "jit", "gc", "other")}
           for n, rs in runs.items()}
    ours_task = cpu["kafkalake"]["task"]
    task_cpu_ratio = {base: round(cpu[base]["task"] / ours_task, 3) if ours_task else float("nan")
                      for base in NOTEBOOK_JOBS}
    phases = {n: {phase: _median([r["last_batch_ms"][phase] for r in rs]) for phase in PHASES}
              for n, rs in runs.items()}
    correct = all(c["ok"] for c in checks)
    met = steady_ratio[BASELINE] >= GOAL_RATIO and correct
    summary = {
        "benchmark": "ingest",
        "records": count,
        "rounds_run": rounds,
        "by_version": by_version,
        "method": "median over rounds; processing = sum over batches of checkpoint commits/N mtime - offsets/N mtime "
                  "(decode + write + commit, no JVM start-up); steady = batches 2..N; wall = the spark-submit "
                  "process; ratios = kafkalake / each notebook job; cpu = user + system seconds of the JVM's "
                  "threads by kind (/proc), whole run; task_cpu_ratio = a notebook job's task CPU / ours; "
                  "last_batch_ms = Spark's durationMs of each run's last batch (addBatch, queryPlanning, the rest); "
                  "steady_ratio_per_round = kafkalake / each notebook job within one round; "
                  "steady_ratio_interval = their geometric mean and its 95 % bootstrap interval (4 rounds or more)",
        "sinks": {"kafkalake": "Iceberg table (IcebergBatchSink: foreachBatch, writeTo.append with commit marker)",
                  "notebook_iceberg": "Iceberg table (ensure_table; foreachBatch writeTo.append)",
                  "notebook_parquet": "Parquet file sink partitioned dt/hour"},
        "kafka_read_options": KAFKA_READ_OPTIONS,
        "rounds": runs,
        "median_processing_seconds": processing,
        "median_wall_seconds": wall,
        "processing_rate": rate,
        "wall_rate": wall_rate,
        "steady_rate": steady,
        "steady_ratio": steady_ratio,
        "steady_ratio_per_round": paired,
        "steady_ratio_interval": interval,
        "ratio": ratio,
        "wall_ratio": wall_ratio,
        "median_cpu_seconds": cpu,
        "task_cpu_ratio": task_cpu_ratio,
        "median_last_batch_ms": phases,
        "kafkalake_checks": checks,
        "notebook_checks": notebook_checks,
        "goal": {"ratio": GOAL_RATIO, "baseline": BASELINE, "every_record_once_with_its_version": correct,
                 "met": met},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = results_dir() / "ingest.json"
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    for label, rates, ratio_of in ((f"steady state (batches 2..{BATCHES})", steady, steady_ratio),
                                   (f"all batches (processing time, median of {rounds})", rate, ratio),
                                   ("wall incl. JVM start-up", wall_rate, wall_ratio)):
        print(f"{label}: kafkalake {rates['kafkalake']:,.0f} rec/s | "
              + " | ".join(f"{base} {rates[base]:,.0f} rec/s ({ratio_of[base]:.2f}x)" for base in NOTEBOOK_JOBS),
              flush=True)
    print(f"CPU of the whole run (median): kafkalake task {cpu['kafkalake']['task']:.2f}s "
          f"JIT {cpu['kafkalake']['jit']:.2f}s | "
          + " | ".join(f"{base} task {cpu[base]['task']:.2f}s ({task_cpu_ratio[base]:.2f}x) JIT {cpu[base]['jit']:.2f}s"
                       for base in NOTEBOOK_JOBS), flush=True)
    print("steady-state ratio per round (jobs back to back): " + " | ".join(
        f"{base} " + " ".join(f"{r:.2f}" for r in paired[base]) + f" (median {_median(paired[base]):.2f}"
        + (f"; mean {iv['mean']:.2f}, 95 % interval {iv['low']:.2f}-{iv['high']:.2f}"
           if (iv := interval[base]) else "") + ")"
        for base in NOTEBOOK_JOBS), flush=True)
    print("last batch (median ms): " + " | ".join(
        f"{n} " + " ".join(f"{phase} {phases[n][phase]:.0f}" for phase in PHASES) for n in runs), flush=True)
    print(
        f"kafkalake/{BASELINE} steady-state ratio {steady_ratio[BASELINE]:.2f}x (goal >= {GOAL_RATIO}x); "
        f"kafkalake/notebook_parquet {steady_ratio['notebook_parquet']:.2f}x (reported); every record in the "
        f"table once with its version: {'yes' if correct else 'NO'}; goal: {'met' if met else 'NOT met'} -> {out}",
        flush=True,
    )
    return 0 if correct else 1
