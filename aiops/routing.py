"""Routing: which receiver hears about an alert, and when, in the spirit of Alertmanager.

`RoutingTree` walks the configured routes: an alert descends into the first child whose selector
matches (and into later matching siblings too when a child says `continue`); the deepest matches
notify their receivers, with timings inherited down the tree. `Dispatcher` groups the alerts of
each matched route by its `group_by` labels and decides when a group notifies:

- a new group waits `group_wait_s` (so alerts firing together arrive together),
- a group whose alerts changed (one added, one resolved) notifies again after `group_interval_s`,
- an unchanged group that still fires is repeated every `repeat_interval_s`,
- a group whose alerts have all resolved sends that news once and is dropped.

Muted alerts (silences, maintenance, inhibition) are never notified; they stay on record in the
store. Time comes from the caller (`now`), so tests drive it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiops.alerts import AlertEvent
from aiops.matchers import Selector, parse_selector
from aiops.settings import Route

__all__ = ["Dispatcher", "Notification", "ResolvedRoute", "RoutingTree"]

_DEFAULTS = {"group_by": ["cluster"], "group_wait_s": 30.0, "group_interval_s": 300.0, "repeat_interval_s": 4 * 3600.0}


@dataclass(frozen=True)
class ResolvedRoute:
    path: str  # e.g. "root/1/0": stable identity of the node
    receiver: str
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float


@dataclass(frozen=True)
class _Node:
    route: ResolvedRoute
    selector: Selector
    continue_: bool
    children: tuple[_Node, ...]


class RoutingTree:
    def __init__(self, root: Route) -> None:
        if root.receiver is None:
            raise ValueError("the root route needs a receiver: it catches every alert no child route takes")
        self._root = self._build(root, "root", _DEFAULTS | {"receiver": root.receiver})

    def _build(self, route: Route, path: str, inherited: dict[str, Any]) -> _Node:
        settings = dict(inherited)
        for name in ("receiver", "group_by", "group_wait_s", "group_interval_s", "repeat_interval_s"):
            value = getattr(route, name)
            if value is not None:
                settings[name] = value
        resolved = ResolvedRoute(
            path, settings["receiver"], tuple(settings["group_by"]), settings["group_wait_s"],
            settings["group_interval_s"], settings["repeat_interval_s"],
        )
        children = tuple(self._build(child, f"{path}/{i}", settings) for i, child in enumerate(route.routes))
        return _Node(resolved, parse_selector(route.selector), route.continue_, children)

    def match(self, labels: dict[str, str]) -> list[ResolvedRoute]:
        def walk(node: _Node) -> list[ResolvedRoute]:
            found: list[ResolvedRoute] = []
            for child in node.children:
                if child.selector.matches_labels(labels):
                    found += walk(child)
                    if not child.continue_:
                        break
            return found or [node.route]

        return walk(self._root)


@dataclass
class Notification:
    receiver: str
    route: str
    group: dict[str, str]
    firing: list[AlertEvent]
    resolved: list[AlertEvent]
    reason: str  # first | changed | repeat | resolved


@dataclass
class _Group:
    route: ResolvedRoute
    labels: dict[str, str]
    created: float
    firing: dict[int, AlertEvent] = field(default_factory=dict)
    resolved: dict[int, AlertEvent] = field(default_factory=dict)
    last_sent: float | None = None
    changed: bool = True


class Dispatcher:
    def __init__(self, tree: RoutingTree) -> None:
        self.tree = tree
        self._groups: dict[tuple[str, tuple[tuple[str, str], ...]], _Group] = {}

    def observe(self, event: AlertEvent, now: float) -> None:
        """Fold an alert event into the groups of the routes it matches."""
        labels = event.labels or {}
        for route in self.tree.match(labels):
            group_labels = {k: labels[k] for k in route.group_by if k in labels}
            key = (route.path, tuple(sorted(group_labels.items())))
            group = self._groups.get(key)
            muted = event.silenced_by is not None
            if event.event == "resolved" or muted:
                if group is not None and event.alert_id in group.firing:
                    del group.firing[event.alert_id]
                    if not muted:  # a muted alert just drops out; a resolved one is news
                        group.resolved[event.alert_id] = event
                    group.changed = True
                continue
            if group is None:
                group = self._groups[key] = _Group(route, group_labels, created=now)
            if event.alert_id not in group.firing:
                group.changed = True
            group.firing[event.alert_id] = event

    def due(self, now: float) -> list[Notification]:
        """Notifications whose time has come; groups with nothing left firing are dropped once told."""
        out = []
        for key, group in list(self._groups.items()):
            route = group.route
            if group.last_sent is None:
                ready, reason = now >= group.created + route.group_wait_s, "first"
            elif group.changed:
                ready, reason = now >= group.last_sent + route.group_interval_s, "changed"
            else:
                ready, reason = now >= group.last_sent + route.repeat_interval_s, "repeat"
            if not ready:
                continue
            if not group.firing:
                if group.resolved and group.last_sent is not None:
                    out.append(Notification(route.receiver, route.path, group.labels, [], list(group.resolved.values()), "resolved"))
                del self._groups[key]
                continue
            out.append(Notification(route.receiver, route.path, group.labels, list(group.firing.values()),
                                    list(group.resolved.values()), reason))
            group.resolved.clear()
            group.last_sent = now
            group.changed = False
        return out
