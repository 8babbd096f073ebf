"""The SIP edge: Kamailio in front of the engine's pjsua2 slots (see docs/edge.md)."""
