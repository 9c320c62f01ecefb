"""Streaming log template mining: each message → a stable template id and a `<*>` template.

The method is Drain's (He et al., ICWS 2017: a tree keyed by word count and first word, leaves
holding templates, a message joining the most similar template above a threshold) with changes that
let one setting serve logs it has never seen (docs/logs-traces.md has the measurements):

1. **Masking inside words.** A message is split into whitespace words; inside a word every run of
   word characters holding a digit (numbers, hex, IPs, ports, UUIDs, block ids, versions, sizes,
   durations such as ``12ms``) becomes ``<*>``, and so do URLs, absolute and relative paths, quoted
   strings, long hex runs and written dates (``Sun Jul 10``). Punctuation stays, so ``size=1024,``
   reads ``size=<*>,`` and still anchors the template. Drain's usual masks see whole-word numbers only.
2. **A run of masked words is one ``<*>``**, so a parameter list of any length (block ids, numbers)
   gives one template where Drain would key it on the word count and split it.
3. **A first word only picks the tree branch when it is a constant**: masked first words share one
   branch, so a leading number or id does not scatter a template.
4. **A message with literal words must share one with a template to join it**, so an all-``<*>``
   template (a bare number) does not swallow every short message of its branch.
5. **Few-valued positions stay literal.** Where a template's position has taken at most
   `max_values` distinct words (``startup``/``shutdown``, ``user=root``/``user=guest``,
   ``(uid=<*>)``/``LOGIN(uid=<*>)``), each value gives its own template (a "variant" of the Drain
   group). Once the position has seen more, or a bare ``<*>``, or a masked word that generalises
   another of its words (``(<*>)`` and ``()``: the difference is inside a parameter), it is a
   parameter and its variants merge into one ``<*>`` template. This is the column-cardinality idea
   of Brain (Yu et al., TSC 2023) in streaming form: Drain's similarity alone merges messages that
   differ in one enumerated word.

Ids are stable: a template id, once given, keeps meaning that template. When variants merge, the
oldest id stays and the others become aliases of it (`resolve`, and `template` follows them).

The table is plain JSON (`state_dict` / `load_state_dict`); a restored miner assigns every later
message exactly as the saved one would have. Memory is bounded: at most `max_templates` groups
(Drain clusters), each position remembering at most ``max_values + 1`` words; past the cap the group
used least recently is evicted with its templates and aliases (ids are never reused: a message of
that shape later gets a new id). Three caches (message → id, word → masked word, masked words →
group) hold at most `max_cache` entries each and are cleared when full; an entry that leads to an
evicted group is recognised on use and recomputed. Caches change speed, never results.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

__all__ = ["WILDCARD", "TemplateMiner", "mask_words"]

WILDCARD = "<*>"
_STATE_VERSION = 1
_MANY = None  # a position's value set once it is a parameter

# Inside one word: URLs, absolute paths, runs of word characters holding a digit, long hex runs.
_IN_WORD = re.compile(
    r"(?<![\w+.-])[a-zA-Z][a-zA-Z0-9+.-]*://\S+"    # URL
    r"|(?<![\w.])/(?:[\w.~@%+-]+/)+[\w.~@%+-]*"     # absolute path, >= 2 parts
    # a run of word characters, "+", "-" and single dots holding a digit ("..." ends a run)
    r"|(?<![\w+-])(?<!(?<!\.)\.)(?:[\w+-]|(?<!\.)\.(?!\.))*\d(?:[\w+-]|(?<!\.)\.(?!\.))*"
    r"|\b[a-fA-F]{8,}\b"                            # long hex run without digits
    r"|(?<![\w./-])[\w$-]+(?:\.[\w$-]+)*/\.?[\w$-]+(?:[./][\w$-]+)*"   # relative path a/b.c
)
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")          # may span words; tried only if a quote is present
_RUN = re.compile(r"(?:<\*>)+")
_MONTHS = {m + e for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
           for e in ("", ".")} | {"January", "February", "March", "April", "June", "July", "August",
                                  "September", "October", "November", "December"}
_WEEKDAYS = {d + e for d in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Monday", "Tuesday",
                             "Wednesday", "Thursday", "Friday", "Saturday", "Sunday") for e in ("", ",")}


def _mask_word(word: str) -> str:
    word = _IN_WORD.sub(WILDCARD, word)
    return _RUN.sub(WILDCARD, word) if "<*><*>" in word else word


def mask_words(message: str, cache: dict[str, str] | None = None) -> list[str]:
    """Whitespace words with their variable parts masked and runs of masked words collapsed.

    A written date (``[Sun] Jul 10``: a month name before a number, with the weekday before it) is
    masked whole. `cache` (word -> masked word) spares the regex for words seen before.
    """
    if '"' in message or "'" in message:
        message = _QUOTED.sub(WILDCARD, message)
    out: list[str] = []
    for word in message.split():
        masked = cache.get(word) if cache is not None else None
        if masked is None:
            masked = _mask_word(word)
            if cache is not None:
                cache[word] = masked
        if masked == WILDCARD and out:
            last = out[-1]
            if last in _MONTHS:  # "Jul 10": a date
                out.pop()
                if out and out[-1] in _WEEKDAYS:
                    out.pop()
                if out and out[-1] == WILDCARD:
                    continue
            elif last == WILDCARD:
                continue  # one parameter list, whatever its length
        out.append(masked)
    return out


def _shape(word: str) -> re.Pattern[str]:
    return re.compile(".*".join(map(re.escape, word.split(WILDCARD))), re.DOTALL)


def _covers(values: set[str]) -> bool:
    """Whether a masked value among `values` is a generalisation of another (``(<*>)`` of ``()``)."""
    masked = [v for v in values if WILDCARD in v]
    return any(_shape(m).fullmatch(v) for m in masked for v in values if v != m)


class TemplateMiner:
    """Online template miner: `add(message) -> (template_id, template)`.

    Args:
        similarity: share of a group's positions a message must match (a ``<*>`` matches anything)
            to join it; Drain's ``st``. On loghub-dev 0.6 and 0.7 give the same average, 0.5 half a
            point less.
        max_values: a position with at most this many distinct words (masked ones by shape) keeps
            them as separate templates (module docstring, point 5).
        max_templates: cap on live groups; past it the group used least recently is evicted.
        max_cache: cap on each lookup cache (cleared when full).
    """

    def __init__(self, similarity: float = 0.6, max_values: int = 3, max_templates: int = 10_000,
                 max_cache: int = 100_000) -> None:
        if not 0.0 < similarity <= 1.0:
            raise ValueError(f"similarity must be in (0, 1], got {similarity}")
        if max_values < 0 or max_templates < 1 or max_cache < 0:
            raise ValueError("max_values and max_cache must be >= 0, max_templates >= 1")
        self.similarity = similarity
        self.max_values = max_values
        self.max_templates = max_templates
        self.max_cache = max_cache
        # groups (Drain clusters): id -> words, and per <*> position its distinct values or _MANY
        self._words: dict[int, list[str]] = {}
        self._values: dict[int, dict[int, set[str] | None]] = {}
        self._recent: OrderedDict[int, None] = OrderedDict()  # groups, least recently used first
        self._branches: dict[tuple[int, str], list[int]] = {}
        self._next_group = 0
        # templates (what callers see): id -> (group, literal values at its few-valued positions)
        self._tmpl: dict[int, tuple[int, tuple[tuple[int, str], ...]]] = {}
        self._count: dict[int, int] = {}
        self._variant: dict[tuple[int, tuple[tuple[int, str], ...]], int] = {}
        self._alias: dict[int, int] = {}
        self._members: dict[int, list[int]] = {}  # group -> every id it gave (live or aliased)
        self._next_id = 0
        self._exact: dict[tuple[str, ...], int] = {}  # masked words -> group
        self._cache: dict[str, int] = {}  # message -> template id
        self._words_cache: dict[str, str] = {}  # word -> masked word

    # ------------------------------------------------------------------ reading

    def resolve(self, template_id: int) -> int:
        """The live id a (possibly merged-away) id now stands for."""
        alias = self._alias
        while template_id in alias:
            template_id = alias[template_id]
        return template_id

    def template(self, template_id: int) -> str:
        """The current template of an id (following merges); KeyError if unknown or evicted."""
        group, spec = self._tmpl[self.resolve(template_id)]
        words = list(self._words[group])
        for pos, value in spec:
            words[pos] = value
        return " ".join(words)

    def templates(self) -> dict[int, str]:
        """Live template id -> template, in id order."""
        return {i: self.template(i) for i in sorted(self._tmpl)}

    def count(self, template_id: int) -> int:
        """How many messages a template has absorbed (including those of ids merged into it)."""
        return self._count[self.resolve(template_id)]

    def __len__(self) -> int:
        return len(self._tmpl)

    # ------------------------------------------------------------------ mining

    def add(self, message: str) -> tuple[int, str]:
        """Assign one message; returns its template id and the template as it stands now."""
        tid = self._add(message)
        return tid, self.template(tid)

    def add_many(self, messages: Iterable[str]) -> list[int]:
        """Assign many messages in order; returns the ids given at the time (see `resolve`)."""
        add = self._add
        return [add(m) for m in messages]

    def _add(self, message: str) -> int:
        tid = self._cache.get(message)
        if tid is not None:
            tid = self.resolve(tid)
            if tid in self._tmpl:
                self._recent.move_to_end(self._tmpl[tid][0])
            else:  # its group was evicted
                tid = None
        if tid is None:
            words = self._words_cache
            if len(words) >= self.max_cache:
                words.clear()
            tid = self._assign(mask_words(message, words))
            if self.max_cache:
                if len(self._cache) >= self.max_cache:
                    self._cache.clear()
                self._cache[message] = tid
        self._count[tid] += 1
        return tid

    def _assign(self, words: list[str]) -> int:
        key = tuple(words)
        group = self._exact.get(key)
        if group is None or group not in self._words:  # unseen, or its group was evicted
            group = self._match(words)
            if group is None:
                group = self._new_group(words)
            else:
                self._absorb(group, words)
            if self.max_cache:
                if len(self._exact) >= self.max_cache:
                    self._exact.clear()
                self._exact[key] = group
        self._recent.move_to_end(group)
        return self._variant_of(group, words)

    @staticmethod
    def _branch_key(words: list[str]) -> tuple[int, str]:
        first = words[0] if words else ""
        return len(words), (WILDCARD if WILDCARD in first else first)

    def _match(self, words: list[str]) -> int | None:
        """The most similar group of the branch, if similar enough.

        A template's `<*>` agrees with any word, but a message with literal words must also share
        at least one of them: otherwise an all-`<*>` template (a bare number) would swallow every
        short message of its branch.
        """
        best, best_same = None, -1
        literal = any(w != WILDCARD for w in words)
        for group in self._branches.get(self._branch_key(words), ()):
            same = shared = 0
            for a, b in zip(self._words[group], words):
                if a == b:
                    same += 1
                    if a != WILDCARD:
                        shared += 1
                elif a == WILDCARD:
                    same += 1
            if same > best_same and (shared or not literal):
                best, best_same = group, same
        return best if best_same >= self.similarity * max(len(words), 1) else None

    def _absorb(self, group: int, words: list[str]) -> None:
        """Widen a group's template to cover `words`; new `<*>` positions start with the old word."""
        tw, values = self._words[group], self._values[group]
        changed = False
        for pos, (a, b) in enumerate(zip(tw, words)):
            if a != b and a != WILDCARD:
                tw[pos] = WILDCARD
                values[pos] = {a}
                changed = True
        if changed:  # existing variants now carry the old word at the new positions
            self._rekey(group)

    def _variant_of(self, group: int, words: list[str]) -> int:
        values, cap = self._values[group], self.max_values
        collapse = False
        spec = []
        for pos, seen in values.items():
            if seen is _MANY:
                continue
            word = words[pos]
            if word not in seen:
                seen.add(word)
                if len(seen) > cap or word == WILDCARD or _covers(seen):
                    values[pos] = _MANY
                    collapse = True
                    continue
            spec.append((pos, word))
        if collapse:
            self._rekey(group)
        key = (group, tuple(sorted(spec)))
        tid = self._variant.get(key)
        if tid is None:
            tid = self._next_id
            self._next_id += 1
            self._tmpl[tid] = key
            self._count[tid] = 0
            self._variant[key] = tid
            self._members[group].append(tid)
        return tid

    def _rekey(self, group: int) -> None:
        """Recompute the variant keys of a group after its positions changed; merge collisions.

        A variant's value at a position that just became `<*>` is the group's old word there; at a
        position that became a parameter it is dropped. Colliding variants merge into the oldest id.
        """
        words, values = self._words[group], self._values[group]
        olds = [t for t in self._members[group] if t in self._tmpl]  # in id order: oldest first
        for tid in olds:
            del self._variant[self._tmpl[tid]]
        for tid in olds:
            spec = dict(self._tmpl[tid][1])
            new = []
            for pos, seen in values.items():
                if seen is not _MANY:
                    value = spec.get(pos)
                    if value is None:  # newly wild: every earlier message had the old word
                        value = next(iter(seen)) if len(seen) == 1 else None
                    if value is not None:
                        new.append((pos, value))
            key = (group, tuple(sorted(new)))
            keep = self._variant.get(key)
            if keep is None:
                self._variant[key] = tid
                self._tmpl[tid] = key
            else:  # merge into the older id
                self._alias[tid] = keep
                self._count[keep] += self._count.pop(tid)
                del self._tmpl[tid]

    def _new_group(self, words: list[str]) -> int:
        if len(self._words) >= self.max_templates:
            self._evict()
        group = self._next_group
        self._next_group += 1
        self._insert_group(group, list(words), {}, [])
        return group

    def _insert_group(self, group: int, words: list[str], values: dict, members: list[int]) -> None:
        self._words[group] = words
        self._values[group] = values
        self._members[group] = members
        self._recent[group] = None
        self._branches.setdefault(self._branch_key(words), []).append(group)

    def _evict(self) -> None:
        """Drop the group used least recently with its templates and aliases.

        Cache entries that lead to it are left in place and recognised as stale on use, so an
        eviction costs the size of the group, not of the caches.
        """
        group, _ = self._recent.popitem(last=False)
        words = self._words.pop(group)
        del self._values[group]
        self._branches[self._branch_key(words)].remove(group)
        for tid in self._members.pop(group):
            key = self._tmpl.pop(tid, None)
            if key is not None:
                del self._variant[key], self._count[tid]
            self._alias.pop(tid, None)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """The whole table as JSON-able data (the message and word caches are left out: rebuilt)."""
        return {
            "version": _STATE_VERSION,
            "config": {"similarity": self.similarity, "max_values": self.max_values,
                       "max_templates": self.max_templates, "max_cache": self.max_cache},
            "next_group": self._next_group,
            "next_id": self._next_id,
            "groups": [  # least recently used first
                [g, self._words[g], [[pos, None if v is _MANY else sorted(v)] for pos, v in self._values[g].items()],
                 self._members[g]]
                for g in self._recent],
            "templates": [[t, g, [list(p) for p in spec], self._count[t]] for t, (g, spec) in self._tmpl.items()],
            "alias": [[a, b] for a, b in self._alias.items()],
            "exact": [[list(k), g] for k, g in self._exact.items()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`; later `add` calls assign exactly as the saved miner would have."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported template state version {state.get('version')!r}")
        self.__init__(**state["config"])
        self._next_group, self._next_id = state["next_group"], state["next_id"]
        for g, words, values, members in state["groups"]:
            self._insert_group(g, list(words), {pos: _MANY if v is None else set(v) for pos, v in values},
                               list(members))
        for t, g, spec, count in state["templates"]:
            key = (g, tuple((pos, value) for pos, value in spec))
            self._tmpl[t], self._count[t], self._variant[key] = key, count, t
        self._alias = {a: b for a, b in state["alias"]}
        self._exact = {tuple(k): g for k, g in state["exact"]}
