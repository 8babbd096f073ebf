"""The SIP/media engine: a supervisor forking pjsua2 slot processes, voice menus, recordings.

Only ``ivr.slot``, ``ivr.legs``, ``ivr.leg_table`` and ``ivr.media`` import pjsua2, and only
on each slot process's engine thread. Everything else here (the call core and media wiring
decisions, menus, prompts, WAV handling, the slot spec, call records) is plain Python usable
anywhere.
"""
