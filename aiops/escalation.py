"""Escalation: an incident nobody acknowledges goes to the next receiver of its policy, step after step.

A policy is chosen when an incident opens (the first whose selector matches its first alert). Its
first step notifies after `delay_s` (at once by default) if the incident is still open then; each step then waits `wait_s` for an acknowledgement before the next
step notifies. After the last step the policy starts again from the first, `repeat` times, then
stops. Acknowledging, remediating or resolving the incident stops it. The position is kept on the
incident row (`escalation_step`, `escalation_round`, `escalation_next_at`), so a restart resumes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiops.matchers import parse_selector
from aiops.settings import EscalationPolicy

__all__ = ["Escalations", "Step"]


@dataclass(frozen=True)
class Step:
    """What an escalation tick decided for one incident."""

    receiver: str | None  # who to notify now; None: the policy is exhausted
    step: int
    round: int
    next_at: float | None


class Escalations:
    def __init__(self, policies: Sequence[EscalationPolicy] = ()) -> None:
        self._policies = {p.name: p for p in policies}
        self._selectors = [(p, parse_selector(p.selector)) for p in policies]

    def __bool__(self) -> bool:
        return bool(self._policies)

    def policy_for(self, labels: dict[str, str]) -> str | None:
        return next((p.name for p, sel in self._selectors if sel.matches_labels(labels)), None)

    def delay(self, policy: str) -> float:
        """How long a new incident waits (open, unacknowledged, not being remediated) before its first page."""
        return self._policies[policy].delay_s

    def next(self, policy: str | None, step: int, round_: int, now: float) -> Step:
        """The step after `step` once its wait has run out."""
        found = self._policies.get(policy or "")
        if found is None:  # the policy was removed by a reload: stop
            return Step(None, step, round_, None)
        step += 1
        if step >= len(found.steps):
            if round_ >= found.repeat:
                return Step(None, step - 1, round_, None)
            step, round_ = 0, round_ + 1
        current = found.steps[step]
        return Step(current.receiver, step, round_, now + current.wait_s)
