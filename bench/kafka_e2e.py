"""End to end through Kafka: points/s of `aiops worker` processes, and produce → alert latency.

1. Produces `--points` points of `--series` scrape-shaped series (one point a series a step) into a
   `--partitions`-partition topic, then starts 1 (and then 2) `python -m aiops worker` processes with
   the default detection settings (the ensemble) and measures points/s from the moment every worker
   has its final assignment until the group has committed the last record. Every record is stored
   in order with its point count, so committed offsets translate exactly into points.
2. Latency: with the workers warm, sends a step every `--interval` s, in each one more series
   shifting to a new level and staying there (the calibrated ensemble flags a sustained change, not
   one odd point, and may need a few points of it), and measures from just before the `send` of the
   step holding the alert's first anomaly (its `first_seen`) to the "opened" event arriving on the
   alerts topic (the worker publishes it after storing it, before committing): p50 and p99.
3. The ceiling: one in-process MetricConsumer reading the same topic with detection switched off
   (poll, decode, commit), i.e. what kafka-python allows one process.

Starts Tansu like the tests (tests/kafka_broker.py) unless `--bootstrap` is given; the store is an
SQLite file in a temp dir unless `--store` (a URL) or `--pg` (a server to create a database on) is
given; with several workers use PostgreSQL, as a deployment would. `--cores-per-worker K` pins worker i
to its own K cores (1 worker: cores 0..K-1; 2 workers: 0..2K-1), so scale-out adds cores with workers
on one machine; the broker and the bench's producer stay unpinned (the topic is filled before the
workers start, so the producer does not compete). Each run prints the CPU the workers, the broker and
the whole machine used in the timed window.

    .venv/bin/python bench/kafka_e2e.py [--points 3000000] [--series 10000] [--partitions 6] [--workers 1 2]
                                        [--pg postgresql://postgres@127.0.0.1:5432/test] [--cores-per-worker 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import yaml

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from aiops.store import StoreEngine  # noqa: E402
from detectors.types import MetricBatch  # noqa: E402
from ingest.kafka_bus import MetricConsumer, MetricProducer, create_topics  # noqa: E402
from ingest.registry import SeriesRegistry, series_key  # noqa: E402

_spec = importlib.util.spec_from_file_location("kafka_broker", _HERE.parent / "tests" / "kafka_broker.py")
kafka_broker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kafka_broker)

T0 = 1.7e9


class Feed:
    """Scrape-shaped steps into a topic, remembering each record's point count per partition."""

    def __init__(self, bootstrap: str, topic: str, series: int, partitions: int, seed: int = 0) -> None:
        self.registry = SeriesRegistry()
        self.ids = np.array([self.registry.intern(series_key("cpu_usage_percent", {"host": f"host-{i}", "service": f"svc-{i % 50}"}))
                             for i in range(series)])
        self.producer = MetricProducer(bootstrap, topic, self.registry)
        self.partitions = partitions
        self.sizes: list[list[int]] = [[] for _ in range(partitions)]  # points of each record, per partition
        self.rng = np.random.default_rng(seed)
        self.step_no = 0

    def send(self, steps: int, shifted: list[int] | None = None) -> float:
        """Send `steps` steps; series in `shifted` are at 5000 in the last one. Returns its data time."""
        n = len(self.ids)
        sid = np.tile(self.ids, steps)
        ts = T0 + 10.0 * (self.step_no + np.repeat(np.arange(steps), n))
        values = 50 + 5 * self.rng.standard_normal(n * steps)
        if shifted:
            values[n * (steps - 1) + np.array(shifted)] = 5000.0
        batch = MetricBatch.from_arrays(sid, ts, np.round(values, 2))
        codec = self.producer.codec
        for partition, part in codec.split_by_partition(batch, self.partitions).items():
            self.sizes[partition] += [min(codec.max_points, len(part) - s) for s in range(0, len(part), codec.max_points)]
        self.producer.send(batch)
        self.step_no += steps
        return float(ts[-1])

    def points_below(self, committed: dict[int, int]) -> int:
        return sum(sum(self.sizes[p][:off]) for p, off in committed.items())

    @property
    def records(self) -> int:
        return sum(map(len, self.sizes))


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) or 0 for p in range(partitions)}
    finally:
        consumer.close()


