"""The SIP edge: Kamailio in front of the engine's pjsua2 slots (see docs/edge.md).

Pure Python: nothing here imports pjsua2.
"""

from ivr.edge.cfgtext import EdgeConfigError
from ivr.edge.config import edge_probe_address, edge_uri
from ivr.edge.dispatcher import normalize_slot_uri
from ivr.edge.process import Edge, EdgeError, SlotState, default_slot_uris

__all__ = [
    "Edge",
    "EdgeConfigError",
    "EdgeError",
    "SlotState",
    "default_slot_uris",
    "edge_probe_address",
    "edge_uri",
    "normalize_slot_uri",
]
