"""The call's timers: a prompt's end, ring timeouts, the maximum duration, the media check,
and the clean-up after the end."""

from __future__ import annotations

from ivr.call_core.actions import (
    Actions,
    CheckMedia,
    ConsultEnd,
    EndCall,
    Finish,
    HangupLeg,
    RunMenu,
    StopPrompt,
    WithdrawOffer,
)
from ivr.call_core.state import (
    CLOSE_GIVE_UP_SECONDS,
    CallPhase,
    Conversation,
    LegsView,
    forced_outcome,
)


def on_tick(conv: Conversation, now: float, legs: LegsView, *, next_media_check: float) -> Actions:
    """The call's timers at ``now`` (monotonic). Clears the deadlines it acts on."""
    if conv.clock.closed:
        return _closing(conv, now, legs)
    actions = _prompt_end(conv, now, legs)
    if actions and isinstance(actions[-1], EndCall):
        return actions
    if conv.state == CallPhase.menu and conv.runner is not None:
        menu_actions = conv.runner.tick(now)
        if menu_actions:
            actions.append(RunMenu(tuple(menu_actions)))
    actions += _ring_timeouts(conv, now, legs)
    if now >= conv.clock.max_until:
        actions.append(EndCall("max_duration", forced_outcome(conv)))
    elif now >= next_media_check:
        actions.append(CheckMedia(now))
    return actions


def _closing(conv: Conversation, now: float, legs: LegsView) -> Actions:
    close_at = conv.clock.close_at
    assert close_at is not None
    if now >= close_at and not legs.any_left:
        return [Finish()]
    if now >= close_at + CLOSE_GIVE_UP_SECONDS:
        return [Finish(forced=True)]  # a leg never confirmed its end: give up on it
    return []


def _prompt_end(conv: Conversation, now: float, legs: LegsView) -> Actions:
    prompt_until = conv.clock.prompt_until
    if not (prompt_until and now >= prompt_until and legs.prompt_playing):
        return []
    if conv.hangup_after_prompt:  # a closing message: the caller has heard it
        return [StopPrompt(), EndCall("message_played", conv.outcome or "failed")]
    return [StopPrompt()]


def _ring_timeouts(conv: Conversation, now: float, legs: LegsView) -> Actions:
    actions: Actions = []
    ring_until = conv.clock.ring_until
    if ring_until is not None and now >= ring_until:
        conv.clock.ring_over()
        if legs.agent_ringing:
            actions.append(WithdrawOffer("ring_timeout"))
        elif conv.direction == "out" and legs.customer_ringing:
            actions.append(HangupLeg("caller"))  # the customer did not answer
    consult = conv.consult
    if consult is not None and consult.deadline is not None and now >= consult.deadline:
        actions.append(ConsultEnd("no_answer"))
    return actions
