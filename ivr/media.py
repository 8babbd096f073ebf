"""A slot's conference ports: the legs' audio, the prompt and hold-music players, the
recorder, and which of them are connected. Engine thread only (pjsua2 objects).

What should be connected is decided by ``ivr/wiring.py`` (pure); this module connects and
disconnects by difference, and keeps pjmedia's two fatal rules:

* a leg whose call ended has no conference port any more: any ``stopTransmit`` to it aborts
  the process, so its edges are forgotten without being touched (``port_alive``);
* players and recorders are not destroyed inside a callback or while connected: they go to
  the graveyard, which the engine loop empties at the start of its next step.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pjsua2 as pj

from ivr.legs import Leg
from ivr.wiring import Edge, WiringState, present_edges, wanted_edges

log = logging.getLogger("ivr.slot")

LEG_ROLES = ("caller", "agent", "super", "consult")


class CallMedia:
    """Named conference ports ("caller", "agent", "super", "consult", "prompt", "music",
    "rec") and the edges connected between them."""

    def __init__(self, music_path: str, graveyard: list[Any]) -> None:
        self.music_path = music_path
        self.graveyard = graveyard  # the engine's: emptied outside pjsua2 callbacks
        self.ports: dict[str, Any] = {}  # name -> AudioMedia (or player/recorder)
        self.edges: set[Edge] = set()
        self.port_legs: dict[str, Leg] = {}  # which leg a leg port belongs to
        self.prompt_player: Any = None
        self.music_player: Any = None
        self.recorder: Any = None

    # ------------------------------------------------------------ ports
    def attach_leg(self, leg: Leg, index: int, *, renegotiated: bool) -> None:
        if renegotiated:
            self.forget(leg.role)  # re-negotiated: reconnect from scratch
        self.ports[leg.role] = leg.getAudioMedia(index)
        self.port_legs[leg.role] = leg

    def owns(self, leg: Leg) -> bool:
        """Whether the port of the leg's role is this leg's (not a newer leg's)."""
        return self.port_legs.get(leg.role) is leg

    def forget(self, name: str, disconnect: bool = False) -> None:
        """Drop a port and its edges; a dead call's port is not touched any more."""
        for edge in [e for e in self.edges if name in e]:
            if disconnect:
                self.disconnect(edge)
            self.edges.discard(edge)
        self.ports.pop(name, None)
        self.port_legs.pop(name, None)

    def port_alive(self, name: str) -> bool:
        """False for a leg whose call ended (pjmedia asserts on a removed port)."""
        if name not in self.ports:
            return False
        leg = self.port_legs.get(name)
        return name not in LEG_ROLES or (leg is not None and not leg.media_dead)

    def hand_over(self, leg: Leg) -> None:
        """The consultation's leg becomes the agent's: its port (if alive) moves along."""
        target = self.ports.get("consult") if self.port_alive("consult") else None
        self.forget("consult", disconnect=True)
        if target is not None:
            self.ports["agent"] = target
            self.port_legs["agent"] = leg

    # ------------------------------------------------------------ players and recorder
    def start_prompt(self, paths: list[str]) -> bool:
        """Play ``paths`` one after another (replacing any prompt); False if it cannot be
        heard (nothing to play, or no caller audio yet)."""
        self.stop_prompt()
        if not paths or "caller" not in self.ports:
            return False
        player = pj.AudioMediaPlayer()
        if len(paths) == 1:
            player.createPlayer(paths[0], pj.PJMEDIA_FILE_NO_LOOP)
        else:
            player.createPlaylist(paths, "prompts", pj.PJMEDIA_FILE_NO_LOOP)
        self.prompt_player = player
        self.ports["prompt"] = player
        return True

    def stop_prompt(self) -> bool:
        """Stop the prompt playing; False if none was."""
        if self.prompt_player is None:
            return False
        self.forget("prompt", disconnect=True)
        self.graveyard.append(self.prompt_player)
        self.prompt_player = None
        return True

    def ensure_music(self) -> None:
        if self.music_player is None:
            player = pj.AudioMediaPlayer()
            player.createPlayer(self.music_path, 0)  # 0: loop
            self.music_player = player
            self.ports["music"] = player

    def start_recorder(self, path: str) -> None:
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(path)
        self.recorder = recorder
        self.ports["rec"] = recorder

    # ------------------------------------------------------------ edges
    def disconnect(self, edge: Edge) -> None:
        if not (self.port_alive(edge[0]) and self.port_alive(edge[1])):
            return
        with contextlib.suppress(pj.Error):
            self.ports[edge[0]].stopTransmit(self.ports[edge[1]])

    def rewire(self, state: WiringState | None) -> None:
        """Connect what ``state`` wants and disconnect the rest (None: nothing wanted)."""
        for role in LEG_ROLES:
            if role in self.ports and not self.port_alive(role):
                self.forget(role)  # ended since the last step: drop without touching
        wanted = wanted_edges(state) if state is not None else set()
        if ("music", "caller") in wanted:
            self.ensure_music()
        wanted = present_edges(wanted, set(self.ports))
        for edge in self.edges - wanted:
            self.disconnect(edge)
        for edge in wanted - self.edges:
            try:
                self.ports[edge[0]].startTransmit(self.ports[edge[1]])
            except pj.Error:
                log.exception("connecting %s -> %s failed", *edge)
                continue
        self.edges = set(wanted)

    def disconnect_all(self) -> None:
        """Every edge, while every port is still valid (a hang-up frees a leg's port)."""
        for edge in list(self.edges):
            self.disconnect(edge)
        self.edges.clear()

    def release_players(self) -> None:
        """Free the players and the recorder (its WAV header is written while the loop
        keeps pumping events)."""
        for name in ("prompt", "music", "rec"):
            self.ports.pop(name, None)
        self.graveyard += [self.prompt_player, self.music_player, self.recorder]
        self.prompt_player = self.music_player = self.recorder = None

    def clear(self) -> None:
        self.ports.clear()
        self.port_legs.clear()
