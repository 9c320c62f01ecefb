"""Spans through Kafka end to end: spans/s of one `aiops worker` running both span stages.

1. Produces `--spans` spans of realistic traces into the spans topic with `SpanProducer(by="trace")`, as
   api-only ingest does: `--services` services with `--ops` operations each, 3–8 spans a trace across
   services (a root request, calls to other services, some internal spans that do not count), traces
   spread evenly over `--minutes` minutes of span time (the aggregator's 1-minute intervals), in time
   order. Every record's span count is kept per partition, so committed offsets translate into spans.
2. Starts one worker (default settings; PostgreSQL with `--pg`) and measures from the moment it owns
   every partition (metrics, spans, spans by service):
   - stage 1 (resolve callers, re-produce by service): until the spans topic is fully committed;
   - end to end: until the spans-by-service topic is committed up to the last record of those spans.
     Stage 2 holds a record until its intervals close, and the last interval closes only when span
     time moves past it by `grace_s`. So once stage 1 is done the bench sends one short root span per
     service on every spans partition, `interval_s + grace_s` past the last span (time moving on, as in
     a live stream); the records holding them stay open and are not counted. The spans-by-service
     records are read back afterwards: their span counts, and a check that the counted ones hold none
     of the closing spans. The end is when the committed offsets reached the first closing record on
     every partition (they are polled every 0.1 s and stay there: those records are held).
3. Stage 1 alone: an in-process `MetricConsumer` on a fresh spans topic doing what the worker's stage 1
   does (decode, resolve callers, produce by service, flush, commit), with nothing else running.

Starts Tansu like the tests unless `--bootstrap` is given. Reuses bench/kafka_e2e.py's helpers.

    .venv/bin/python bench/kafka_spans.py [--spans 1000000] [--partitions 6] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import yaml

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

_spec = importlib.util.spec_from_file_location("kafka_e2e", _HERE / "kafka_e2e.py")
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from aiops.partition_traces import PartitionTraces  # noqa: E402
from aiops.settings import TracesSettings  # noqa: E402
from aiops.store import StoreEngine  # noqa: E402
from detectors.red import SpanBatch  # noqa: E402
from ingest.kafka_bus import MetricConsumer, create_topics  # noqa: E402
from ingest.kafka_spans import SpanProducer, decode_spans, trace_partitions  # noqa: E402
from ingest.registry import SeriesRegistry  # noqa: E402

T0 = 1.7e9


def make_spans(n: int, services: int, ops: int, minutes: float, seed: int = 0) -> SpanBatch:
    """`n` spans of traces of 3–8 spans, in trace-time order, as the OTLP decoder gives them (with trace ids).

    A trace: a root request at one of the first 4 services (counted); each further span has an earlier
    span of its trace as parent and is either a request served by another service (counted, a call across
    services) or, one time in four, an internal span of its parent's service (not counted)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 9, size=n // 3 + 1)
    ends = np.cumsum(lengths)
    k = int(np.searchsorted(ends, n)) + 1
    lengths = lengths[:k]
    lengths[-1] -= int(ends[k - 1] - n)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    trace = np.repeat(np.arange(k), lengths)
    pos = np.arange(n) - starts[trace]
    parent = np.where(pos > 0, starts[trace] + np.floor(rng.random(n) * np.maximum(pos, 1)).astype(np.int64), -1)
    internal = (pos > 0) & (rng.random(n) < 0.25)
    service = np.empty(n, dtype=np.int64)
    roots = pos == 0
    service[roots] = rng.integers(0, min(4, services), size=int(roots.sum()))
    for p in range(1, int(pos.max()) + 1):  # a loop over positions in a trace (at most 8)
        at = np.flatnonzero(pos == p)
        other = (service[parent[at]] + rng.integers(1, services, size=len(at))) % services
        service[at] = np.where(internal[at], service[parent[at]], other)
    op = rng.integers(0, ops, size=n)
    names = np.array([f"svc-{s:02d}" for s in range(services)], dtype=object)
    op_names = np.array([[f"svc-{s:02d} op-{o}" for o in range(ops)] for s in range(services)], dtype=object)
    start_s = T0 + np.sort(rng.random(k)) * minutes * 60
    duration = rng.gamma(2.0, 10.0, size=n) / (1 + pos)  # ms: children shorter
    end = start_s[trace] + 0.001 * (duration + pos)
    trace_ids = np.array([f"{rng_id:016x}{i:016x}" for i, rng_id in enumerate(rng.integers(1, 2**62, size=k))],
                         dtype=object)
    span_ids = np.array([f"{i:016x}" for i in range(1, n + 1)], dtype=object)
    parent_ids = np.where(parent >= 0, span_ids[np.maximum(parent, 0)], "").astype(object)
    return SpanBatch(span_ids, parent_ids, names[service], op_names[service, op], end, np.round(duration, 3),
                     rng.random(n) < 0.01, ~internal, trace_ids[trace])


