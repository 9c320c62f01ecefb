"""The demo's moving parts besides the feeder: the fleet's control endpoint, a pager, and a Jenkins.

- `POST /demo/actions` `{action, service, host?}`: what a runbook does to the simulated fleet
  (restart, scale_out, rotate_logs, restore_log_config); answers which injected incident it cured.
- `POST /demo/pager`, `GET /demo/pages`: a webhook receiver standing in for a person's pager, so
  escalations can be seen (`GET /demo/pages`).
- A Jenkins emulator (`emulators.jenkins`) on a free loopback port with a `scale-out` job that calls
  the control endpoint: a runbook can heal through a real Jenkins-API job.

`DemoRuntime.settings` adds to the user's settings what the demo needs and they did not set: a
detection rule that watches the fleet's metrics upwards only (more load, latency, errors, disk: a
drop is good news here), RED intervals as long as its sample interval (its traces, `aiops.demo.traces`,
give the dependency map; the fleet's map is configured only when traces are off), the runbooks of `runbooks.yaml`, the Jenkins server, the pager, an
escalation policy that pages for incidents still open after 30 s, a 60 s quiet period before an
alert resolves (so each injected incident has closed before the next one comes), and a forecast
of every disk (a line through its last minute, 10-second buckets) that raises a predictive alert
when the disk would be full within 30 minutes. Logs are counted per 10 s (closing 2 s after), and a
template is new after 1,000 lines, so the demo's error burst shows as log anomalies within seconds.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from aiops.config_loader import load_runbook_file
from aiops.demo.simulator import FleetSimulator, demo_topology
from aiops.settings import (
    AlertingSettings, DetectionRule, EscalationPolicy, ForecastRule, LogSettings, ReceiverSpec, RemediationSettings,
    Settings, TracesSettings,
)
from connectors.jenkins import JenkinsConfig
from emulators.jenkins import JenkinsEmulator, Job

__all__ = ["DemoRuntime", "router"]

log = logging.getLogger(__name__)

RUNBOOKS = Path(__file__).with_name("runbooks.yaml")


class DemoRuntime:
    def __init__(self, settings: Settings) -> None:
        demo = settings.demo
        host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::", "") else settings.server.host
        self.base_url = f"http://{host}:{settings.server.port}"
        self.simulator = FleetSimulator(
            services=demo.services, hosts_per_service=demo.hosts_per_service, seed=demo.seed, origin=time.time(),
            first_incident_after_s=demo.first_incident_after_s, incident_every_s=demo.incident_every_s,
            incident_duration_s=demo.incident_duration_s,
        )
        self.pages: deque[dict[str, Any]] = deque(maxlen=200)
        self.jenkins = JenkinsEmulator(jobs={"scale-out": Job(queue_polls=1, build_polls=2, hook=self._scale_out,
                                                              parameters=("SERVICE", "HOST", "REASON"))})

    def __enter__(self) -> DemoRuntime:
        self.jenkins.__enter__()
        log.info("demo: Jenkins emulator at %s (job scale-out)", self.jenkins.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.jenkins.__exit__(*exc)

    def _scale_out(self, params: dict[str, str]) -> str | None:
        """The Jenkins job's work: ask the fleet to scale the service out."""
        response = httpx.post(f"{self.base_url}/demo/actions", timeout=10,
                              json={"action": "scale_out", "service": params["SERVICE"], "host": params.get("HOST")})
        response.raise_for_status()
        return None

    def settings(self, settings: Settings) -> Settings:
        """The user's settings with what the demo needs and they left unset."""
        alerting, remediation = settings.alerting, settings.remediation
        alerting_update: dict[str, Any] = {}
        if alerting.resolve_after_s == AlertingSettings.model_fields["resolve_after_s"].default:
            alerting_update["resolve_after_s"] = 60.0  # injected incidents come every 2 minutes: close each before the next
        if not alerting.incidents.topology and not settings.traces.enabled:  # no traces: the map as configuration
            topology = demo_topology(self.simulator.services)
            alerting_update["incidents"] = alerting.incidents.model_copy(update={"topology": topology})
        if not alerting.receivers and not alerting.escalation:
            alerting_update["receivers"] = [ReceiverSpec(name="demo-pager", webhook=[{"url": f"{self.base_url}/demo/pager"}])]
            alerting_update["escalation"] = [EscalationPolicy(name="demo", delay_s=30,
                                                              steps=[{"receiver": "demo-pager", "wait_s": 300}])]
        update: dict[str, Any] = {"alerting": alerting.model_copy(update=alerting_update)}
        if settings.traces.interval_s == TracesSettings.model_fields["interval_s"].default:  # one sample per interval
            update["traces"] = settings.traces.model_copy(update={"interval_s": settings.demo.interval_s, "grace_s": 0.0})
        if not settings.detection.rules:  # for this fleet only getting worse matters: busier, slower, fuller, more errors
            rule = DetectionRule(selector='{env="demo"}', detector=settings.detection.default.detector,
                                 params={**settings.detection.default.params, "direction": "up"})
            update["detection"] = settings.detection.model_copy(update={"rules": [rule]})
        if not remediation.runbooks and not remediation.runbook_files:
            update["remediation"] = RemediationSettings.model_validate({
                **remediation.model_dump(exclude={"runbooks", "runbook_files", "jenkins", "vars"}),
                "runbooks": load_runbook_file(RUNBOOKS).runbooks,
                "jenkins": {"demo": JenkinsConfig(url=self.jenkins.url, user=self.jenkins.user,
                                                  api_token=self.jenkins.token, poll_interval_s=1.0)},
                "vars": {**remediation.vars, "demo_url": self.base_url},
            })
        if not settings.forecasting.rules:  # a disk that starts filling is forecast to be full, and alerted on
            update["forecasting"] = settings.forecasting.model_copy(update={
                "step_s": 10.0, "history_days": 0.25, "every_s": 10.0,
                "rules": [ForecastRule(selector='{__name__="disk_used_percent"}', threshold=100.0, method="linear",
                                       window_s=60.0, lead_time_s=1800.0, horizon_s=3600.0)],
            })
        demo_logs = {"interval_s": 10.0, "grace_s": 2.0, "warmup_records": 1000}  # short intervals and warm-up
        logs_update = {k: v for k, v in demo_logs.items() if getattr(settings.logs, k) == LogSettings.model_fields[k].default}
        if logs_update:
            update["logs"] = settings.logs.model_copy(update=logs_update)
        return settings.model_copy(update=update)


