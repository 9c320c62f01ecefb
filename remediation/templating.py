"""Runbook templates, rendered in Jinja2's sandbox: they can read the alert, never run code or read files.

The environment has an empty loader (so `include`, `import` and `extends` find nothing), no globals
(no `range`, `cycler`, `lipsum`…), strict undefined variables (a typo is an error, not an empty
string), and the immutable sandbox refuses unsafe attributes (`__class__`, `__globals__`, `mro`…) and
changes to the alert it reads (`labels.update(…)`). Strings are
rendered wherever they sit in nested lists and dicts, so a step's JSON body can carry templates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jinja2 import DictLoader, StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["TemplateRenderError", "render_tree", "render_text"]


class TemplateRenderError(ValueError):
    """A template that does not parse, names something undefined, or tried something the sandbox forbids."""


_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined, loader=DictLoader({}))  # finds nothing
_ENV.globals.clear()
_ENV.filters["tojson"] = lambda value: json.dumps(value)


def render_text(template: str, context: Mapping[str, Any], where: str) -> str:
    """Render one template; errors name `where` (e.g. `runbook disk-cleanup, steps[0].with.url`)."""
    if "{" not in template:
        return template
    try:
        return _ENV.from_string(template).render(**context)
    except TemplateError as exc:  # includes the sandbox's SecurityError and undefined names
        raise TemplateRenderError(f"{where}: {type(exc).__name__}: {exc}") from None


def render_tree(value: Any, context: Mapping[str, Any], where: str) -> Any:
    """Render every string inside `value` (dicts and lists are walked); other values pass through."""
    if isinstance(value, str):
        return render_text(value, context, where)
    if isinstance(value, Mapping):
        return {k: render_tree(v, context, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [render_tree(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
    return value