class SpanFeed:
    """Spans into the spans topic by trace, remembering each record's span count per partition."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.producer = SpanProducer(bootstrap, topic, by="trace")
        self.sizes: list[list[int]] = [[] for _ in range(partitions)]

    def send(self, spans: SpanBatch) -> None:
        part = self.producer.partitions(spans)
        for p, count in zip(*np.unique(part, return_counts=True)):  # what SpanProducer.send cuts into records
            m = self.producer.max_spans
            self.sizes[int(p)] += [min(m, int(count) - s) for s in range(0, int(count), m)]
        self.producer.send(spans)

    def spans_below(self, committed: dict[int, int]) -> int:
        return sum(sum(self.sizes[p][:off]) for p, off in committed.items())


def closing_spans(services: int, partitions: int, end_s: float) -> SpanBatch:
    """One root span per service on every spans partition, ending at `end_s`: span time moves on."""
    n = services * partitions
    low = np.repeat(np.arange(partitions), services)  # trace id low 32 bits → partition
    trace = np.array([f"{0xc105e:016x}{i:08x}{p:08x}" for i, p in enumerate(low)], dtype=object)
    if not (trace_partitions(trace, partitions) == low).all():
        raise RuntimeError("closing trace ids do not land on the partitions meant")
    names = np.array([f"svc-{s:02d}" for s in range(services)] * partitions, dtype=object)
    return SpanBatch(np.array([f"c{i:015x}" for i in range(n)], dtype=object), np.array([""] * n, dtype=object),
                     names, names + " op-0", np.full(n, end_s), np.full(n, 1.0), np.zeros(n, dtype=bool),
                     np.ones(n, dtype=bool), trace)


def _settled(logs: list[Path], n: int) -> bool:
    owned = [e2e._assigned(log) for log in logs]
    return all(owned) and sum(len(o) for o in owned) == n


def _by_service_counts(bootstrap: str, topic: str, partitions: int, closing_end: float) -> tuple[dict[int, int], int]:
    """Per spans-by-service partition the offset of the first record holding a closing span, and the spans
    of the records below those offsets (every real span sent on by service)."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    reader.assign([TopicPartition(topic, q) for q in range(partitions)])
    reader.seek_to_beginning()
    sizes: dict[int, list[int]] = {q: [] for q in range(partitions)}
    stop_at: dict[int, int] = {}
    deadline = time.monotonic() + 120
    while len(stop_at) < partitions and time.monotonic() < deadline:
        for tp, records in reader.poll(timeout_ms=500).items():
            for r in records:
                spans = decode_spans(r.value).spans
                if tp.partition not in stop_at and float(spans.end_s.max()) >= closing_end:
                    stop_at[tp.partition] = r.offset
                elif tp.partition not in stop_at:
                    sizes[tp.partition].append(len(spans))
    reader.close()
    if len(stop_at) < partitions:
        raise SystemExit(f"spans-by-service: no closing span on partitions {set(range(partitions)) - set(stop_at)}")
    if any(stop_at[q] != len(sizes[q]) for q in range(partitions)):
        raise SystemExit(f"spans-by-service: offsets are not contiguous: {stop_at}")
    return stop_at, sum(map(sum, sizes.values()))


