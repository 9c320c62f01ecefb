"""How data enters the pipeline: decoding pushed payloads into columnar batches, the bus, the series registry."""

from ingest.bus import Bus, BusFull, InProcessBus
from ingest.otlp import DecodedMetrics, OtlpBodyError, OtlpMetricsDecoder
from ingest.points import BodyError, DecodedPoints, PointDecoder, Rejection
from ingest.registry import SeriesKey, SeriesLimitReached, SeriesRegistry, series_key

__all__ = [
    "BodyError",
    "Bus",
    "BusFull",
    "DecodedMetrics",
    "DecodedPoints",
    "InProcessBus",
    "OtlpBodyError",
    "OtlpMetricsDecoder",
    "PointDecoder",
    "Rejection",
    "SeriesKey",
    "SeriesLimitReached",
    "SeriesRegistry",
    "series_key",
]
