"""Kafka transport throughput: the record codec alone, then points/s through a real broker.

1. Codec: encode and decode points/s and bytes a point for our binary record (ingest/kafka_codec.py)
   beside the same columns as a JSON record (msgspec), raw and gzipped; once with each series about
   once a batch (scrape-shaped), once with 100 points a series (backfill-shaped).
2. Broker: starts Tansu (as the tests do, tests/kafka_broker.py) unless `--bootstrap` is given,
   produces `--points` points in batches of `--batch` over `--series` series into a 3-partition topic,
   then consumes them all back in a consumer group (decode into a MetricBatch included) and prints
   points/s each way.

    .venv/bin/python bench/kafka.py [--points 2000000] [--batch 10000] [--series 10000] [--compression zstd]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import sys
import tempfile
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
# this script is named after the package it drives: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import msgspec  # noqa: E402

from detectors.types import MetricBatch  # noqa: E402
from ingest.kafka_bus import MetricConsumer, MetricProducer, create_topics  # noqa: E402
from ingest.kafka_codec import RecordCodec  # noqa: E402
from ingest.registry import SeriesRegistry, series_key  # noqa: E402

_spec = importlib.util.spec_from_file_location("kafka_broker", _HERE.parent / "tests" / "kafka_broker.py")
kafka_broker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kafka_broker)


def _registry(series: int) -> SeriesRegistry:
    reg = SeriesRegistry()
    for i in range(series):
        reg.intern(series_key("cpu_usage_percent", {"host": f"host-{i}", "service": f"svc-{i % 50}", "cluster": "bench"}))
    return reg


def _batches(series: int, points: int, batch: int, seed: int = 0) -> list[MetricBatch]:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(points // batch):
        sid = (np.arange(batch) + b * batch) % series
        ts = 1.7e9 + b * 10.0 + np.zeros(batch)
        out.append(MetricBatch.from_arrays(sid, ts, np.round(50 + 10 * rng.standard_normal(batch), 2)))
    return out


class _JsonColumns(msgspec.Struct):
    v: int
    series: list[msgspec.Raw]
    idx: list[int]
    ts: list[float]
    value: list[float]


def _codec_figures(reg: SeriesRegistry, batches: list[MetricBatch]) -> None:
    codec = RecordCodec(reg)
    n = sum(len(b) for b in batches)
    t = time.perf_counter()
    binary = [r for b in batches for r in codec.encode(b)]
    enc_bin = time.perf_counter() - t
    decoder = RecordCodec(SeriesRegistry())
    decoder.decode(binary[0])  # warm the identity cache, as a long-running consumer has it
    t = time.perf_counter()
    for r in binary:
        decoder.decode(r)
    dec_bin = time.perf_counter() - t

    entries = [msgspec.json.encode((n_, dict(l_))) for n_, l_ in (reg.key(s) for s in range(len(reg)))]
    t = time.perf_counter()
    js = []
    for b in batches:
        uniq, index = np.unique(b.series_id, return_inverse=True)
        js.append(
            msgspec.json.encode(
                {"v": 1, "series": [msgspec.Raw(entries[s]) for s in uniq.tolist()], "idx": index.tolist(),
                 "ts": b.ts.tolist(), "value": b.value.tolist()}
            )
        )
    enc_js = time.perf_counter() - t
    jdec = msgspec.json.Decoder(_JsonColumns)
    ids = {e: sid for sid, e in enumerate(entries)}  # the same identity lookup the binary decoder does
    t = time.perf_counter()
    for r in js:
        doc = jdec.decode(r)
        sids = np.array([ids.get(bytes(x)) for x in doc.series], dtype=np.int32)
        sids[np.array(doc.idx, dtype=np.int32)], np.array(doc.ts), np.array(doc.value)
    dec_js = time.perf_counter() - t

    print(f"codec over {n:,} points, {len(reg):,} series, {len(batches[0]):,} points a batch")
    for name, records, enc, dec in (("binary", binary, enc_bin, dec_bin), ("json", js, enc_js, dec_js)):
        raw = sum(map(len, records))
        sample = records[: max(1, len(records) // 10)]
        ratio = sum(len(gzip.compress(r, 6)) for r in sample) / sum(map(len, sample))
        print(
            f"  {name:6s}: encode {n / enc / 1e6:6.2f} M points/s, decode {n / dec / 1e6:6.2f} M points/s, "
            f"{raw / n:5.1f} bytes/point raw, {raw * ratio / n:5.1f} gzipped"
        )
    print(f"  binary / json: decode {dec_js / dec_bin:.1f}x faster, encode {enc_js / enc_bin:.1f}x faster")


def _broker_figures(bootstrap: str, reg: SeriesRegistry, batches: list[MetricBatch], compression: str | None) -> None:
    tag = uuid.uuid4().hex[:8]
    topic, dead = f"bench-{tag}", f"bench-{tag}-dead"
    create_topics(bootstrap, {topic: 3, dead: 1})
    n = sum(len(b) for b in batches)
    producer = MetricProducer(bootstrap, topic, reg, compression=compression)
    t = time.perf_counter()
    records = sum(producer.send(b) for b in batches)
    producer.flush(timeout_s=300)
    produced = time.perf_counter() - t
    producer.close()

    consumer = MetricConsumer(bootstrap, [topic], f"bench-{tag}", SeriesRegistry(), dead_letter_topic=dead,
                              session_timeout_ms=6000, max_poll_records=200)
    got, first = 0, None
    deadline = time.monotonic() + 300
    while got < n and time.monotonic() < deadline:
        received = consumer.poll(1.0)
        if received and first is None:
            first = time.perf_counter()  # from the first record: the group join is not throughput
        got += sum(len(r.batch) for r in received)
    consumed = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    print(f"broker ({compression or 'no'} compression), {records:,} records of ~{n // max(records, 1):,} points")
    print(f"  produced {n:,} points in {produced:.2f} s: {n / produced / 1e6:.2f} M points/s")
    print(f"  consumed {got:,} points in {consumed:.2f} s: {got / consumed / 1e6:.2f} M points/s (decode included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--compression", default="zstd", help="zstd (the producer's default), gzip, lz4 (needs the lz4 package), none")
    parser.add_argument("--bootstrap", help="an existing broker; default: start Tansu")
    args = parser.parse_args()
    reg = _registry(args.series)
    batches = _batches(args.series, args.points, args.batch)
    _codec_figures(reg, batches)  # scrape-shaped: each series once or so a batch
    few = max(1, args.batch // 100)
    _codec_figures(_registry(few), _batches(few, args.points, args.batch))  # backfill-shaped: 100 points a series
    compression = None if args.compression == "none" else args.compression
    with tempfile.TemporaryDirectory() as tmp:
        broker = nullcontext(args.bootstrap) if args.bootstrap else kafka_broker.tansu_broker(Path(tmp))
        with broker as bootstrap:
            _broker_figures(bootstrap, reg, batches, compression)


if __name__ == "__main__":
    main()