def run_worker(args, bootstrap: str, tmp: Path, spans: SpanBatch) -> None:
    tag = uuid.uuid4().hex[:8]
    topics = {"metrics": f"sp-{tag}", "spans": f"sp-{tag}-spans", "spans_by_service": f"sp-{tag}-by-service",
              "dead_letter": f"sp-{tag}-dead", "anomalies": f"sp-{tag}-anomalies", "alerts": f"sp-{tag}-alerts"}
    p = args.partitions
    create_topics(bootstrap, {topics["metrics"]: p, topics["spans"]: p, topics["spans_by_service"]: p,
                              topics["dead_letter"]: 1, topics["anomalies"]: 1, topics["alerts"]: 1})
    feed = SpanFeed(bootstrap, topics["spans"], p)
    started = time.perf_counter()
    for s in range(0, len(spans), args.spans_per_send):
        feed.send(spans.take(np.arange(s, min(s + args.spans_per_send, len(spans)))))
    feed.producer.flush(timeout_s=600)
    records = sum(map(len, feed.sizes))
    print(f"produced {len(spans):,} spans ({records:,} records) in {time.perf_counter() - started:.1f} s")

    with e2e._store(args, tmp, tag) as store:
        StoreEngine(store).migrate()
        group = f"sp-{tag}"
        config = {
            "store": {"url": store}, "logging": {"format": "json", "level": "info"},
            "kafka": {"bootstrap": bootstrap, "topics": topics, "group": group, "partitions": p,
                      "session_timeout_ms": 6000, "checkpoint_every_s": 30, "create_topics": False},
            "logs": {"enabled": False}, "forecasting": {"enabled": False}, "remediation": {"executor": False},
        }
        path = tmp / f"{tag}.yaml"
        path.write_text(yaml.safe_dump(config))
        logs = [tmp / f"{tag}-0.log"]
        procs = e2e.start_workers(path, logs, args.cores_per_worker)
        try:
            while not _settled(logs, 3 * p):
                time.sleep(0.05)
            cpu0 = e2e.cpu_seconds(procs[0].pid), e2e.machine_busy_seconds()
            t0 = time.perf_counter()
            c0 = feed.spans_below(e2e._committed(bootstrap, group, topics["spans"], p))
            settings = TracesSettings()  # the worker's: defaults
            closing_end = float(spans.end_s.max()) + settings.interval_s + settings.grace_s + 1
            timeline = []  # (seconds since t0, spans-by-service committed offsets, worker CPU s, machine CPU s)
            stage1 = None
            while time.perf_counter() - t0 < args.timeout:
                now = time.perf_counter() - t0
                timeline.append((now, e2e._committed(bootstrap, group, topics["spans_by_service"], p),
                                 e2e.cpu_seconds(procs[0].pid) - cpu0[0], e2e.machine_busy_seconds() - cpu0[1]))
                if stage1 is None and feed.spans_below(e2e._committed(bootstrap, group, topics["spans"], p)) >= len(spans):
                    stage1 = now
                    feed.producer.send(closing_spans(args.services, p, closing_end))
                    feed.producer.flush()
                # the records holding the closing spans are never committed: stop once nothing moved for 5 s
                if stage1 is not None and now - stage1 > 5 and all(c == timeline[-1][1] for t, c, *_ in timeline if t >= now - 5):
                    break
                time.sleep(0.1)
            else:
                raise SystemExit(f"not done in {args.timeout} s; see {logs[0]}")
        finally:
            e2e.stop_workers(procs)
    stop_at, resolved = _by_service_counts(bootstrap, topics["spans_by_service"], p, closing_end)
    if timeline[-1][1] != stop_at:
        raise SystemExit(f"stage 2 stalled: committed {timeline[-1][1]}, the closing spans start at {stop_at}")
    done, _, worker_cpu, machine_cpu = next(e for e in timeline if e[1] == stop_at)
    n = len(spans) - c0
    print(f"1 worker: {n:,} spans ({c0:,} done before it owned every partition); {resolved:,} of them "
          f"sent on by service")
    print(f"  stage 1 (resolve, re-produce by service; stage 2 running alongside): {stage1:.2f} s: "
          f"{n / stage1 / 1e3:,.0f} k spans/s")
    print(f"  end to end (both topics committed): {done:.2f} s: {n / done / 1e3:,.0f} k spans/s "
          f"({done - stage1:.2f} s after stage 1 was done)")
    print(f"  CPU in that window, in cores busy on average: the worker {worker_cpu / done:.2f}, whole machine "
          f"{machine_cpu / done:.2f} of {e2e.os.cpu_count()}")


