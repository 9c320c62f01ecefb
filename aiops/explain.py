"""Every notification explains itself: what, where, expected vs seen, since when, why, and what next.

`alert_facts` reads one alert row into the facts a person needs; `group_payload` and
`incident_payload` assemble what a receiver gets: those facts for each alert, the incident the
alerts belong to with its likely origins (ranked, with reasons) and the changes shortly before it,
the runbooks that apply, and a link. `render` turns a payload into a headline and lines of text;
Slack, PagerDuty and the default webhook body all use it, so every channel says the same thing.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["alert_facts", "execution_payload", "fmt_duration", "fmt_value", "group_payload", "incident_payload", "render"]

PAYLOAD_VERSION = 1


def fmt_value(x: Any) -> str:
    """A number as people read it in alerts and notifications (4 significant digits); None as n/a."""
    if x is None:
        return "n/a"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def fmt_duration(seconds: float) -> str:
    """A span of time as people say it: seconds under 2 min, minutes under 2 h, hours under 2 days, then days."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.1f} days"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def alert_facts(alert: dict[str, Any]) -> dict[str, Any]:
    """The facts of one alert row, in the words of the notification."""
    labels = dict(alert["labels"])
    name = labels.pop("__name__", alert.get("kind", "alert"))
    details = alert.get("details") or {}
    explanation = details.get("explanation") or {}
    detectors = explanation.get("detectors") or {}
    facts: dict[str, Any] = {
        "id": alert["id"],
        "state": alert["state"],
        "severity": alert["severity"],
        "kind": alert.get("kind", "anomaly"),
        "what": name,
        "where": labels,
        "seen": details.get("value"),
        "expected": details.get("expected"),
        "lower": details.get("lower"),
        "upper": details.get("upper"),
        "score": details.get("score"),
        "since": alert["first_seen"],
        "last_seen": alert["last_seen"],
        "count": alert.get("count", 1),
        "detectors": dict(sorted(detectors.items(), key=lambda kv: -kv[1])),
        "summary": alert["summary"],
        "flapping": bool(alert.get("flapping")),
    }
    if "entity" in explanation:
        facts["drivers"] = explanation["entity"].get("attributions", {})
    if explanation.get("runbook_url"):
        facts["runbook_url"] = explanation["runbook_url"]
    if "log" in explanation:  # an anomaly from logs: what was logged, not only how much
        logged = explanation["log"]
        templates = [logged["template"]] if logged.get("template") else list(logged.get("templates") or ())
        facts["log"] = {"templates": templates, "examples": list(logged.get("examples") or ()),
                        "new_template": bool(logged.get("new_template"))}
    return facts


def _incident_part(story: dict[str, Any], public_url: str) -> dict[str, Any]:
    return {
        "id": story["id"],
        "state": story["state"],
        "severity": story["severity"],
        "title": story["title"],
        "opened_at": story["opened_at"],
        "services": story["services"],
        "alert_count": story["alert_count"],
        "link": incident_link(public_url, story["id"]),
        "origins": [
            {"service": o["service"], "rank": o["rank"], "reasons": o["reasons"]} for o in story.get("origins", [])
        ],
        "likely_causes": [
            {"id": c["id"], "kind": c["kind"], "title": c["title"], "source": c["source"], "ts": c["ts"],
             "labels": c["labels"], "lead_s": round(c["lead_s"], 1)}
            for c in story.get("likely_causes", [])[:5]
        ],
    }


def incident_link(public_url: str, incident_id: int) -> str:
    return f"{public_url.rstrip('/')}/api/v1/incidents/{incident_id}"


def _runbooks(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for f in facts:
        url = f.get("runbook_url")
        if url and url not in seen:
            seen[url] = {"url": url, "automatic": False, "for": [f["id"]]}
        elif url:
            seen[url]["for"].append(f["id"])
    return list(seen.values())


def _services(facts: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({f["where"]["service"] for f in facts if "service" in f["where"]})) or "aiops"


def _worst(severities: list[str]) -> str:
    return "critical" if "critical" in severities else "warning"


def group_payload(
    *,
    receiver: str,
    route: str,
    group: dict[str, str],
    reason: str,
    firing: list[dict[str, Any]],
    resolved: list[dict[str, Any]],
    stories: list[dict[str, Any]],
    public_url: str,
) -> dict[str, Any]:
    """What a routed group of alerts tells its receiver."""
    facts = [alert_facts(a) for a in firing]
    done = [alert_facts(a) for a in resolved]
    status = "firing" if facts else "resolved"
    subject = facts or done
    where = ", ".join(f"{k}={v}" for k, v in sorted(group.items())) or "all"
    names = sorted({f["what"] for f in subject})
    title = (f"{len(facts)} firing" if facts else f"{len(done)} resolved") + f" [{where}]: {', '.join(names[:3])}"
    if len(names) > 3:
        title += f" and {len(names) - 3} more"
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "kind": "alerts",
        "status": status,
        "reason": reason,
        "receiver": receiver,
        "route": route,
        "group": group,
        "severity": _worst([f["severity"] for f in subject]),
        "title": title,
        "source": where if group else _services(subject),
        "alerts": facts,
        "resolved": done,
        "incidents": [_incident_part(s, public_url) for s in stories],
        "runbooks": _runbooks(facts),
    }
    payload["link"] = payload["incidents"][0]["link"] if payload["incidents"] else None
    payload["text"] = "\n".join(render(payload))
    return payload


