"""A slot's SIP side: its pjsua2 endpoint and account, its legs (pjsua2 calls), and the
facts their callbacks hand the engine loop.

pjsua2 runs these callbacks inside ``libHandleEvents`` on the engine thread. They only copy
what happened into a small frozen fact and wake the loop; the loop decides what to do (a
callback that hung up or dropped a call itself could free an object pjsua2 still uses).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import pjsua2 as pj

from ivr.spec import SlotSpec

log = logging.getLogger("ivr.slot")


@dataclass(frozen=True)
class LegStateChanged:
    leg: Leg
    state: int  # pj.PJSIP_INV_STATE_*
    code: int  # the last SIP status code
    reason: str


@dataclass(frozen=True)
class LegMediaReady:
    """The leg's audio is active (first time, or after a re-negotiation)."""

    leg: Leg
    index: int  # the call's media index of the audio stream


@dataclass(frozen=True)
class DigitReceived:
    leg: Leg
    digit: str
    method: int  # 0 RFC 2833, 1 SIP INFO (pjsua2's numbering)
    at: float  # wall clock when the digit arrived (menu latency figures)


LegFact = LegStateChanged | LegMediaReady | DigitReceived


class FactSink(Protocol):
    """What a leg needs from its slot: somewhere to put facts, and a way to wake the loop."""

    facts: deque[LegFact]

    def wake_soon(self) -> None: ...

    def incoming(self, account: pj.Account, call_id: int, source: str) -> None: ...


class Leg(pj.Call):
    """One SIP call leg; callbacks only copy facts for the engine loop."""

    def __init__(
        self, slot: FactSink, role: str, account: pj.Account, call_id: int = pj.PJSUA_INVALID_ID
    ) -> None:
        super().__init__(account, call_id)
        self.slot = slot
        self.role = role
        self.media_index: int | None = None
        self.confirmed = False
        self.ringing = False
        self.gone = False
        self.last_code = 0
        self.intentional_hangup = ""
        self.media_dead = False
        self.last_rx_packets = -1
        self.last_rx_at = time.monotonic()

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                # its conference port is gone from now on: touching it aborts the process
                self.media_dead = True
            self.slot.facts.append(
                LegStateChanged(
                    self, int(info.state), int(info.lastStatusCode), str(info.lastReason)
                )
            )
            self.slot.wake_soon()
        except Exception:
            log.exception("onCallState failed")

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        try:
            info = self.getInfo()
            for media in info.media:
                if (
                    media.type == pj.PJMEDIA_TYPE_AUDIO
                    and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                ):
                    self.slot.facts.append(LegMediaReady(self, int(media.index)))
                    self.slot.wake_soon()
                    break
        except Exception:
            log.exception("onCallMediaState failed")

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        # Defence in depth behind the edge (which answers 403 to REFER from outside): a REFER
        # accepted here would make this slot dial the Refer-To number at the center's cost.
        prm.statusCode = pj.PJSIP_SC_FORBIDDEN
        log.warning("REFER to %s refused", prm.dstUri)

    def onCallReplaceRequest(self, prm: pj.OnCallReplaceRequestParam) -> None:
        # An INVITE with Replaces would take this call over from a third party: refused.
        prm.statusCode = pj.PJSIP_SC_FORBIDDEN
        prm.reason = "Replaces not allowed"
        log.warning("INVITE with Replaces for a call of this slot refused")

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        # RFC 2833 arrives here at the start of each digit, SIP INFO (method 1) likewise.
        try:
            self.slot.facts.append(
                DigitReceived(self, str(prm.digit), int(prm.method), time.time())
            )
            # end the current poll now: the caller waits for the next prompt (menu latency)
            self.slot.wake_soon()
        except Exception:
            log.exception("onDtmfDigit failed")


class SlotAccount(pj.Account):
    def __init__(self, slot: FactSink) -> None:
        super().__init__()
        self.slot = slot

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        # Must decide here: a Call not kept referenced is declined by pjsua (603).
        try:
            self.slot.incoming(self, prm.callId, str(prm.rdata.srcAddress))
        except Exception:
            log.exception("onIncomingCall failed")


def start_endpoint(spec: SlotSpec, slot: FactSink) -> tuple[pj.Endpoint, SlotAccount]:
    """pjsua2 for one slot, on the calling (engine) thread: no worker threads, callbacks
    only inside ``libHandleEvents``, 4 calls, 8 kHz mono, PCMU/PCMA only, no sound card."""
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = 4
    cfg.uaConfig.userAgent = "callcenter-slot"
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.channelCount = 1
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.noVad = True
    cfg.medConfig.threadCnt = 1
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = spec.sip_port
    tcfg.boundAddress = spec.sip_host
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.audDevManager().setNullDev()  # no sound card: without it no RTP flows at all
    for codec in ep.codecEnum2():
        ep.codecSetPriority(codec.codecId, 0)
    ep.codecSetPriority("PCMU/8000", 255)
    ep.codecSetPriority("PCMA/8000", 254)
    ep.libStart()
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{spec.name}@{spec.sip_host}:{spec.sip_port}"
    acfg.mediaConfig.transportConfig.port = spec.rtp_port
    acfg.mediaConfig.transportConfig.portRange = spec.rtp_range
    acfg.mediaConfig.transportConfig.boundAddress = spec.sip_host
    # One codec in the answer: no re-INVITE to "lock" it (peers need not handle one).
    acfg.mediaConfig.lockCodecEnabled = False
    # Session timers off: dead calls are caught by the RTP silence timer instead.
    acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_INACTIVE
    acfg.natConfig.iceEnabled = False
    acfg.presConfig.publishEnabled = False
    account = SlotAccount(slot)
    account.create(acfg, True)
    return ep, account
