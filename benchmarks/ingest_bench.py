"""Ingest throughput: the project's stream job vs the notebook's single-schema job, same data, same run.

1,000,000 fridge records (30 % of the devices still on v1) are preloaded into one topic with
the project's producer; then each job runs ``--available-now`` on the platform's master
(``local[2]``) with a fresh checkpoint and reads the whole topic into a Parquet file sink, in
:data:`BATCHES` micro-batches (``max_offsets_per_trigger`` = records / 5 for every job):

* kafkalake: ``kafkalake stream run NAME --available-now`` (spark_jobs/stream_ingest.py, a temp
  streams.yaml): routes every record to the ``from_avro`` of its writer version, checks it,
  quarantines what fails, lands zone/dt/hour partitions.
* the notebook's approach: benchmarks/jobs/notebook_ingest.py: one ``from_avro`` with the
  subject's latest schema for every record (no routing, no checks, no Kafka coordinates). It
  decodes the v1 records wrongly (as all-null rows), so it is the cost floor, not an
  alternative. It runs three times per round:
  - ``notebook``: as the notebook writes it: Kafka's consumer defaults, one unpartitioned folder;
  - ``notebook_same_reader``: with kafkalake's Kafka read options
    (:data:`kafkalake.spark.KAFKA_READ_OPTIONS`), which spare the reader most broker round
    trips and speed the notebook job more than ours; still one unpartitioned folder;
  - ``notebook_same_sink``: the same reader AND the same sink as ours: the file sink partitioned
    zone/dt/hour of the Kafka timestamp, with the landing sink's writer settings
    (``--landing-layout``). Same topic, same sink: THIS is the floor the goal is judged
    against, as only the decode and the table's columns differ.

Two clocks per run (the job order reverses every round so load drift is shared):

* processing: per micro-batch, from the checkpoint's ``offsets/N`` file (written when the
  batch is planned) to its ``commits/N`` file (written after the sink committed), summed.
  Excludes JVM start, session and query start-up: decode + Parquet write + commit.
* wall: the whole spark-submit process. The JVM/Python start-up inside it is the same for
  both jobs, so the wall ratio is fair too, but start-up pulls it towards 1.

Beside the clocks, the CPU each run's JVM threads used (:class:`ThreadCpu`): the task threads
(decode + write, all batches) and the JIT compiler threads. Steadier than wall time here, and
the JIT's share is what a fresh JVM pays for more code.

Both clocks: median over the rounds. Goal: kafkalake's steady rate >= 0.8x the
``notebook_same_sink`` job's, and every record decoded correctly (landing rows == records
produced, per version). The ratios to the other two notebook jobs are reported beside it.
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
from urllib.parse import unquote, urlparse

from benchmarks.platform import bench_kafka, results_dir
from kafkalake.config import Settings, get_settings
from kafkalake.kafka.topics import create_topic
from kafkalake.produce.fleet import fleet_from_registry
from kafkalake.produce.producer import produce_parallel
from kafkalake.schema.registry import Registry
from kafkalake.spark import jvm
from kafkalake.spark.session import KAFKA_READ_OPTIONS
from kafkalake.spark.submit import LANDING_SINK_CONF, job_conf, job_env, spark_submit_argv, stream_conf
from kafkalake.stream.config import StreamConfig, get_stream, stream_paths

RECORDS = 1_000_000
#: five fresh JVMs per job: one run differs from the next by up to 20 % on these machines
ROUNDS = 5
V1_FRACTION = 0.3
DEVICES = 100
GOAL_RATIO = 0.8
RUN_TIMEOUT = 1800.0
#: micro-batches per job: the verdict uses batches 2..N (steady state), both jobs alike
BATCHES = 5
#: the baseline the goal is judged against (see the module docstring)
BASELINE = "notebook_same_sink"
#: the notebook jobs: Kafka read options, landing layout (partitioned like ours)
NOTEBOOK_JOBS: dict[str, tuple[Mapping[str, str], bool]] = {
    "notebook": ({}, False),
    "notebook_same_reader": (KAFKA_READ_OPTIONS, False),
    "notebook_same_sink": (KAFKA_READ_OPTIONS, True),
}
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


# --------------------------------------------------------------------------- file sink and checkpoint


def sink_log_entries(sink_dir: Path) -> list[tuple[str, dict[str, Any], int]]:
    """``(log file name, entry, log mtime ns)`` for every committed entry of a file sink.

    ``_spark_metadata/N`` (and ``N.compact``, which repeats the entries of every log before it) hold a
    ``v1`` line then one JSON object per file. A file is visible to readers once a log lists it.
    """
    folder = sink_dir / "_spark_metadata"
    if not folder.is_dir():
        return []
    out = []
    for log_file in sorted(folder.iterdir(), key=lambda p: int(p.name.split(".")[0]) if p.name[0].isdigit() else -1):
        if not log_file.name[0].isdigit() or log_file.name.endswith(".tmp"):
            continue
        try:
            mtime = log_file.stat().st_mtime_ns
            lines = log_file.read_text().splitlines()
        except FileNotFoundError:  # compacted away meanwhile
            continue
        for line in lines[1:]:
            if line.strip():
                out.append((log_file.name, json.loads(line), mtime))
    return out


def committed_files(sink_dir: Path) -> list[Path]:
    """Data files a Spark reader of the sink would read (added and not deleted)."""
    files: dict[str, bool] = {}
    for _name, entry, _mtime in sink_log_entries(sink_dir):
        files[entry["path"]] = entry.get("action", "add") == "add"
    return sorted(uri_path(p) for p, alive in files.items() if alive)


def uri_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


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
    """A batch's ``durationMs`` as ``addBatch`` (the tasks and the file sink's commit),
    ``queryPlanning`` (the driver optimising the batch's plan) and ``other`` (offset lookups,
    offset and commit logs). The report takes each run's last batch: a steady one in every job.
    """
    add, planning = durations.get("addBatch", 0), durations.get("queryPlanning", 0)
    other = max(0, durations.get("triggerExecution", 0) - add - planning)
    return {"addBatch": add, "queryPlanning": planning, "other": other}


def _stream_settings(settings: Settings, name: str, topic: str, *, trigger: str = "5 seconds",
                     max_offsets_per_trigger: int | None = None) -> tuple[Settings, StreamConfig]:
    """A temp streams.yaml with one stream on ``topic``; settings pointing at it."""
    entry: dict[str, Any] = {"name": name, "topics": [topic], "subject": "fridge", "sink_format": "parquet",
                             "trigger": trigger, "starting_offsets": "earliest"}
    if max_offsets_per_trigger:
        entry["max_offsets_per_trigger"] = max_offsets_per_trigger
    streams_file = settings.state_dir / f"streams-{name}.yaml"
    streams_file.write_text(json.dumps({"streams": [entry]}))  # JSON is YAML
    stream_settings = settings.with_overrides(streams_file=streams_file)
    return stream_settings, get_stream(stream_settings, name)


def _run_kafkalake(settings: Settings, topic: str, round_no: int, max_offsets: int) -> dict[str, Any]:
    stream_settings, stream = _stream_settings(settings, f"ingest_r{round_no}", topic,
                                               max_offsets_per_trigger=max_offsets)
    paths = stream_paths(stream_settings, stream)
    checkpoint = paths.checkpoints["parquet"]
    job = SparkProcess(stream_settings, "stream_ingest", [stream.name, "--available-now"], conf=stream_conf(stream),
                       log_path=settings.state_dir / "logs" / f"{stream.name}.log")
    try:
        wall = job.wait(timeout=RUN_TIMEOUT, label=f"kafkalake round {round_no}", tick=checkpoint_tick(checkpoint))
    finally:
        job.stop()
    status = json.loads(paths.status_file.read_text())
    last = next(iter(status["queries"].values()), {})
    return {"wall_seconds": round(wall, 3), "batches": batch_seconds(checkpoint), "landing": paths.landing["parquet"],
            "cpu_seconds": job.cpu.by_kind(), "last_batch_ms": batch_phases(last.get("durations_ms") or {}),
            "status": {"state": status["state"], "lag": status.get("lag"), "last_batch": {
                k: last.get(k) for k in ("batch_id", "input_rows", "batch_duration_ms")}}}


def _run_notebook(settings: Settings, topic: str, round_no: int, schema_file: Path, max_offsets: int, *, name: str,
                  options: Mapping[str, str], landing_layout: bool = False) -> dict[str, Any]:
    out = settings.lake_root / name / f"r{round_no}"
    checkpoint = settings.state_dir / "checkpoints" / name / f"r{round_no}"
    args = ["--topic", topic, "--schema-file", str(schema_file), "--path", str(out), "--checkpoint", str(checkpoint),
            "--max-offsets-per-trigger", str(max_offsets), *[f"--kafka-option={k}={v}" for k, v in options.items()]]
    if landing_layout:
        args.append("--landing-layout")
    job = SparkProcess(settings, NOTEBOOK_JOB, args, conf=LANDING_SINK_CONF if landing_layout else None,
                       log_path=settings.state_dir / "logs" / f"{name}_r{round_no}.log")
    try:
        wall = job.wait(timeout=RUN_TIMEOUT, label=f"{name:20} round {round_no}", tick=checkpoint_tick(checkpoint))
        progress = next((json.loads(line.split(" ", 1)[1]) for line in job.output().splitlines()
                         if line.startswith("NOTEBOOK_PROGRESS ")), None)
    finally:
        job.stop()
    last = (progress or {}).get("batches") or [{}]
    return {"wall_seconds": round(wall, 3), "batches": batch_seconds(checkpoint), "landing": out,
            "cpu_seconds": job.cpu.by_kind(), "last_batch_ms": batch_phases(last[-1].get("durations_ms") or {}),
            "spark_progress": progress}


# --------------------------------------------------------------------------- checks


def check_kafkalake_landing(landing: Path, produced: int, by_version: dict[int, int]) -> dict[str, Any]:
    """Rows per zone and version in the committed files; v1 rows carry temperature null."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    zones: dict[str, int] = {}
    versions: dict[int, int] = {}
    wrong_temperature = 0
    for path in committed_files(landing):
        zone = next((part.split("=", 1)[1] for part in path.parts if part.startswith("zone=")), "?")
        table = pq.read_table(path, columns=["schema_version", "temperature"])
        zones[zone] = zones.get(zone, 0) + table.num_rows
        if zone != "landing":
            continue
        for row in table.group_by("schema_version").aggregate([("schema_version", "count")]).to_pylist():
            versions[row["schema_version"]] = versions.get(row["schema_version"], 0) + row["schema_version_count"]
        is_v1 = pc.equal(table["schema_version"], 1)
        has_temp = pc.is_valid(table["temperature"])
        wrong_temperature += pc.sum(pc.xor(is_v1, pc.invert(has_temp))).as_py() or 0
    ok = zones.get("landing", 0) == produced and not zones.get("quarantine") and versions == by_version \
        and wrong_temperature == 0
    return {"ok": ok, "zones": zones, "by_version": versions, "expected_by_version": by_version,
            "rows_with_wrong_temperature": wrong_temperature}


