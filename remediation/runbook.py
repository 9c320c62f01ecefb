"""The runbook format: what to match, what to do, how to know it worked, how to undo, whom to tell.

Declarative and validated strictly (unknown keys are errors), so a typo in a runbook fails at load
time with the file, line and field rather than at 3 a.m. in the middle of an incident. Strings in
`params` and in each step's `with` are Jinja2 templates rendered in a sandbox (see
`remediation.templating`).
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ACTIONS",
    "Approval",
    "BusinessHours",
    "Escalate",
    "Guards",
    "Match",
    "Retry",
    "Runbook",
    "RunbookSet",
    "Step",
    "Verify",
]

ACTIONS = ("http", "jenkins", "wait", "check")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Match(_Model):
    """Which alerts a runbook answers: kind, label selector (Prometheus style), lowest severity."""

    kind: Literal["anomaly", "predictive", "external", "any"] = "any"
    selector: str = Field("{}", description='over the alert\'s labels, e.g. {__name__="disk_used_percent"}')
    severity: Literal["warning", "critical"] = "warning"


class Retry(_Model):
    max_attempts: int = Field(1, ge=1, le=10)
    backoff_s: float = Field(2.0, ge=0, le=600)


class Step(_Model):
    """One action. `with` holds its arguments (templates); `idempotent` says whether running it twice is safe."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]+$")
    action: Literal["http", "jenkins", "wait", "check"]
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout_s: float = Field(30.0, gt=0, le=6 * 3600)
    retry: Retry = Retry()
    idempotent: bool | None = Field(
        None, description="default: true for http (it sends an Idempotency-Key), wait and check; false for jenkins"
    )

    @model_validator(mode="after")
    def _arguments(self) -> Step:
        required = {"http": ("url",), "jenkins": ("job",), "wait": ("seconds",), "check": ()}[self.action]
        missing = [k for k in required if k not in self.with_]
        if missing:
            raise ValueError(f"step {self.name!r}: action {self.action} needs with.{', with.'.join(missing)}")
        allowed = {
            "http": {"url", "method", "json", "body", "headers", "expect_status"},
            "jenkins": {"job", "params", "server"},
            "wait": {"seconds"},
            "check": {"max_score", "inside_band"},
        }[self.action]
        unknown = sorted(set(self.with_) - allowed)
        if unknown:
            raise ValueError(f"step {self.name!r}: unknown with.{', with.'.join(unknown)} for {self.action}; "
                             f"allowed: {', '.join(sorted(allowed))}")
        return self

    @property
    def is_idempotent(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.action != "jenkins"


class Verify(_Model):
    """The closed loop: the alert's series must look normal again, for long enough, before the deadline.

    Normal: score below `max_score` and, with `inside_band`, the value inside the band the detector
    expected when the alert opened (a live band would drift towards the fault and call it normal).
    """

    max_score: float = Field(0.5, ge=0, le=1)
    inside_band: bool = True
    for_s: float = Field(180.0, ge=0, description="how long (in data time) the series must stay normal")
    deadline_s: float = Field(600.0, gt=0, description="give up (and roll back) if not verified within this")


class Escalate(_Model):
    receiver: str | None = Field(None, description="a receiver of alerting.receivers; default: the root route's")


class Approval(_Model):
    required: bool = True
    approvers: list[str] = Field(default_factory=list, description="who may approve; empty: anyone")


class BusinessHours(_Model):
    """Runs only inside these hours (UTC), on these weekdays."""

    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"]
    )
    start: str = "09:00"
    end: str = "17:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, text: str) -> str:
        if not _HHMM.match(text):
            raise ValueError(f"expected HH:MM (UTC), got {text!r}")
        return text

    def contains(self, ts: float) -> bool:
        t = time.gmtime(ts)
        minutes = t.tm_hour * 60 + t.tm_min
        start, end = (int(x[:2]) * 60 + int(x[3:]) for x in (self.start, self.end))
        inside = start <= minutes < end if start <= end else (minutes >= start or minutes < end)
        return inside and _WEEKDAYS[t.tm_wday] in self.weekdays


class Guards(_Model):
    dry_run: bool = Field(False, description="record what would be done; act on nothing")
    approval: Approval | None = None
    max_per_hour: int | None = Field(None, ge=1, description="executions of this runbook per hour, all targets")
    max_per_hour_per_target: int | None = Field(None, ge=1)
    cooldown_s: float = Field(0.0, ge=0, description="after an execution on a target, wait this long before the next")
    business_hours: BusinessHours | None = None


class Runbook(_Model):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]+$")
    description: str = ""
    match: Match = Match()
    params: dict[str, str] = Field(default_factory=dict, description="templates over the alert: {{ labels.host }}, {{ value }}")
    target: str = Field(
        "{{ labels.service | default('') }}/{{ labels.host | default('') }}",
        description="what it acts on (a template): one execution at a time, cooldowns and per-target limits apply to it",
    )
    steps: list[Step] = Field(min_length=1)
    verify: Verify | None = Verify()
    rollback: list[Step] = Field(default_factory=list)
    escalate: Escalate = Escalate()
    guards: Guards = Guards()

    @model_validator(mode="after")
    def _unique_steps(self) -> Runbook:
        names = [s.name for s in self.steps] + [s.name for s in self.rollback]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"runbook {self.name!r}: step name(s) used twice: {', '.join(twice)}")
        return self


class RunbookSet(_Model):
    """A runbook file: `runbooks: [...]`."""

    runbooks: list[Runbook] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RunbookSet:
        names = [r.name for r in self.runbooks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"runbook name(s) used twice: {', '.join(twice)}")
        return self