router = APIRouter(prefix="/demo", tags=["demo"])


class ControlAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str = Field(description="restart | scale_out | rotate_logs | restore_log_config")
    service: str
    host: str | None = None


def _runtime(request: Request) -> DemoRuntime:
    runtime = getattr(request.app.state, "demo", None)
    if runtime is None:
        raise HTTPException(404, "the demo environment is not running")
    return runtime


@router.post("/actions", summary="Act on the simulated fleet (what the demo's runbooks call)")
def control(body: ControlAction, request: Request) -> dict[str, Any]:
    runtime = _runtime(request)
    try:
        cured = runtime.simulator.control(body.action, body.service, body.host, time.time())
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    log.info("demo: %s on %s%s: %s", body.action, body.service, f"/{body.host}" if body.host else "",
             f"cured: {cured.description}" if cured else "no incident cured")
    return {"cured": cured.description if cured else None}


@router.post("/pager", status_code=202, summary="The demo's stand-in for a person's pager (a webhook receiver)")
async def page(request: Request) -> dict[str, Any]:
    runtime = _runtime(request)
    payload = await request.json()
    runtime.pages.append({"received_at": time.time(), "title": payload.get("title"), "reason": payload.get("reason"),
                          "text": payload.get("text")})
    log.info("demo: paged: %s", payload.get("title"))
    return {"status": "ok"}


@router.get("/pages", summary="What the demo pager received, newest last")
def pages(request: Request) -> dict[str, Any]:
    return {"items": list(_runtime(request).pages)}
