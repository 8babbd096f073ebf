"""How a standalone edge learns that a slot died on a node that lives on: the lost-slots
stream (``report_lost_slot`` / ``LostSlots``), on the real test Redis."""

from __future__ import annotations

import redis

from ivr.edge.membership import LostSlots, lost_slots_key, report_lost_slot


def test_each_edge_reads_every_slot_reported_lost_after_it_started_once(
    redis_client: redis.Redis,
) -> None:
    # Reported before the edges started: its address may carry a live slot's calls by now.
    report_lost_slot(redis_client, "cc", "nodea", "sip:127.0.0.5:17090")
    first, second = LostSlots("cc"), LostSlots("cc")
    first.start(redis_client)
    second.start(redis_client)
    assert first.read(redis_client) == []

    report_lost_slot(redis_client, "cc", "nodea", "sip:127.0.0.5:17091")
    report_lost_slot(redis_client, "cc", "nodeb", "sip:127.0.0.6:17090")
    expected = ["sip:127.0.0.5:17091", "sip:127.0.0.6:17090"]
    # Both edges end their own dialogs of each slot, oldest report first, and only once.
    assert first.read(redis_client) == expected
    assert second.read(redis_client) == expected
    assert first.read(redis_client) == []


def test_an_edge_started_on_an_empty_stream_reads_the_first_report(
    redis_client: redis.Redis,
) -> None:
    edge = LostSlots("cc")
    edge.start(redis_client)
    assert not redis_client.exists(lost_slots_key("cc"))
    report_lost_slot(redis_client, "cc", "nodea", "sip:127.0.0.5:17090")
    assert edge.read(redis_client) == ["sip:127.0.0.5:17090"]
    # Another center's reports (prefix) are not this edge's.
    report_lost_slot(redis_client, "other", "nodea", "sip:127.0.0.5:17091")
    assert edge.read(redis_client) == []