def stage1_alone(args, bootstrap: str, spans: SpanBatch) -> None:
    """What the worker's stage 1 does, in-process with nothing else: decode, resolve, produce by service."""
    tag = uuid.uuid4().hex[:8]
    p = args.partitions
    topic, out, dead = f"s1-{tag}", f"s1-{tag}-by-service", f"s1-{tag}-dead"
    create_topics(bootstrap, {topic: p, out: p, dead: 1})
    feed = SpanFeed(bootstrap, topic, p)
    for s in range(0, len(spans), args.spans_per_send):
        feed.send(spans.take(np.arange(s, min(s + args.spans_per_send, len(spans)))))
    feed.producer.flush(timeout_s=600)
    traces = PartitionTraces(TracesSettings(), SeriesRegistry(), f"s1-{tag}", topic, out, p)
    producer = SpanProducer(bootstrap, out, by="service")
    consumer = MetricConsumer(bootstrap, [topic], f"s1-{tag}", SeriesRegistry(), dead_letter_topic=dead,
                              session_timeout_ms=6000, max_poll_records=4, decoders={topic: decode_spans})
    got, first, counted = 0, None, 0
    deadline = time.monotonic() + args.timeout
    while got < len(spans) and time.monotonic() < deadline:
        received = consumer.poll(1.0)
        n = 0
        for r in received:
            resolved, watermark = traces.resolve(TopicPartition(r.topic, r.partition), r.batch.spans)
            producer.send(resolved, r.partition, watermark)
            n += len(r.batch.spans)
        if received:
            producer.flush()
        if received and first is None:
            first = time.perf_counter()  # from the end of the first batch (fetched during the join)
        elif first is not None:
            counted += n
        got += n
        consumer.commit(received)
    elapsed = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    producer.close()
    print(f"stage 1 alone (one in-process consumer: poll, decode, resolve, produce by service, commit): "
          f"{counted:,} spans in {elapsed:.2f} s after the first batch: {counted / elapsed / 1e3:,.0f} k spans/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--ops", type=int, default=4, help="operations per service")
    parser.add_argument("--minutes", type=float, default=20, help="minutes of span time the traces spread over")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--spans-per-send", type=int, default=50_000, help="spans in one producer send")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before giving up on a run")
    parser.add_argument("--no-stage1-alone", action="store_true")
    parser.add_argument("--cores-per-worker", type=int, metavar="K", help="pin the worker to K cores (see kafka_e2e.py)")
    parser.add_argument("--bootstrap", help="an existing broker; default: start Tansu")
    parser.add_argument("--store", help="SQLAlchemy URL of an empty store; default: an SQLite file in a temp dir")
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL server: the store is a database created there and dropped")
    args = parser.parse_args()
    started = time.perf_counter()
    spans = make_spans(args.spans, args.services, args.ops, args.minutes)
    print(f"{len(spans):,} spans ({int(spans.counted.sum()):,} requests served) of {len(np.unique(spans.trace_id)):,} "
          f"traces over {args.minutes:g} min, {args.services} services x {args.ops} operations, "
          f"made in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        broker = nullcontext(args.bootstrap) if args.bootstrap else e2e.kafka_broker.tansu_broker(Path(tmp) / "tansu")
        with broker as bootstrap:
            run_worker(args, bootstrap, Path(tmp), spans)
            if not args.no_stage1_alone:
                stage1_alone(args, bootstrap, spans)


if __name__ == "__main__":
    main()
