"""The call's own decisions, free of pjsua2: what a slot does on a leg's fact, a command or
a timer, given only the conversation's state. Like ``ivr/menu.py``: state and a clock in,
frozen actions out (``actions.py``); the slot (``ivr/slot.py``) carries them out.

By concern: ``state`` (the call, the setup and legs it reads), ``leg_facts`` (a leg rang,
answered, got audio, keyed a digit, ended, could not be dialled), ``commands`` (routing's
commands), ``offer`` (queueing and offers), ``transfer`` (blind transfers and the
consultation), ``originate`` (outbound calls and surveys), ``inbound`` (an arrival and its
menu's outcomes), ``timers`` and ``ending``. Unit-tested without SIP in
tests/engine/test_call_core*.py.
"""
