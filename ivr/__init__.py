"""The SIP/media engine: a supervisor forking pjsua2 slot processes, voice menus, recordings.

Only ``ivr.slot`` imports pjsua2, and only on each slot process's engine thread. Everything
else here (menus, prompts, WAV handling, call records) is plain Python usable anywhere.
"""
