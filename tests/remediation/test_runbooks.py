"""Runbook format, sandboxed templates and guards: pure logic, no store."""

from __future__ import annotations

import pytest

from remediation.guards import History, decide
from remediation.runbook import Runbook
from remediation.templating import TemplateRenderError, render_text, render_tree

BASE = {"name": "restart", "steps": [{"name": "call", "action": "http", "with": {"url": "http://127.0.0.1:1/x"}}]}
QUIET = History(runbook_last_hour=0, target_last_hour=0, target_active=False, target_last_finished_at=None)
MONDAY_NOON = 1_799_668_800.0  # 2027-01-11 12:00 UTC, a Monday


def _runbook(**guards) -> Runbook:
    return Runbook.model_validate({**BASE, "guards": guards})


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ labels.__class__ }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
    "{{ cycler.__init__.__globals__.os.system('id') }}",
    "{{ lipsum.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ labels.update({'host': 'evil'}) }}",
    "{% for x in labels.items() %}{{ x.__class__.__base__ }}{% endfor %}",
    "{{ (1).__add__(1) }}",
])
def test_templates_cannot_escape_the_sandbox(template):
    context = {"labels": {"host": "web-1"}, "value": 3.0}
    with pytest.raises(TemplateRenderError):
        render_text(template, context, "steps[0].with.url")
    assert context["labels"] == {"host": "web-1"}


def test_templates_read_the_alert_and_render_nested_arguments():
    context = {"labels": {"host": "web-1"}, "value": 97.5, "params": {"n": 2}}
    tree = {"url": "http://ops/{{ labels.host }}/restart", "json": {"why": "cpu {{ value }}", "n": ["{{ params.n }}", 3]}}
    assert render_tree(tree, context, "with") == {"url": "http://ops/web-1/restart", "json": {"why": "cpu 97.5", "n": ["2", 3]}}
    with pytest.raises(TemplateRenderError, match=r"with\.json\.why: UndefinedError"):
        render_tree({"json": {"why": "{{ valu }}"}}, context, "with")


def test_steps_are_checked_for_their_arguments():
    with pytest.raises(ValueError, match="action wait needs with.seconds"):
        Runbook.model_validate({**BASE, "steps": [{"name": "w", "action": "wait"}]})
    with pytest.raises(ValueError, match="unknown with.secs for wait"):
        Runbook.model_validate({**BASE, "steps": [{"name": "w", "action": "wait", "with": {"seconds": 1, "secs": 2}}]})
    with pytest.raises(ValueError, match="step name.*used twice"):
        Runbook.model_validate({**BASE, "rollback": [{"name": "call", "action": "wait", "with": {"seconds": 1}}]})
    jenkins = Runbook.model_validate({**BASE, "steps": [{"name": "j", "action": "jenkins", "with": {"job": "x"}}]})
    assert not jenkins.steps[0].is_idempotent and Runbook.model_validate(BASE).steps[0].is_idempotent


def test_guards_in_order_each_with_its_reason():
    assert decide(_runbook(), QUIET, MONDAY_NOON).state == "pending"
    assert decide(_runbook(), History(0, 0, False, None, kill_switch="maintenance"), MONDAY_NOON).reason.startswith(
        "kill switch engaged")
    hours = {"business_hours": {"weekdays": ["mon"], "start": "09:00", "end": "11:00"}}
    assert decide(_runbook(**hours), QUIET, MONDAY_NOON).reason.startswith("outside business hours")
    assert decide(_runbook(**hours), QUIET, MONDAY_NOON - 2 * 3600).state == "pending"  # 10:00
    assert decide(_runbook(), History(0, 0, True, None), MONDAY_NOON).reason == "another execution on this target has not finished"
    cooling = decide(_runbook(cooldown_s=600), History(0, 0, False, MONDAY_NOON - 100), MONDAY_NOON)
    assert cooling.state is None and "another 500 s" in cooling.reason
    assert decide(_runbook(cooldown_s=600), History(0, 0, False, MONDAY_NOON - 700), MONDAY_NOON).state == "pending"
    assert "max_per_hour 3" in decide(_runbook(max_per_hour=3), History(3, 0, False, None), MONDAY_NOON).reason
    assert "max_per_hour_per_target 1" in decide(_runbook(max_per_hour_per_target=1), History(1, 1, False, None),
                                                  MONDAY_NOON).reason
    approval = decide(_runbook(approval={"approvers": ["alice"]}), QUIET, MONDAY_NOON)
    assert (approval.state, approval.reason) == ("awaiting_approval", "approval required (by alice)")
    dry = decide(_runbook(dry_run=True, approval={}), History(0, 0, False, None, kill_switch="x"), MONDAY_NOON)
    assert (dry.state, dry.dry_run) == ("pending", True)  # a dry run acts on nothing: neither switch nor approval holds it


def test_business_hours_across_midnight():
    from remediation.runbook import BusinessHours

    night = BusinessHours(weekdays=["mon"], start="22:00", end="06:00")
    assert night.contains(MONDAY_NOON + 11 * 3600) and not night.contains(MONDAY_NOON)
