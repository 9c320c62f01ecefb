"""The service's parts, built from settings and wired together; the API and the CLI start it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiops.alerts import AlertManager
from aiops.detection import DetectionRouter
from aiops.pipeline import Pipeline
from aiops.settings import Settings
from aiops.store import StoreEngine, repository
from aiops.telemetry import Telemetry
from ingest.bus import InProcessBus
from ingest.points import PointDecoder
from ingest.registry import SeriesRegistry

__all__ = ["Service"]

log = logging.getLogger(__name__)


class Service:
    """Store, bus, registry, decoder, detector and pipeline of one process.

    Construction connects nothing; `start()` migrates the store, restores the series registry and
    the firing alerts, and starts the pipeline. `ready` is True only between `start` and `stop`.
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.telemetry = Telemetry()
        self.store = StoreEngine(settings.store_url, echo=settings.store.echo)
        self.bus = InProcessBus(settings.bus.queue_batches)
        self.registry = SeriesRegistry(max_series=settings.ingest.max_series)
        self.decoder = PointDecoder(self.registry, max_future_skew_s=settings.ingest.max_future_skew_s)
        self.detection = DetectionRouter(settings.detection, settings.alerting, self.registry)
        self.pipeline = Pipeline(
            bus=self.bus,
            registry=self.registry,
            detection=self.detection,
            alerts=AlertManager(resolve_after_s=settings.alerting.resolve_after_s),
            store=self.store,
            telemetry=self.telemetry,
            clock=clock,
        )
        self.telemetry.watch(lambda: self.bus.depth("metrics"), lambda: len(self.registry))
        self._started = False

    @property
    def ready(self) -> bool:
        return self._started and self.pipeline.running

    def start(self) -> None:
        self.store.migrate()
        with self.store.begin() as conn:
            self.registry.load(repository.load_series(conn))
        self.pipeline.start()
        self._started = True
        log.info("service started", extra={"store": self.store.dialect, "series": len(self.registry)})

    def stop(self) -> None:
        self._started = False
        self.pipeline.stop(drain=True)
        self.store.close()