def check_notebook_landing(out: Path) -> dict[str, Any]:
    """Rows a notebook job wrote, and how many are all-null (records it could not decode)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rows = nulls = 0
    for path in committed_files(out):
        table = pq.read_table(path, columns=["name"])
        rows += table.num_rows
        nulls += table.num_rows - (pc.count(table["name"]).as_py() or 0)
    return {"rows": rows, "all_null_rows": nulls}


# --------------------------------------------------------------------------- main


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(*, records: int | None = None) -> int:
    count = records or RECORDS
    registry = Registry(get_settings().schemas_dir)
    fleet = fleet_from_registry(registry, devices=DEVICES, v1_fraction=V1_FRACTION)
    versions_by_id = {registry.get("fridge", n).schema_id: n for n in registry.versions("fridge")}
    workers = min(4, os.cpu_count() or 1)
    print(f"ingest benchmark: {count:,} fridge records ({V1_FRACTION:.0%} of {DEVICES} devices on v1), "
          f"{ROUNDS} rounds, notebook jobs vs kafkalake stream, --available-now, parquet", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {**{name: [] for name in NOTEBOOK_JOBS}, "kafkalake": []}
    checks: list[dict[str, Any]] = []
    notebook_checks: list[dict[str, Any]] = []
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
        schema_file = settings.state_dir / "notebook-schema.avsc"
        schema_file.write_text(registry.latest("fridge").schema_json)

        max_offsets = max(1, count // BATCHES)
        for round_no in range(1, ROUNDS + 1):
            order = list(runs) if round_no % 2 else list(reversed(runs))
            for name in order:
                if name == "kafkalake":
                    result = _run_kafkalake(settings, topic, round_no, max_offsets)
                    check = check_kafkalake_landing(result.pop("landing"), report.delivered, by_version)
                    checks.append(check)
                    result["check_ok"] = check["ok"]
                else:
                    options, landing_layout = NOTEBOOK_JOBS[name]
                    result = _run_notebook(settings, topic, round_no, schema_file, max_offsets, name=name,
                                       options=options, landing_layout=landing_layout)
                    notebook_check = check_notebook_landing(result.pop("landing"))
                    notebook_checks.append(notebook_check)
                    result["rows_written"] = notebook_check["rows"]
                processing = sum(b["seconds"] for b in result["batches"])
                result["processing_seconds"] = round(processing, 3)
                result["processing_rate"] = round(count / processing, 1) if processing else None
                steady = result["batches"][1:]  # the first batch of a fresh JVM also pays JIT warm-up
                steady_s = sum(b["seconds"] for b in steady)
                result["steady_rate"] = round(sum(b["rows"] for b in steady) / steady_s, 1) if steady_s else None
                result["wall_rate"] = round(count / result["wall_seconds"], 1)
                runs[name].append(result)
                extra = (f"landing check {'ok' if result['check_ok'] else 'FAILED'}" if name == "kafkalake"
                         else f"{notebook_check['all_null_rows']:,} of {notebook_check['rows']:,} rows all-null "
                              "(misdecoded)")
                print(f"  round {round_no} {name:20} steady {result['steady_rate'] or 0:>9,.0f} rec/s | "
                      f"processing {processing:6.1f}s = {result['processing_rate'] or 0:>9,.0f} rec/s"
                      f" ({len(result['batches'])} batch(es)) | wall {result['wall_seconds']:6.1f}s = "
                      f"{result['wall_rate']:>9,.0f} rec/s | CPU task {result['cpu_seconds']['task']:5.2f}s "
                      f"JIT {result['cpu_seconds']['jit']:5.2f}s | {extra}", flush=True)

    steady = {n: _median([r["steady_rate"] or 0.0 for r in rs]) for n, rs in runs.items()}

    def ratios(rates: Mapping[str, float]) -> dict[str, float]:
        """kafkalake's rate over each notebook job's."""
        return {base: round(rates["kafkalake"] / rates[base], 3) if rates[base] else float("nan")
                for base in NOTEBOOK_JOBS}

    processing = {n: _median([r["processing_seconds"] for r in rs]) for n, rs in runs.items()}
    wall = {n: _median([r["wall_seconds"] for r in rs]) for n, rs in runs.items()}
    rate = {n: round(count / s, 1) for n, s in processing.items()}
    wall_rate = {n: round(count / s, 1) for n, s in wall.items()}
    steady_ratio, ratio, wall_ratio = ratios(steady), ratios(rate), ratios(wall_rate)
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
        "by_version": by_version,
        "method": "median over rounds; processing = sum over batches of checkpoint commits/N mtime - offsets/N mtime "
                  "(decode + parquet write + commit, no JVM start-up); wall = the spark-submit process "
                  "(same start-up cost in every job); ratios = kafkalake / each notebook job; cpu = user + system "
                  "seconds of the JVM's threads by kind (/proc), whole run; "
                  "task_cpu_ratio = a notebook job's task CPU / ours; "
                  "last_batch_ms = Spark's durationMs of each run's last batch (addBatch, queryPlanning, the rest)",
        "kafka_read_options": {"kafkalake": KAFKA_READ_OPTIONS, **{n: dict(o) for n, (o, _) in NOTEBOOK_JOBS.items()}},
        "landing_layout": {"kafkalake": True, **{n: layout for n, (_, layout) in NOTEBOOK_JOBS.items()}},
        "rounds": runs,
        "median_processing_seconds": processing,
        "median_wall_seconds": wall,
        "processing_rate": rate,
        "wall_rate": wall_rate,
        "steady_rate": steady,
        "steady_ratio": steady_ratio,
        "ratio": ratio,
        "wall_ratio": wall_ratio,
        "median_cpu_seconds": cpu,
        "task_cpu_ratio": task_cpu_ratio,
        "median_last_batch_ms": phases,
        "kafkalake_checks": checks,
        "notebook_checks": notebook_checks,
        "goal": {"ratio": GOAL_RATIO, "baseline": BASELINE, "every_version_decoded": correct, "met": met},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = results_dir() / "ingest.json"
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    for label, rates, ratio_of in ((f"steady state (batches 2..{BATCHES})", steady, steady_ratio),
                                   (f"all batches (processing time, median of {ROUNDS})", rate, ratio),
                                   ("wall incl. JVM start-up", wall_rate, wall_ratio)):
        print(f"{label}: kafkalake {rates['kafkalake']:,.0f} rec/s | "
              + " | ".join(f"{base} {rates[base]:,.0f} rec/s ({ratio_of[base]:.2f}x)" for base in NOTEBOOK_JOBS),
              flush=True)
    print(f"CPU of the whole run (median): kafkalake task {cpu['kafkalake']['task']:.2f}s "
          f"JIT {cpu['kafkalake']['jit']:.2f}s | "
          + " | ".join(f"{base} task {cpu[base]['task']:.2f}s ({task_cpu_ratio[base]:.2f}x) JIT {cpu[base]['jit']:.2f}s"
                       for base in NOTEBOOK_JOBS), flush=True)
    print("last batch (median ms): " + " | ".join(
        f"{n} " + " ".join(f"{phase} {phases[n][phase]:.0f}" for phase in PHASES)
        for n in ("kafkalake", *NOTEBOOK_JOBS)), flush=True)
    print(
        f"kafkalake landed every record with its version: {'yes' if correct else 'NO'}; goal >= {GOAL_RATIO}x the "
        f"{BASELINE} job's steady-state rate while decoding every version: {'met' if met else 'NOT met'} -> {out}",
        flush=True,
    )
    return 0 if correct else 1
