"""Label matchers and series selectors in Prometheus' syntax.

`http_requests_total{service="api", code=~"5.."}`, `{__name__=~"http_.*", env!="dev"}`: the metric
name is the label `__name__`; operators `=`, `!=`, `=~` and `!~`; regular expressions are anchored
(they must match the whole value), as in Prometheus. Used to pick which detectors watch a series,
and later to route and silence alerts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["LabelMatcher", "Selector", "SelectorError", "parse_selector"]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:.]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_.]*"
_TOKEN = re.compile(
    rf"""\s*(?:
        (?P<label>{_LABEL})\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    )\s*(?P<sep>,|$|(?=\}}))""",
    re.X,
)


class SelectorError(ValueError):
    """A selector that does not parse; the message says where and what was expected."""


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    label: str
    op: str  # = != =~ !~
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = _compiled(self.value).fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'


@dataclass(frozen=True, slots=True)
class Selector:
    matchers: tuple[LabelMatcher, ...]

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        full = {**labels, "__name__": name}
        return all(m.matches(full) for m in self.matchers)

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        """Match a label map that carries the series name as `__name__` (as alerts' labels do)."""
        return all(m.matches(labels) for m in self.matchers)

    def __str__(self) -> str:
        return "{" + ", ".join(str(m) for m in self.matchers) + "}"


_cache: dict[str, re.Pattern] = {}


def _compiled(pattern: str) -> re.Pattern:
    found = _cache.get(pattern)
    if found is None:
        found = _cache[pattern] = re.compile(pattern)
    return found


def parse_selector(text: str) -> Selector:
    """Parse `name{label op "value", ...}`, `name`, or `{...}`; empty or `{}` matches every series."""
    source = text.strip()
    matchers: list[LabelMatcher] = []
    rest = source
    name_match = re.match(_NAME, rest)
    if name_match and not rest.startswith("{"):
        matchers.append(LabelMatcher("__name__", "=", name_match.group(0)))
        rest = rest[name_match.end() :].lstrip()
    if rest:
        if not (rest.startswith("{") and rest.endswith("}")):
            raise SelectorError(f"selector {text!r}: expected a metric name and/or {{label=\"value\", ...}}")
        body = rest[1:-1]
        pos = 0
        while body[pos:].strip():
            token = _TOKEN.match(body, pos)
            if token is None:
                raise SelectorError(
                    f"selector {text!r}: expected label=\"value\" (operators = != =~ !~) at {body[pos:].strip()!r}"
                )
            raw = token.group("value")[1:-1]
            value = re.sub(r"\\(.)", r"\1", raw)
            op = token.group("op")
            if op in ("=~", "!~"):
                try:
                    _compiled(value)
                except re.error as exc:
                    raise SelectorError(f"selector {text!r}: invalid regular expression {value!r}: {exc}") from None
            matchers.append(LabelMatcher(token.group("label"), op, value))
            pos = token.end()
    return Selector(tuple(matchers))
