"""Which nodes' slots an edge hangs up when they are gone: ``SlotsSeen`` (pure bookkeeping)."""

from __future__ import annotations

from ivr.edge.membership import SlotsSeen


def test_a_node_no_longer_announced_is_checked_and_its_slots_given_once() -> None:
    seen = SlotsSeen()
    assert seen.saw({"nodeb": ["sip:127.0.0.2:1"], "nodec": ["sip:127.0.0.4:1"]}) == []
    # The pool grew: every slot the node ever announced is remembered.
    assert seen.saw({"nodeb": ["sip:127.0.0.2:2"], "nodec": ["sip:127.0.0.4:1"]}) == []
    # nodeb's announcement lapsed: it is to be checked (stalled, or gone) ...
    assert seen.saw({"nodec": ["sip:127.0.0.4:1"]}) == ["nodeb"]
    # ... still quiet next round while its liveness key holds (not forgotten yet).
    assert seen.saw({"nodec": ["sip:127.0.0.4:1"]}) == ["nodeb"]
    assert seen.forget("nodeb") == ["sip:127.0.0.2:1", "sip:127.0.0.2:2"]
    assert seen.saw({"nodec": ["sip:127.0.0.4:1"]}) == []
    assert seen.forget("nodeb") == []
    # A node back under the same name is watched afresh.
    assert seen.saw({"nodeb": ["sip:127.0.0.2:1"]}) == ["nodec"]
