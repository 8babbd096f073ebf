"""The one host for event-stream readers (callcenter/consumers.py), against the real Redis:
the handler table, acknowledgements, a restarted consumer's pending entries, claims from a
dead consumer, bad entries skipped, failures retried, and a Redis that lost its data."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

from callcenter.consumers import ConsumerHost, Entry
from callcenter.errors import Conflict

STREAM = "test:events"
GROUP = "g"


def publish(client: redis.Redis, kind: str, n: int = 1) -> list[str]:
    return [str(client.xadd(STREAM, {"type": kind, "n": str(i)})) for i in range(n)]


def pending(client: redis.Redis) -> int:
    info: Any = client.xpending(STREAM, GROUP)
    return int(info["pending"])


def host(client: redis.Redis, seen: list[str], **kw: Any) -> ConsumerHost:
    def handle(entry_id: str, fields: dict[str, str]) -> None:
        seen.append(f"{fields['type']}:{fields['n']}")

    kw.setdefault("handlers", {"a": handle})
    return ConsumerHost(client, streams=[STREAM], group=GROUP, create_at="0", **kw)


def test_the_table_picks_the_handler_and_every_entry_is_acknowledged(
    redis_client: redis.Redis,
) -> None:
    seen: list[str] = []
    reader = host(redis_client, seen, consumer="c1")
    reader.ensure_group()
    publish(redis_client, "a", 2)
    publish(redis_client, "b", 1)
    assert reader.step(10) == 3
    assert seen == ["a:0", "a:1"]
    assert pending(redis_client) == 0
    assert reader.step(10) == 0


def test_a_restarted_consumer_reads_its_pending_entries_first(redis_client: redis.Redis) -> None:
    seen: list[str] = []
    reader = host(redis_client, seen, consumer="c1")
    reader.ensure_group()
    publish(redis_client, "a", 2)
    # delivered to c1, which died before handling them
    redis_client.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=10)
    publish(redis_client, "a", 1)
    restarted = host(redis_client, seen, consumer="c1")
    assert restarted.read_pending() == 2
    assert restarted.step(10) == 1
    assert seen == ["a:0", "a:1", "a:0"]
    assert pending(redis_client) == 0


def test_a_dead_consumers_entries_are_claimed(redis_client: redis.Redis) -> None:
    seen: list[str] = []
    host(redis_client, seen, consumer="dead").ensure_group()
    publish(redis_client, "a", 1)
    redis_client.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=10)
    time.sleep(0.06)
    other = host(redis_client, seen, consumer="live", claim_idle_ms=50)
    assert other.step(10) == 1
    assert seen == ["a:0"]
    assert pending(redis_client) == 0


def test_a_bad_entry_is_skipped_and_a_failure_is_retried(redis_client: redis.Redis) -> None:
    calls: list[str] = []
    down = {"db": True}

    def handle(entry_id: str, fields: dict[str, str]) -> None:
        calls.append(fields["n"])
        if fields["n"] == "0":
            raise Conflict("this entry is wrong")
        if fields["n"] == "2" and down["db"]:
            raise RuntimeError("database down")

    reader = ConsumerHost(
        redis_client, streams=[STREAM], group=GROUP, consumer="c", handlers={"a": handle}
    )
    reader.ensure_group()
    publish(redis_client, "a", 4)
    with pytest.raises(RuntimeError):
        reader.step(10)
    # 0 skipped (acknowledged), 1 handled, 2 failed: 2 and 3 stay pending
    assert calls == ["0", "1", "2"]
    assert pending(redis_client) == 2
    down["db"] = False
    assert reader.step(10) == 2
    assert calls == ["0", "1", "2", "2", "3"]
    assert pending(redis_client) == 0


def test_a_batch_handler_gets_the_batch_and_an_error_leaves_it_pending(
    redis_client: redis.Redis,
) -> None:
    batches: list[list[Entry]] = []
    fail = {"now": True}

    def write(stream: str, entries: list[Entry]) -> None:
        if fail["now"]:
            raise RuntimeError("database down")
        batches.append(entries)

    reader = ConsumerHost(
        redis_client, streams=[STREAM], group=GROUP, consumer="c", batch=write, create_at="0"
    )
    reader.ensure_group()
    publish(redis_client, "x", 3)
    with pytest.raises(RuntimeError):
        reader.step(10)
    assert pending(redis_client) == 3
    fail["now"] = False
    assert reader.step(10) == 3
    assert [len(b) for b in batches] == [3]
    assert pending(redis_client) == 0


def test_a_redis_that_lost_its_data_gets_the_group_again(redis_client: redis.Redis) -> None:
    seen: list[str] = []
    lost: list[bool] = []
    reader = host(redis_client, seen, consumer="c", on_group_lost=lambda: lost.append(True))
    reader.ensure_group()
    publish(redis_client, "a", 1)
    assert reader.step(10) == 1
    redis_client.flushdb()  # a Redis restarted without its data
    assert reader.step(10) == 0
    assert lost == [True]
    publish(redis_client, "a", 1)
    assert reader.step(10) == 1
    assert seen == ["a:0", "a:0"]


def test_run_outlives_errors_and_stops(redis_client: redis.Redis) -> None:
    seen: list[str] = []
    reader = host(redis_client, seen, consumer="c")
    reader.ensure_group()
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(stop,), kwargs={"block_ms": 20})
    thread.start()
    try:
        redis_client.flushdb()
        publish(redis_client, "a", 1)
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
            if not redis_client.exists(STREAM):
                publish(redis_client, "a", 1)
        assert seen, "the reader never got going again"
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_host_takes_a_table_or_a_batch_not_both(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="either"):
        ConsumerHost(redis_client, streams=[STREAM], group=GROUP, consumer="c")


def test_reading_pending_entries_also_recovers_a_lost_group(redis_client: redis.Redis) -> None:
    """A consumer that must re-read its pending entries (a new lease holder) when Redis has
    just lost its data makes the group again instead of failing at every try."""
    seen: list[str] = []
    reader = host(redis_client, seen, consumer="c")
    reader.ensure_group()
    redis_client.flushdb()
    reader.recheck_pending()
    assert reader.read_pending() == 0
    publish(redis_client, "a", 1)
    assert reader.read_pending() == 0  # nothing of ours was pending
    assert reader.step(10) == 1
    assert seen == ["a:0"]
