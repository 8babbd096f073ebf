"""A slot's legs by role ("caller", "agent", "super", "consult"), and the legs hung up on
purpose that pjsua has not yet reported DISCONNECTED. Runs on the engine thread only.

A leg hung up on purpose leaves its role at once (a new leg may take it) and is kept
referenced in ``leaving`` until pjsua reports it DISCONNECTED: dropping the ``Call`` earlier
makes pjsua hang it up behind our back, and it counts against the wheel's four calls.
Hanging up goes media first: ``hangup`` frees the leg's conference port at once, and
pjmedia aborts the process on a stopTransmit to a freed port.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pjsua2 as pj

from ivr.call_core.state import LegsView
from ivr.legs import Leg
from ivr.media import CallMedia


class LegTable:
    def __init__(self, media: CallMedia, graveyard: list[Any]) -> None:
        self.by_role: dict[str, Leg] = {}  # role -> the leg in that role now
        self.leaving: list[Leg] = []
        self.media = media
        self.graveyard = graveyard  # dropped on the next loop step, never in a callback

    def get(self, role: str) -> Leg | None:
        return self.by_role.get(role)

    def __contains__(self, role: str) -> bool:
        return role in self.by_role

    def any_left(self) -> bool:
        """Legs in a role, or hung up and not yet DISCONNECTED."""
        return bool(self.by_role or self.leaving)

    def is_current(self, leg: Leg) -> bool:
        """A leg we hung up on purpose is no longer in its role: its late facts change
        nothing."""
        return self.by_role.get(leg.role) is leg

    def view(self, *, prompt_playing: bool) -> LegsView:
        """What the call core needs to know of the legs."""
        agent, customer = self.by_role.get("agent"), self.by_role.get("caller")
        return LegsView(
            any_left=self.any_left(),
            agent_ringing=agent is not None and not agent.confirmed,
            customer_ringing=customer is not None and not customer.confirmed,
            prompt_playing=prompt_playing,
            roles=frozenset(self.by_role),
            lines=len(self.by_role) + len(self.leaving),
        )

    def add(self, leg: Leg) -> None:
        self.by_role[leg.role] = leg

    def disconnected(self, leg: Leg) -> bool:
        """pjsua reported ``leg`` DISCONNECTED: it leaves the table (and the media, unless a
        newer leg has its role). True when it still had its role (the call should know)."""
        current = self.is_current(leg)
        if current:
            del self.by_role[leg.role]
        if leg in self.leaving:
            self.leaving.remove(leg)
        if self.media.owns(leg):  # not a newer leg in the same role
            self.media.forget(leg.role)
        self.graveyard.append(leg)
        return current

    def hang_up(self, leg: Leg, reason: str) -> None:
        """End one leg on purpose: media first, then the hangup (a CANCEL while it rings);
        it leaves its role now and waits in ``leaving``."""
        if leg.gone:
            return
        leg.intentional_hangup = leg.intentional_hangup or reason
        if self.media.owns(leg):
            self.media.forget(leg.role, disconnect=True)
        if self.by_role.get(leg.role) is leg:
            del self.by_role[leg.role]
        if leg not in self.leaving:
            self.leaving.append(leg)
        with contextlib.suppress(pj.Error):
            leg.hangup(pj.CallOpParam(True))

    def drop(self, role: str, reason: str) -> None:
        leg = self.by_role.get(role)
        if leg is not None:
            self.hang_up(leg, reason)

    def drop_agent(self, reason: str) -> None:
        """The agent's leg goes, and a supervisor following the agent with it."""
        self.drop("agent", reason)
        self.drop("super", "agent_left")

    def drop_all(self, reason: str) -> None:
        for leg in list(self.by_role.values()):
            self.hang_up(leg, reason)

    def cancel(self, role: str) -> None:
        """Hang up a leg without taking it out of its role (its DISCONNECTED ends the call)."""
        leg = self.by_role.get(role)
        if leg is not None:
            with contextlib.suppress(pj.Error):
                leg.hangup(pj.CallOpParam(True))

    def promote_consult(self) -> None:
        """The consultation's leg, with its media, becomes the call's agent leg."""
        leg = self.by_role.pop("consult")
        self.media.hand_over(leg)
        leg.role = "agent"
        self.by_role["agent"] = leg

    def forget(self) -> list[Leg]:
        """Give up on every leg (returned, for a last hangup at shutdown)."""
        legs = [*self.by_role.values(), *self.leaving]
        self.by_role.clear()
        self.leaving.clear()
        return legs
