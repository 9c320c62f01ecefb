"""Read settings from a YAML file and `AIOPS_*` variables, with errors that say where.

YAML is composed into nodes (not just loaded) so that every value keeps the line it was written on;
a pydantic error's location (`server.port`) is then mapped back to that line. Environment variables
override the file: `AIOPS_SERVER__PORT=9000` sets `server.port` (`__` separates levels), and the
value is read as a YAML scalar, so `true`, `3` and `[a, b]` mean what they look like.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aiops.settings import Settings
from remediation.runbook import RunbookSet

__all__ = ["ConfigError", "ConfigIssue", "ENV_PREFIX", "load_runbook_file", "load_runbook_text", "load_settings"]

ENV_PREFIX = "AIOPS_"
_ENV_SKIP = {"AIOPS_CONFIG"}  # names the file itself; not a setting


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    source: str  # file path, or the environment variable's name
    line: int | None  # 1-based
    path: str  # dotted field path, e.g. server.port
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; `issues` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `path` (None: defaults only) overridden by `AIOPS_*` entries of `environ`."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        data, lines = _read_yaml(Path(path))
    env_sources = _apply_env(data, environ)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_issue(err, source, lines, env_sources) for err in exc.errors()]) from None
    if not settings.remediation.runbook_files:
        return settings
    base = Path(path).parent if path is not None else Path.cwd()
    extra = []
    for file in settings.remediation.runbook_files:  # each file's errors name that file's lines
        extra += [rb.model_dump(by_alias=True) for rb in load_runbook_file(file if file.is_absolute() else base / file).runbooks]
    remediation = dict(data.get("remediation") or {})
    remediation["runbooks"] = list(remediation.get("runbooks") or []) + extra
    try:
        return Settings.model_validate({**data, "remediation": remediation})
    except ValidationError as exc:  # across files: a name used twice, an unknown receiver
        raise ConfigError([_issue(err, source, lines, env_sources) for err in exc.errors()]) from None


def load_runbook_file(path: str | Path) -> RunbookSet:
    """Runbooks from a YAML file holding `runbooks: [...]`; errors name the file, line and field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read: {exc.strerror or exc}")]) from None
    return load_runbook_text(text, str(path))


def load_runbook_text(text: str, source: str = "<runbooks>") -> RunbookSet:
    data, lines = _parse_yaml(text, source)
    try:
        return RunbookSet.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_issue(err, source, lines, {}) for err in exc.errors()]) from None


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read: {exc.strerror or exc}")]) from None
    return _parse_yaml(text, str(path))


def _parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([ConfigIssue(source, line, "", f"invalid YAML: {exc.problem or exc}")]) from None
    if node is None:
        return {}, {}
    lines: dict[tuple[str, ...], int] = {}
    issues: list[ConfigIssue] = []
    value = _to_python(node, (), lines, issues, source)
    if issues:
        raise ConfigError(issues)
    if not isinstance(value, dict):
        raise ConfigError([ConfigIssue(source, node.start_mark.line + 1, "", "expected a mapping of sections")])
    return value, lines


def _to_python(node: yaml.Node, path: tuple[str, ...], lines: dict, issues: list[ConfigIssue], source: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                issues.append(ConfigIssue(source, key_node.start_mark.line + 1, ".".join(path), "keys must be plain names"))
                continue
            key = str(key_node.value)
            if key in out:
                issues.append(
                    ConfigIssue(source, key_node.start_mark.line + 1, ".".join(path + (key,)), "duplicate key")
                )
            out[key] = _to_python(value_node, path + (key,), lines, issues, source)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, path + (str(i),), lines, issues, source) for i, v in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node)


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Overlay `AIOPS_A__B=v` as data[a][b] = v; returns which variable set each path."""
    sources: dict[tuple[str, ...], str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in _ENV_SKIP:
            continue
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        if not all(parts):
            continue
        try:
            value = yaml.safe_load(environ[name])
        except yaml.YAMLError:
            value = environ[name]
        target = data
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {}
                target[part] = child
            target = child
        target[parts[-1]] = value
        sources[parts] = name
    return sources


def _issue(err: Mapping[str, Any], source: str, lines: dict, env_sources: dict) -> ConfigIssue:
    loc = tuple(str(p) for p in err["loc"])
    path = ".".join(loc)
    message = err["msg"]
    if err["type"] not in ("missing", "extra_forbidden") and not isinstance(err.get("input", {}), (dict, list)):
        shown = repr(err["input"])
        message = f"{message} (got {shown[:80]})"
    elif err["type"] == "extra_forbidden":
        message = "unknown field (check the spelling; see aiops.yaml for every setting)"
    for depth in range(len(loc), -1, -1):  # the innermost prefix that an env var set, or that has a line
        prefix = loc[:depth]
        if prefix in env_sources:
            return ConfigIssue(env_sources[prefix], None, path, message)
        if prefix in lines:
            return ConfigIssue(source, lines[prefix], path, message)
    return ConfigIssue(source, None, path, message)
