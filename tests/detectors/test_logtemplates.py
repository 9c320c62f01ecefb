"""Log template mining: masks, merging, stable ids, state round trip, memory cap, `aiops logs parse`."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from aiops.logparse import format_regex, message_of, parse_lines, read_lines
from detectors.logtemplates import TemplateMiner, mask_words


@pytest.mark.parametrize(
    ("message", "masked"),
    [
        ("took 1234 ms", "took <*> ms"),
        ("size=1024, used 12.5%", "size=<*>, used <*>%"),
        ("addr 0x7fff5fbff8a8 id deadbeefcafe", "addr <*> id <*>"),
        ("from /10.251.91.84:50010 to 192.168.0.1", "from /<*>:<*> to <*>"),
        ("job 123e4567-e89b-12d3-a456-426614174000 done", "job <*> done"),
        ("open /var/log/messages failed", "open <*> failed"),
        ("GET http://host.example/a/b?c=d ok", "GET <*> ok"),
        ("user 'alice' said \"hello world\"", "user <*> said <*>"),
        ("at Sun Jul 10 03:55:21 2005", "at <*> <*>:<*>:<*> <*>"),
        ("blocks blk_1 blk_-2 blk_3 deleted", "blocks <*> deleted"),  # a run of masked words is one <*>
        ("illegal instruction......0", "illegal instruction......<*>"),  # ".." ends a number run
        ("start com.example.app/.MainActivity now", "start <*> now"),  # relative path / component
        ("Received block of size", "Received block of size"),
    ],
)
def test_masks_variable_parts_and_keeps_the_rest(message, masked):
    assert " ".join(mask_words(message)) == masked


def test_variants_merge_into_one_template_with_wildcards_keeping_the_oldest_id():
    m = TemplateMiner()
    first, t0 = m.add("Connection from alpha.example closed by peer")
    assert t0 == "Connection from alpha.example closed by peer"
    ids = [m.add(f"Connection from {h} closed by peer")[0] for h in ("beta.example", "gamma.example", "delta.example")]
    # four distinct words at one position: it is a parameter, all variants are one template
    assert m.template(first) == "Connection from <*> closed by peer"
    assert {m.resolve(i) for i in ids} == {first}
    assert len(m) == 1 and m.count(first) == 4


def test_a_position_with_few_word_values_keeps_them_apart():
    m = TemplateMiner()
    start = m.add("cupsd startup succeeded")[0]
    stop = m.add("cupsd shutdown succeeded")[0]
    again = m.add("cupsd startup succeeded")[0]
    assert start != stop and again == start
    assert m.templates() == {start: "cupsd startup succeeded", stop: "cupsd shutdown succeeded"}


def test_masked_words_count_by_shape():
    m = TemplateMiner()
    a = m.add("session opened for user alice by (uid=0)")[0]
    b = m.add("session opened for user alice by LOGIN(uid=0)")[0]
    assert a != b  # two shapes: two templates
    m2 = TemplateMiner()
    c = m2.add("connection from 10.0.0.1 (host.example) at noon")[0]
    d = m2.add("connection from 10.0.0.2 () at noon")[0]
    e = m2.add("connection from 10.0.0.3 (10.0.0.3) at noon")[0]  # (<*>) generalises () : a parameter
    assert m2.resolve(c) == m2.resolve(d) == m2.resolve(e) == c
    assert m2.template(c) == "connection from <*> <*> at noon"


def test_different_messages_do_not_merge():
    m = TemplateMiner()
    a = m.add("Session opened for user root")[0]
    b = m.add("Disk quota exceeded on volume home")[0]
    c = m.add("Service restarted after crash")[0]
    assert len({a, b, c}) == 3


def test_a_bare_number_template_does_not_swallow_short_messages():
    m = TemplateMiner()
    number = m.add("12345")[0]
    other = m.add("setTotalSteps=17")[0]
    assert other != number and m.template(other) == "setTotalSteps=<*>"


def test_ids_are_stable_and_templates_only_widen():
    m = TemplateMiner()
    rng = [f"worker {i} finished task {i * 7} in {i % 5}ms" for i in range(50)]
    ids = m.add_many(rng)
    assert len({m.resolve(i) for i in ids}) == 1
    assert m.template(ids[0]) == "worker <*> finished task <*> in <*>"
    assert m.add("worker 99 finished task 3 in 2ms")[0] == m.resolve(ids[0])


def _corpus() -> list[str]:
    verbs = ["started", "stopped", "failed", "restarted", "paused"]
    out = []
    for i in range(400):
        out.append(f"service svc-{i % 13} {verbs[i % 5]} after {i * 3}ms on node{i % 7}")
        out.append(f"user u{i % 9} logged in from 10.0.{i % 4}.{i % 250}")
        out.append(f"cache {'hit' if i % 3 else 'miss'} for key k{i}")
        if i % 50 == 0:
            out.append(f"rare event number {i} at /opt/app/{i}/core")
    return out


def test_state_round_trip_gives_identical_subsequent_assignments():
    corpus = _corpus()
    a = TemplateMiner(max_templates=50)
    a.add_many(corpus[:600])
    state = json.loads(json.dumps(a.state_dict()))  # plain JSON, no pickle
    b = TemplateMiner()
    b.load_state_dict(state)
    rest = corpus[600:] + ["something never seen before", "cache miss for key k1"]
    assert [a.add(x) for x in rest] == [b.add(x) for x in rest]
    assert a.templates() == b.templates() and a.state_dict() == b.state_dict()


def test_state_round_trip_under_a_tight_cap_with_evictions():
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    corpus = [f"{words[i % 8]} {words[(i * 3) % 8]} step {i} of {words[(i * 5) % 7]} done" for i in range(300)]
    a = TemplateMiner(max_templates=4)
    a.add_many(corpus[:150])
    b = TemplateMiner()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert [a.add(x) for x in corpus[150:]] == [b.add(x) for x in corpus[150:]]
    assert len(a._words) <= 4 and a.state_dict() == b.state_dict()


def test_many_shapes_past_the_cap_stay_fast_and_bounded():
    m = TemplateMiner(max_templates=100, max_cache=1000)
    def name(i: int) -> str:  # a letters-only word per i: every message starts a branch of its own
        return "".join(chr(97 + (i // 26**k) % 26) for k in range(4))

    for i in range(20_000):
        m.add(f"{name(i)} happened after {i} ms")
        m.add("steady heartbeat ok")  # stays recent, never evicted
    assert len(m._words) <= 100 and len(m._cache) <= 1000 and len(m._exact) <= 1000
    assert len(m._alias) <= sum(len(v) for v in m._members.values())
    assert m.add("steady heartbeat ok")[0] == 1 and len(m) <= 100


def test_memory_cap_evicts_the_least_recently_seen_and_never_reuses_ids():
    m = TemplateMiner(max_templates=3)
    kept = m.add("alpha event happened")[0]
    ids = {}
    for word in ("beta", "gamma", "delta", "epsilon"):
        ids[word] = m.add(f"{word} thing occurred here now")[0]  # a new first word: a new group each time
        m.add("alpha event happened")  # keep alpha recent
        assert len(m._words) <= 3 and len(m) <= 3
    assert m.template(kept) == "alpha event happened"
    for evicted in ("beta", "gamma"):
        with pytest.raises(KeyError):
            m.template(ids[evicted])
    again = m.add("beta thing occurred here now")[0]  # its message is still cached: the entry is stale
    assert again > max(ids.values())  # an evicted shape comes back under a new id
    assert m.template(again) == "beta thing occurred here now"


def test_format_regex_splits_headers_like_loghub():
    rx = format_regex("<Date> <Time>  <Pid> <Level> <Component>: <Content>")
    line = "03-17 16:13:38.811  1702  V  PowerManager: acquire lock=233570404, flags=0x1"
    assert message_of(line, rx) == "acquire lock=233570404, flags=0x1"
    assert message_of("no header here", rx) == "no header here"  # unmatched: the whole line
    assert message_of(r"[Sun Dec 04 04:47:44 2005] [error] mod_jk child in error state 6",
                      format_regex(r"\[<Time>\] \[<Level>\] <Content>")) == "mod_jk child in error state 6"
    with pytest.raises(ValueError):
        format_regex("<Date> <Level>")


def test_read_lines_handles_crlf_and_a_missing_final_newline():
    assert read_lines(io.BytesIO(b"a 1\r\nb 2\r\n\r\nc\xff 3")) == ["a 1", "b 2", "", "c\ufffd 3"]
    assert read_lines(io.BytesIO(b"")) == []


def test_parse_writes_one_template_per_line_in_order():
    out = io.StringIO()
    lines = ["took 5 ms", "", "took 7 ms", "disk full"]
    assert parse_lines(lines, out) == 4
    assert out.getvalue().split("\n")[:-1] == ["took <*> ms", "", "took <*> ms", "disk full"]


@pytest.mark.parametrize("fmt", [None, "<Time> <Level> <Content>"])
def test_cli_prints_exactly_one_line_per_input_line(fmt):
    raw = b"10:00:01 INFO took 5 ms\r\n10:00:02 WARN disk full on /dev/sda1\r\n\r\n10:00:03 INFO took 17 ms"
    argv = [sys.executable, "-m", "aiops", "logs", "parse"] + (["--format", fmt] if fmt else [])
    out = subprocess.run(argv, input=raw, capture_output=True, check=True).stdout.decode()
    got = out.split("\n")
    assert got[-1] == "" and len(got) - 1 == 4 and "\r" not in out
    if fmt:
        assert got[:-1] == ["took <*> ms", "disk full on <*>", "", "took <*> ms"]
    else:
        assert got[0] == got[3] and "took <*> ms" in got[0]
