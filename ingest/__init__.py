"""How data enters the pipeline: decoding pushed payloads into columnar batches, the bus, the series registry.

The Kafka transport (`ingest.kafka_bus`, `ingest.kafka_codec`, `ingest.kafka_logs`, `ingest.kafka_mapping`) is re-exported lazily: importing
kafka-python costs ~0.2 s, which the embedded, single-process mode never needs to pay.
"""

import importlib

from ingest.bus import Bus, BusFull, InProcessBus
from ingest.otlp import DecodedMetrics, OtlpBodyError, OtlpMetricsDecoder
from ingest.points import BodyError, DecodedPoints, PointDecoder, Rejection
from ingest.registry import SeriesKey, SeriesLimitReached, SeriesRegistry, series_key

_LAZY = {
    "KafkaBusError": "ingest.kafka_bus",
    "MetricConsumer": "ingest.kafka_bus",
    "MetricProducer": "ingest.kafka_bus",
    "RebalanceHooks": "ingest.kafka_bus",
    "Received": "ingest.kafka_bus",
    "create_topics": "ingest.kafka_bus",
    "RecordCodec": "ingest.kafka_codec",
    "RecordError": "ingest.kafka_codec",
    "PartitionKey": "ingest.kafka_codec",
    "partition_hash": "ingest.kafka_codec",
    "series_entry": "ingest.kafka_codec",
    "JsonMapping": "ingest.kafka_mapping",
    "LogProducer": "ingest.kafka_logs",
    "decode_logs": "ingest.kafka_logs",
    "encode_logs": "ingest.kafka_logs",
    "source_key": "ingest.kafka_logs",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ingest' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "BodyError",
    "Bus",
    "BusFull",
    "DecodedMetrics",
    "DecodedPoints",
    "InProcessBus",
    "JsonMapping",
    "OtlpBodyError",
    "OtlpMetricsDecoder",
    "KafkaBusError",
    "PartitionKey",
    "LogProducer",
    "MetricConsumer",
    "MetricProducer",
    "RebalanceHooks",
    "Received",
    "RecordCodec",
    "RecordError",
    "PointDecoder",
    "Rejection",
    "SeriesKey",
    "SeriesLimitReached",
    "SeriesRegistry",
    "create_topics",
    "decode_logs",
    "encode_logs",
    "partition_hash",
    "series_entry",
    "series_key",
    "source_key",
]
