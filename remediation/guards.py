"""Guards: whether a matched runbook may run now, and how (pending, awaiting approval, dry run).

Pure decisions over facts the executor reads from the store, in a fixed order so the reason given
is the first that applies: the kill switch, business hours, one execution at a time per target,
the target's cooldown, the hourly limits, then approval.
"""

from __future__ import annotations

from dataclasses import dataclass

from remediation.runbook import Runbook

__all__ = ["Decision", "History", "decide"]


@dataclass(frozen=True)
class History:
    """What the store says about earlier executions, as the guards need it."""

    runbook_last_hour: int  # executions of this runbook started in the last hour (any target)
    target_last_hour: int  # … of this runbook on this target
    target_active: bool  # an execution (of any runbook) on this target has not finished
    target_last_finished_at: float | None  # when the last execution on this target finished
    kill_switch: str | None = None  # why remediation is switched off, if it is


@dataclass(frozen=True)
class Decision:
    state: str | None  # pending | awaiting_approval; None: not run
    reason: str
    dry_run: bool = False


def decide(runbook: Runbook, history: History, now: float, force_dry_run: bool = False) -> Decision:
    g = runbook.guards
    dry_run = g.dry_run or force_dry_run
    if history.kill_switch is not None and not dry_run:
        return Decision(None, f"kill switch engaged ({history.kill_switch})")
    if g.business_hours is not None and not g.business_hours.contains(now) and not dry_run:
        hours = g.business_hours
        return Decision(None, f"outside business hours ({', '.join(hours.weekdays)} {hours.start}-{hours.end} UTC)")
    if history.target_active:
        return Decision(None, "another execution on this target has not finished")
    if g.cooldown_s and history.target_last_finished_at is not None:
        left = history.target_last_finished_at + g.cooldown_s - now
        if left > 0:
            return Decision(None, f"target cooling down for another {left:.0f} s (cooldown_s {g.cooldown_s:g})")
    if g.max_per_hour is not None and history.runbook_last_hour >= g.max_per_hour:
        return Decision(None, f"{history.runbook_last_hour} executions in the last hour (max_per_hour {g.max_per_hour})")
    if g.max_per_hour_per_target is not None and history.target_last_hour >= g.max_per_hour_per_target:
        return Decision(None, f"{history.target_last_hour} executions on this target in the last hour "
                              f"(max_per_hour_per_target {g.max_per_hour_per_target})")
    if g.approval is not None and g.approval.required and not dry_run:
        who = ", ".join(g.approval.approvers) or "anyone"
        return Decision("awaiting_approval", f"approval required (by {who})", dry_run)
    return Decision("pending", "dry run: actions are recorded, not taken" if dry_run else "guards passed", dry_run)
