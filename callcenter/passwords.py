"""Password hashes: argon2id for sign-in, digest HA1 for SIP registration.

argon2 is slow and memory-hard on purpose (tens of milliseconds, 64 MiB): never call
``verify_password`` on the event loop; ``callcenter.signin`` runs it in a worker thread.
"""

from __future__ import annotations

import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def sip_ha1(username: str, realm: str, password: str) -> str:
    """Digest HA1 as the registrar stores it (RFC 2617): md5(user:realm:password)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()