def _assigned(log: Path, topic: str | None = None) -> list[str] | None:
    """The partitions (of `topic`, or all) a worker was last assigned, from its log; None before any."""
    last = None
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            if '"partitions assigned"' in line:
                last = json.loads(line)["partitions"]
    if last is None or topic is None:
        return last
    return [tp for tp in last if f"topic='{topic}'" in tp]


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, every thread) a process has used so far; 0 if it is gone or unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (all cores), from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def broker_pid(bootstrap: str) -> int | None:
    """The pid of the Tansu process listening on `bootstrap` (the one this bench started), if any."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"tansu" in a for a in argv[:1]) and f"tcp://{bootstrap}".encode() in argv:
            return int(cmdline.parent.name)
    return None


def _run_workers(args, bootstrap: str, tmp: Path, n_workers: int) -> float:
    tag = uuid.uuid4().hex[:8]
    topics = {"metrics": f"bench-{tag}", "dead_letter": f"bench-{tag}-dead", "anomalies": f"bench-{tag}-anomalies",
              "alerts": f"bench-{tag}-alerts"}
    create_topics(bootstrap, {topics["metrics"]: args.partitions, topics["dead_letter"]: 1, topics["anomalies"]: 1,
                              topics["alerts"]: 1})
    with _store(args, tmp, tag) as store:
        return _measure(args, bootstrap, tmp, n_workers, tag, topics, store)


@contextmanager
def _store(args, tmp: Path, tag: str):
    """A fresh store for one run: `--store`, a database created on `--pg`, or an SQLite file."""
    if not args.pg:
        yield args.store or f"sqlite:///{tmp / f'{tag}.db'}"
        return
    import psycopg

    name = f"aiops_bench_{tag}"
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{args.pg.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _measure(args, bootstrap: str, tmp: Path, n_workers: int, tag: str, topics: dict, store: str) -> float:
    StoreEngine(store).migrate()  # once, before workers start together (SQLite has no migration lock)
    config = {
        "store": {"url": store}, "logging": {"format": "json", "level": "info"},
        "kafka": {"bootstrap": bootstrap, "topics": topics, "group": f"bench-{tag}", "partitions": args.partitions,
                  "session_timeout_ms": 6000, "checkpoint_every_s": 30, "create_topics": False},
        "forecasting": {"enabled": False}, "remediation": {"executor": False},
    }
    path = tmp / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(config))

    feed = Feed(bootstrap, topics["metrics"], args.series, args.partitions)
    steps = args.points // args.series
    started = time.perf_counter()
    for _ in range(0, steps, args.steps_per_send):
        feed.send(args.steps_per_send)
    feed.producer.flush(timeout_s=600)
    total = feed.points_below({p: len(s) for p, s in enumerate(feed.sizes)})
    print(f"produced {total:,} points ({feed.records:,} records) in {time.perf_counter() - started:.1f} s")

    logs = [tmp / f"{tag}-{i}.log" for i in range(n_workers)]
    procs = start_workers(path, logs, args.cores_per_worker)
    try:
        group = config["kafka"]["group"]
        while True:  # from the moment the group is settled: every worker owns its final share
            owned = [_assigned(log, topics["metrics"]) for log in logs]  # they own logs and spans partitions too
            if all(owned) and sum(len(o) for o in owned) == args.partitions:
                break
            time.sleep(0.05)
        broker = broker_pid(bootstrap)
        cpu0 = [cpu_seconds(p.pid) for p in procs], cpu_seconds(broker), machine_busy_seconds()
        t0, c0 = time.perf_counter(), feed.points_below(_committed(bootstrap, group, topics["metrics"], args.partitions))
        while True:
            done = feed.points_below(_committed(bootstrap, group, topics["metrics"], args.partitions))
            if done >= total:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        workers_cpu = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0[0])]
        print(f"{n_workers} worker(s): {done - c0:,} points in {elapsed:.2f} s after the group settled: "
              f"{(done - c0) / elapsed / 1e3:,.0f} k points/s ({c0:,} points were done before)")
        print(f"  CPU in that window, in cores busy on average: workers {' + '.join(f'{w / elapsed:.2f}' for w in workers_cpu)}, "
              f"broker {(cpu_seconds(broker) - cpu0[1]) / elapsed:.2f}, whole machine "
              f"{(machine_busy_seconds() - cpu0[2]) / elapsed:.2f} of {os.cpu_count()}")
        rate = (done - c0) / elapsed
        latencies = _latency(args, bootstrap, feed, topics["alerts"])
        if latencies:
            p50, p99 = np.percentile(latencies, [50, 99])
            print(f"  produce → alert opened on the alerts topic: p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms "
                  f"over {len(latencies)} alerts ({args.interval * 1e3:.0f} ms between steps of {args.series:,} points)")
    finally:
        stop_workers(procs)
    return rate


def worker_cores(n_workers: int, cores_per_worker: int | None) -> list[set[int] | None]:
    """The CPU set of each worker: `cores_per_worker` cores of its own, in order (None: unpinned)."""
    if not cores_per_worker:
        return [None] * n_workers
    cores = sorted(os.sched_getaffinity(0))
    if n_workers * cores_per_worker > len(cores):
        raise SystemExit(f"{n_workers} workers x {cores_per_worker} cores: only {len(cores)} cores here ({cores})")
    return [set(cores[i * cores_per_worker:(i + 1) * cores_per_worker]) for i in range(n_workers)]


def start_workers(config: Path, logs: list[Path], cores_per_worker: int | None = None) -> list[subprocess.Popen]:
    """One `python -m aiops worker` process per log file (its stderr), each pinned to its own cores if asked.

    Only the workers are pinned: the broker and the bench's producer run on any core."""
    procs = []
    for log, cores in zip(logs, worker_cores(len(logs), cores_per_worker)):
        pin = None if cores is None else (lambda cores=cores: os.sched_setaffinity(0, cores))
        procs.append(subprocess.Popen([sys.executable, "-m", "aiops", "worker", "--config", str(config)],
                                      stdout=subprocess.DEVNULL, stderr=open(log, "wb"), preexec_fn=pin,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"}))
        if cores is not None:
            print(f"  worker {len(procs)} (pid {procs[-1].pid}) pinned to cores {sorted(cores)}")
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _latency(args, bootstrap: str, feed: Feed, alerts_topic: str) -> list[float]:
    reader = KafkaConsumer(alerts_topic, bootstrap_servers=bootstrap, group_id=f"lat-{uuid.uuid4().hex[:6]}",
                           auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=6000,
                           heartbeat_interval_ms=2000, fetch_max_wait_ms=20)
    sent: dict[float, float] = {}  # data time of a step → wall time just before it was sent
    got: list[tuple[float, float]] = []  # (first_seen, wall time the opened event arrived)
    finished = threading.Event()

    def read() -> None:
        stop_at = None
        while stop_at is None or (len(got) < args.spikes and time.monotonic() < stop_at):
            if stop_at is None and finished.is_set():
                stop_at = time.monotonic() + 5  # what has not opened 5 s after the last step will not
            for records in reader.poll(timeout_ms=100).values():
                now = time.time()
                got.extend((json.loads(r.value)["first_seen"], now) for r in records if b'"opened"' in r.value)

    reader.poll(timeout_ms=4000)  # join before the spikes
    thread = threading.Thread(target=read)
    thread.start()
    rng = np.random.default_rng(1)
    victims = [int(v) for v in rng.choice(len(feed.ids), size=args.spikes, replace=False)]
    for i in range(args.spikes + 10):  # ten more steps so the last shifts can be seen
        at = time.time()
        sent[feed.send(1, shifted=victims[: i + 1])] = at
        feed.producer.flush()
        time.sleep(args.interval)
    finished.set()
    thread.join()
    reader.close()
    print(f"  {len(got)} of {args.spikes} level shifts opened an alert")
    return [arrived - sent[first] for first, arrived in got if first in sent]


def _ceiling(bootstrap: str, args) -> None:
    tag = uuid.uuid4().hex[:8]
    topic, dead = f"bench-{tag}", f"bench-{tag}-dead"
    create_topics(bootstrap, {topic: args.partitions, dead: 1})
    feed = Feed(bootstrap, topic, args.series, args.partitions)
    for _ in range(0, args.points // args.series, args.steps_per_send):
        feed.send(args.steps_per_send)
    feed.producer.flush(timeout_s=600)
    total = feed.points_below({p: len(s) for p, s in enumerate(feed.sizes)})
    consumer = MetricConsumer(bootstrap, [topic], f"ceiling-{tag}", SeriesRegistry(), dead_letter_topic=dead,
                              session_timeout_ms=6000, max_poll_records=64)
    got, first, counted = 0, None, 0
    deadline = time.monotonic() + 600
    while got < total and time.monotonic() < deadline:
        received = consumer.poll(1.0)
        points = sum(len(r.batch) for r in received)
        if received and first is None:
            first = time.perf_counter()  # from the end of the first poll that returned records (fetched during the join)
        elif first is not None:
            counted += points
        got += points
        consumer.commit(received)
    elapsed = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    print(f"ceiling (one MetricConsumer, detection off: poll, decode, commit): {counted:,} points in {elapsed:.2f} s "
          f"after the first poll: {counted / elapsed / 1e3:,.0f} k points/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=3_000_000)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--steps-per-send", type=int, default=6, help="steps of all series in one producer batch")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--spikes", type=int, default=50, help="alerts timed for the latency figures")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between latency steps")
    parser.add_argument("--cores-per-worker", type=int, metavar="K",
                        help="pin worker i to cores [i*K, (i+1)*K) of this process's CPU set (sched_setaffinity), so 1 "
                        "worker gets K cores and 2 workers 2K; the broker and the producer stay unpinned. Default: unpinned")
    parser.add_argument("--bootstrap", help="an existing broker; default: start Tansu")
    parser.add_argument("--store", help="SQLAlchemy URL of an empty store for a single --workers run; default: an SQLite file "
                        "in a temp dir per run")
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432/test): "
                        "the store is a database created there for the run and dropped after (several workers "
                        "writing one SQLite file wait on its lock)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = nullcontext(args.bootstrap) if args.bootstrap else kafka_broker.tansu_broker(Path(tmp) / "tansu")
        with broker as bootstrap:
            rates = {n: _run_workers(args, bootstrap, Path(tmp), n) for n in args.workers}
            if 1 in rates and 2 in rates:
                print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")
            _ceiling(bootstrap, args)


if __name__ == "__main__":
    main()
