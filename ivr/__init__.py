"""The SIP/media engine on pjsua2 behind a Kamailio edge: trunks and DIDs, voice menus, queue
music and announcements, bridging, transfers, recording, supervision, outbound callbacks.

Only this package imports pjsua2, and only on the engine thread of a slot process."""