def incident_payload(
    *, receiver: str, story: dict[str, Any], reason: str, public_url: str, actor: str | None = None, step: int | None = None
) -> dict[str, Any]:
    """What an incident tells a receiver: paged by escalation, or told it was acknowledged or resolved."""
    status = {"acknowledged": "acknowledged", "resolved": "resolved", "remediating": "remediating"}.get(reason, "firing")
    facts = [alert_facts(a) for a in story.get("alerts", []) if a.get("firing_in_incident", True)]
    incident = _incident_part(story, public_url)
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "kind": "incident",
        "status": status,
        "reason": reason,
        "receiver": receiver,
        "severity": story["severity"],
        "title": f"incident #{story['id']}: {story['title']}",
        "source": ", ".join(story["services"]) or "aiops",
        "alerts": facts,
        "resolved": [],
        "incidents": [incident],
        "runbooks": _runbooks(facts),
        "link": incident["link"],
        **({"actor": actor} if actor else {}),
        **({"escalation_step": step} if step is not None else {}),
    }
    payload["text"] = "\n".join(render(payload))
    return payload


def execution_payload(
    *, receiver: str, execution: dict[str, Any], steps: list[dict[str, Any]], story: dict[str, Any] | None, public_url: str
) -> dict[str, Any]:
    """A runbook could not heal something: its whole story, for the person who must take over."""
    facts = [alert_facts(a) for a in (story or {}).get("alerts", []) if a.get("id") == execution.get("alert_id")]
    incidents = [_incident_part(story, public_url)] if story else []
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "kind": "execution",
        "status": "escalated",
        "reason": execution["state"],
        "receiver": receiver,
        "severity": "critical",
        "title": f"runbook {execution['runbook']} on {execution['target']}: {execution['state'].replace('_', ' ')}",
        "source": execution["target"],
        "execution": {
            "id": execution["id"], "runbook": execution["runbook"], "target": execution["target"],
            "state": execution["state"], "reason": execution["reason"], "dry_run": execution["dry_run"],
            "link": f"{public_url.rstrip('/')}/api/v1/executions/{execution['id']}",
            "steps": [{"phase": s["phase"], "name": s["name"], "action": s["action"], "state": s["state"],
                       "attempts": s["attempts"], "error": s["error"], "outputs": s["outputs"]} for s in steps],
        },
        "alerts": facts,
        "resolved": [],
        "incidents": incidents,
        "runbooks": [],
        "link": incidents[0]["link"] if incidents else f"{public_url.rstrip('/')}/api/v1/executions/{execution['id']}",
    }
    payload["text"] = "\n".join(render(payload))
    return payload


def render(payload: dict[str, Any]) -> list[str]:
    """Headline, then one line per fact: the plain-text explanation every channel shows."""
    status = payload["status"].upper()
    lines = [f"{status if status != 'FIRING' else payload['severity'].upper()}: {payload['title']}"]
    if payload.get("actor"):
        lines.append(f"{payload['status']} by {payload['actor']}")
    execution = payload.get("execution")
    if execution is not None:
        lines.append(f"why: {execution['reason']}")
        for s in execution["steps"]:
            error = f": {s['error']}" if s["error"] else ""
            lines.append(f"- {s['phase']} {s['name']} ({s['action']}): {s['state']}, {s['attempts']} attempt(s){error}")
        lines.append(f"execution: {execution['link']}")
    for f in payload["alerts"][:10]:
        where = ", ".join(f"{k}={v}" for k, v in sorted(f["where"].items()))
        if f["seen"] is not None:
            band = f" (normal {fmt_value(f['lower'])}..{fmt_value(f['upper'])})" if f["lower"] is not None else ""
            seen = f"seen {fmt_value(f['seen'])}, expected {fmt_value(f['expected'])}{band}"
        else:
            seen = f["summary"]
        lines.append(f"- {f['what']} on {where}: {seen}; since {_when(f['since'])}, {f['count']} {'anomaly' if f['count'] == 1 else 'anomalies'}")
        why = ", ".join(f"{d} {fmt_value(s)}" for d, s in list(f["detectors"].items())[:4])
        if f.get("drivers"):
            why += "; driven by " + ", ".join(f"{k} {v:.0%}" for k, v in list(f["drivers"].items())[:3])
        if why:
            lines.append(f"  why: {why}")
        logged = f.get("log")
        if logged:
            for template in logged["templates"][:3]:
                lines.append(f"  {'new ' if logged['new_template'] else ''}log template: {template}")
            for example in logged["examples"][:3]:
                lines.append(f"  e.g.: {example}")
    if len(payload["alerts"]) > 10:
        lines.append(f"- and {len(payload['alerts']) - 10} more alerts")
    for f in payload.get("resolved", [])[:10]:
        lines.append(f"- resolved: {f['what']} on {', '.join(f'{k}={v}' for k, v in sorted(f['where'].items()))}")
    for incident in payload["incidents"][:3]:
        lines.append(f"incident #{incident['id']} ({incident['state']}, {incident['alert_count']} alerts): {incident['link']}")
        for o in incident["origins"][:3]:
            lines.append(f"  likely origin #{o['rank']}: {o['service']} ({'; '.join(o['reasons'])})")
        for c in incident["likely_causes"][:3]:
            lines.append(f"  likely cause: {c['kind']} {c['title']} ({c['source']}), {fmt_duration(c['lead_s'])} before the alerts it may explain")
    for rb in payload["runbooks"]:
        lines.append(f"runbook{' (runs automatically)' if rb['automatic'] else ''}: {rb['url']}")
    return lines
