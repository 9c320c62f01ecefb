"""Feeds the simulated fleet into the service through its own HTTP ingest, like any real client.

At start it sends `backfill_hours` of history (so detectors are warm and alert within a minute),
then a sample of every series every `interval_s`, and posts the simulated change events (deploys,
flag flips) as their time comes. It logs each injected incident as it begins, so the alert that
follows can be told apart from noise. With `logs` (`aiops.demo.logs.DemoLogs`) it also posts what the
hosts logged, as OTLP/JSON to /v1/logs: `LOG_BACKFILL_S` of history at start, then each interval's lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from aiops.demo._http import post_retrying
from aiops.demo.logs import DemoLogs
from aiops.demo.simulator import FleetSimulator
from aiops.demo.traces import DemoTraces, post_traces
from aiops.settings import Settings

__all__ = ["DemoFeeder", "start_demo_feeder"]

log = logging.getLogger(__name__)

_CHUNK = 5000  # points per request during backfill
LOG_BACKFILL_S = 1800.0  # log history sent at start: enough intervals for the detectors' warm-up
_LOG_WINDOW_S = 60.0  # seconds of log history per request during backfill


class DemoFeeder:
    def __init__(
        self,
        simulator: FleetSimulator,
        base_url: str,
        interval_s: float,
        backfill_s: float,
        backfill_step_s: float,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        logs: DemoLogs | None = None,
        traces: DemoTraces | None = None,
    ) -> None:
        self.simulator = simulator
        self.base_url = base_url
        self.interval_s = interval_s
        self.backfill_s = backfill_s
        self.backfill_step_s = backfill_step_s
        self.clock = clock
        self.transport = transport
        self.logs = logs
        self.traces = traces  # also post the fleet's spans to /v1/traces (aiops.demo.traces)
        self.sent = 0

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10.0, transport=self.transport) as client:
            await self._wait_until_listening(client)
            start = self.clock()
            await self._backfill(client, start)
            announced: set[float] = set()
            last = start
            while True:
                now = self.clock()
                for change in self.simulator.changes_between(last, now):
                    await self._post_change(client, change)
                if self.logs is not None:
                    await self._post_logs(client, self.logs.export(last, now))
                last = now
                incident = self.simulator.incident_at(now)
                if incident is not None and incident.start not in announced:
                    announced.add(incident.start)
                    log.info(
                        "demo: injected incident: %s",
                        incident.description,
                        extra={"incident": incident.kind, "service": incident.service, "host": incident.host, "start": incident.start},
                    )
                await self._post(client, self.simulator.sample(now))
                if self.traces is not None:
                    await post_traces(client, self.traces, [now])
                await asyncio.sleep(max(0.0, self.interval_s - (self.clock() - now)))

    @staticmethod
    async def _wait_until_listening(client: httpx.AsyncClient) -> None:
        """The lifespan starts us before the server binds its socket: wait for it to answer."""
        for _ in range(300):
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)

    async def _backfill(self, client: httpx.AsyncClient, start: float) -> None:
        steps = int(self.backfill_s // self.backfill_step_s)
        pending: list[dict] = []
        stamps: list[float] = []
        for k in range(steps, 0, -1):
            stamps.append(start - k * self.backfill_step_s)
            pending.extend(self.simulator.sample(stamps[-1]))
            if len(pending) >= _CHUNK or k == 1:
                await self._post(client, pending)
                if self.traces is not None:
                    await post_traces(client, self.traces, stamps)
                pending, stamps = [], []
        log.info("demo: backfilled %.1f h of history (%d points)", self.backfill_s / 3600, self.sent)
        if self.logs is not None:
            t = start - min(self.backfill_s, LOG_BACKFILL_S)
            while t < start:
                await self._post_logs(client, self.logs.export(t, min(t + _LOG_WINDOW_S, start)))
                t += _LOG_WINDOW_S

    async def _post_change(self, client: httpx.AsyncClient, change: dict) -> None:
        try:
            response = await client.post("/api/v1/events", json=change)
        except httpx.HTTPError as exc:
            log.warning("demo: change event not posted: %s", exc)
            return
        if response.status_code >= 300:
            log.error("demo: events answered %s: %s", response.status_code, response.text[:300])
        else:
            log.info("demo: change: %s %s", change["kind"], change["title"])

    async def _post(self, client: httpx.AsyncClient, points: list[dict]) -> None:
        if await post_retrying(client, "/api/v1/metrics", {"points": points}, 202, log,
                               "demo: ingest failed", "demo: ingest"):
            self.sent += len(points)


    async def _post_logs(self, client: httpx.AsyncClient, request: dict) -> None:
        if not request["resourceLogs"]:
            return
        await post_retrying(client, "/v1/logs", request, 200, log, "demo: log export failed", "demo: /v1/logs")


def start_demo_feeder(settings: Settings, simulator: FleetSimulator) -> Callable[[], object]:
    """Start feeding `simulator` to the service described by `settings`; returns the function that stops it."""
    demo = settings.demo
    host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::", "") else settings.server.host
    feeder = DemoFeeder(
        simulator,
        base_url=f"http://{host}:{settings.server.port}",
        interval_s=demo.interval_s,
        backfill_s=demo.backfill_hours * 3600,
        backfill_step_s=demo.backfill_step_s,
        logs=DemoLogs(simulator) if settings.logs.enabled else None,
        traces=DemoTraces(simulator, interval_s=settings.traces.interval_s) if settings.traces.enabled else None,
    )
    task = asyncio.get_running_loop().create_task(feeder.run(), name="aiops-demo-feeder")

    async def stop() -> None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    return stop
