"""Ownership epochs on SQLite and PostgreSQL: claims, the compare-and-set check, a fenced write rolled back.

No broker: a "successor" claims the partition in the store while the first owner still holds its
epoch, as a worker's assignment does (tests/aiops/test_worker_fencing.py drives a real worker).
"""

from __future__ import annotations

import threading

import pytest
from kafka import TopicPartition

from aiops.fencing import PartitionEpochs, PartitionFenced
from aiops.partition_state import applied_name, load_applied, save_applied
from aiops.store import repository

TP0, TP1 = TopicPartition("m", 0), TopicPartition("m", 1)


def test_each_claim_raises_the_epoch_per_group_topic_and_partition(store):
    a, b, other_group = PartitionEpochs("g"), PartitionEpochs("g"), PartitionEpochs("h")
    with store.begin() as conn:
        assert a.claim(conn, [TP0, TP1], 1.0) == {TP0: 1, TP1: 1}
    with store.begin() as conn:
        assert b.claim(conn, [TP0], 2.0) == {TP0: 2}
        assert other_group.claim(conn, [TP0, TopicPartition("n", 0)], 2.0) == {TP0: 1, TopicPartition("n", 0): 1}
    with store.begin() as conn:
        assert repository.partition_epoch(conn, "g", "m", 0) == 2
        assert repository.partition_epoch(conn, "g", "m", 1) == 1
        assert repository.partition_epoch(conn, "g", "m", 2) is None
    assert (a.held(TP0), b.held(TP0)) == (1, 2)


def test_the_latest_owner_passes_the_check_and_an_older_one_is_fenced_naming_both_epochs(store):
    zombie, successor = PartitionEpochs("g"), PartitionEpochs("g")
    with store.begin() as conn:
        zombie.claim(conn, [TP0, TP1], 1.0)
    with store.begin() as conn:
        successor.claim(conn, [TP1], 2.0)
    with store.begin() as conn:
        zombie.check(conn, [TP0])  # still its own
        successor.check(conn, [TP1])
        with pytest.raises(PartitionFenced) as fenced:
            zombie.check(conn, [TP0, TP1])
    assert (fenced.value.group, fenced.value.tp, fenced.value.mine, fenced.value.current) == ("g", TP1, 1, 2)
    assert "'g'" in str(fenced.value) and "m[1]" in str(fenced.value) and "epoch 1" in str(fenced.value)
    with store.begin() as conn, pytest.raises(PartitionFenced, match="never claimed"):
        PartitionEpochs("g").check(conn, [TP0])


def test_a_fenced_batch_stores_nothing_of_its_transaction(store):
    zombie, successor = PartitionEpochs("g"), PartitionEpochs("g")
    with store.begin() as conn:
        zombie.claim(conn, [TP0], 1.0)
        save_applied(conn, zombie, {TP0: 10}, 1.0)
    with store.begin() as conn:
        successor.claim(conn, [TP0], 2.0)
    with pytest.raises(PartitionFenced), store.begin() as conn:
        repository.save_checkpoint(conn, "partition:g:m:0", b"zombie state", 3.0)  # written before the check
        save_applied(conn, zombie, {TP0: 20}, 3.0)
    with store.begin() as conn:
        assert load_applied(conn, "g", [TP0]) == {TP0: 10}
        assert repository.load_checkpoint(conn, "partition:g:m:0") is None
        save_applied(conn, successor, {TP0: 20}, 4.0)
        assert repository.load_checkpoint(conn, applied_name("g", TP0)) == (b"20", 4.0)


def _in_thread(fn) -> tuple[threading.Thread, list]:
    out: list = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:  # handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_check_racing_an_uncommitted_claim_is_fenced_once_the_claim_commits(store):
    zombie, successor = PartitionEpochs("g"), PartitionEpochs("g")
    with store.begin() as conn:
        zombie.claim(conn, [TP0], 1.0)

    def zombie_writes() -> None:
        with store.begin() as conn:
            save_applied(conn, zombie, {TP0: 5}, 2.0)

    with store.begin() as conn:
        successor.claim(conn, [TP0], 2.0)  # holds the row (PostgreSQL) or the write lock (SQLite)
        thread, out = _in_thread(zombie_writes)  # waits for the claim, then sees it
        thread.join(0.5)
    thread.join(30)
    assert len(out) == 1 and isinstance(out[0], PartitionFenced)
    with store.begin() as conn:
        assert load_applied(conn, "g", [TP0]) == {}


def test_a_claim_racing_the_owners_write_waits_for_it_and_loads_what_it_stored(store):
    owner, successor = PartitionEpochs("g"), PartitionEpochs("g")
    with store.begin() as conn:
        owner.claim(conn, [TP0], 1.0)

    def take_over() -> dict:
        with store.begin() as conn:
            successor.claim(conn, [TP0], 2.0)
            return load_applied(conn, "g", [TP0])

    with store.begin() as conn:
        save_applied(conn, owner, {TP0: 7}, 2.0)  # checked first: the owner's until it commits
        thread, out = _in_thread(take_over)
        thread.join(0.5)
    thread.join(30)
    assert out == [{TP0: 7}]  # the successor replays from the owner's applied offset, none stored twice
    assert successor.held(TP0) == 2
