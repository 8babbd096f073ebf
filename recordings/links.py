"""Short-lived replay links: ``base64url(claims) . base64url(HMAC-SHA256)``.

A link names one recording, one user, one format and an expiry. It is signed with the
deployment's secret under its own purpose label, so a sign-in token (signed over the bare
body) can never pass for a link nor the other way round. Pure functions: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from recordings.errors import LinkRefused

PURPOSE = b"recording-link.v1."


@dataclass(frozen=True)
class LinkClaims:
    recording_id: str
    user_id: int
    format: str
    expires_at: int  # Unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), PURPOSE + body.encode(), hashlib.sha256).digest())


def sign(secret: str, claims: LinkClaims) -> str:
    payload = {
        "r": claims.recording_id,
        "u": claims.user_id,
        "f": claims.format,
        "e": claims.expires_at,
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_mac(secret, body)}"


def verify(secret: str, token: str, now: float) -> LinkClaims:
    """The claims of a genuine, unexpired link; LinkRefused (reason in details) otherwise."""
    body, dot, signature = token.partition(".")
    if not dot or not hmac.compare_digest(signature.encode(), _mac(secret, body).encode()):
        raise LinkRefused("this replay link is not valid", details={"reason": "bad-signature"})
    try:
        payload = json.loads(_unb64(body))
        claims = LinkClaims(
            recording_id=str(payload["r"]),
            user_id=int(payload["u"]),
            format=str(payload["f"]),
            expires_at=int(payload["e"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise LinkRefused(
            "this replay link is malformed", details={"reason": "malformed"}
        ) from None
    if claims.expires_at <= now:
        raise LinkRefused(
            "this replay link has expired: ask for a new one",
            details={"reason": "expired", "expired_at": claims.expires_at},
        )
    return claims
