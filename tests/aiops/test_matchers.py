"""Selectors in Prometheus syntax."""

from __future__ import annotations

import pytest

from aiops.matchers import SelectorError, parse_selector


@pytest.mark.parametrize(
    ("text", "name", "labels", "expected"),
    [
        ("", "cpu", {}, True),
        ("{}", "cpu", {"a": "b"}, True),
        ("cpu", "cpu", {}, True),
        ("cpu", "mem", {}, False),
        ('{service="api"}', "x", {"service": "api"}, True),
        ('{service="api"}', "x", {"service": "web"}, False),
        ('{service!="api"}', "x", {}, True),
        ('{__name__=~"http_.*", env!~"dev|test"}', "http_errors", {"env": "prod"}, True),
        ('{__name__=~"http_.*", env!~"dev|test"}', "http_errors", {"env": "dev"}, False),
        ('{__name__=~"http"}', "http_errors", {}, False),  # anchored, as in Prometheus
        ('http_requests_total{code=~"5..", service="api"}', "http_requests_total", {"code": "503", "service": "api"}, True),
        ("{path='/a\\'b'}", "x", {"path": "/a'b"}, True),
        ('{missing=""}', "x", {}, True),  # an absent label equals the empty string
    ],
)
def test_selector_matching(text, name, labels, expected):
    assert parse_selector(text).matches(name, labels) is expected


@pytest.mark.parametrize("text", ['{service="api"', "{service}", '{service=~"("}', "cpu mem", '{a=="b"}'])
def test_bad_selectors_say_what_was_expected(text):
    with pytest.raises(SelectorError, match="selector"):
        parse_selector(text)


def test_selector_renders_back_to_its_syntax():
    sel = parse_selector('cpu{host="a\\"b", env!~"dev"}')
    assert str(sel) == '{__name__="cpu", host="a\\"b", env!~"dev"}'
    assert parse_selector(str(sel)) == sel


def test_matching_a_label_map_that_carries_the_name_is_matching_name_and_labels_apart():
    from aiops.matchers import parse_selector

    for text in ('{__name__="cpu", host=~"a.*"}', '{host!="b"}', "{}", '{__name__=""}'):
        selector = parse_selector(text)
        for name, labels in (("cpu", {"host": "a1"}), ("mem", {"host": "b"}), ("", {})):
            full = {"__name__": name, **labels} if name else dict(labels)
            assert selector.matches_labels(full) == selector.matches(name, labels), (text, name, labels)
