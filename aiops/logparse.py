"""`aiops logs parse`: raw log lines → one template per line, headers split by a Loghub format string.

A format string names the header fields of a line and where the message starts, e.g.
``<Date> <Time> <Pid> <Level> <Component>: <Content>`` (the Loghub/logparser convention). Each
``<Name>`` captures a field lazily; the text between fields is a regular expression fragment in which
a run of spaces matches any run of whitespace; ``<Content>`` is the message that is mined. A line the
format does not match is mined whole: a parser at the edge should not drop what it cannot split.

Kept apart from `detectors.logtemplates` (pure computation) and light to import: the command's
start-up is part of its measured speed.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import BinaryIO, TextIO

__all__ = ["format_regex", "message_of", "read_lines", "parse_lines"]

_FIELD = re.compile(r"<(\w+)>")
_SPACES = re.compile(r" +")


def format_regex(log_format: str) -> re.Pattern[str]:
    """Compile a format string into an anchored regex with one named group per field.

    Raises ValueError when the format has no ``<Content>`` field or is not a valid expression.
    """
    parts, pos = [], 0
    names = []
    for m in _FIELD.finditer(log_format):
        parts.append(_SPACES.sub(r"\\s+", log_format[pos:m.start()]))
        parts.append(f"(?P<{m.group(1)}>.*?)")
        names.append(m.group(1))
        pos = m.end()
    parts.append(_SPACES.sub(r"\\s+", log_format[pos:]))
    if "Content" not in names:
        raise ValueError(f"log format {log_format!r} has no <Content> field")
    try:
        return re.compile("^" + "".join(parts) + "$")
    except re.error as exc:
        raise ValueError(f"log format {log_format!r} is not a valid pattern: {exc}") from exc


def message_of(line: str, regex: re.Pattern[str] | None) -> str:
    """The message part of a raw line (the whole line when there is no format or it does not match)."""
    if regex is None:
        return line
    m = regex.match(line.strip())
    return m.group("Content") if m else line


def read_lines(stream: BinaryIO) -> list[str]:
    """All lines of a byte stream as text: UTF-8 (undecodable bytes replaced), LF or CRLF ends.

    Splits on ``\\n`` only (not on the other characters `str.splitlines` treats as line ends), so the
    line count is the one every other line-oriented tool sees.
    """
    text = stream.read().decode("utf-8", errors="replace")
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_lines(lines: Iterable[str], out: TextIO, log_format: str | None = None) -> int:
    """Mine `lines` and write each one's template as it stands after all of them were seen."""
    from detectors.logtemplates import TemplateMiner

    regex = format_regex(log_format) if log_format else None
    miner = TemplateMiner()
    ids = miner.add_many(lines if regex is None else (message_of(line, regex) for line in lines))
    rendered: dict[int, str] = {}
    written = []
    for tid in ids:
        text = rendered.get(tid)
        if text is None:
            text = rendered[tid] = miner.template(tid)
        written.append(text)
    if written:
        out.write("\n".join(written) + "\n")
    return len(written)
