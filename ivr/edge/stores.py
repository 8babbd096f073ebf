"""Where the edge keeps state in the center's Redis: ndb_redis's server and usrloc's db_redis
(its URL and the key prefix that keeps one center's registrations apart from another's)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from ivr.edge.cfgtext import EdgeConfigError


def redis_server(url: str) -> str:
    """ndb_redis's server definition (name ``cc``) for the center's Redis URL."""
    parsed = urlsplit(url)
    if parsed.scheme not in ("redis", "unix"):
        raise EdgeConfigError(f"redis_url: {url!r}: the edge speaks redis:// or unix:// only")
    db = (parsed.path or "/0").strip("/") or "0"
    if parsed.scheme == "unix":
        db = dict(parse_qsl(parsed.query)).get("db", "0")
        target = f"unix={parsed.path}"
    else:
        target = f"addr={parsed.hostname or '127.0.0.1'};port={parsed.port or 6379}"
    if not db.isdigit():
        raise EdgeConfigError(f"redis_url: {url!r}: database {db!r} is not a number")
    parts = ["name=cc", target, f"db={db}"]
    if parsed.password:
        if re.search(r"[;\s\"]", parsed.password):
            raise EdgeConfigError(
                "redis_url: the edge cannot pass a password with ';', '\"' or space"
            )
        parts.append(f"pass={unquote(parsed.password)}")
    return ";".join(parts)


DB_REDIS_SCHEMAS = Path("/usr/share/kamailio/db_redis/kamailio")  # kamailio-redis-modules
LOCATION_TABLE = "location"  # usrloc's table (save/lookup("location"))


def usrloc_key_prefix(prefix: str) -> str:
    """The center's key prefix, as db_redis puts it in front of the registrations' keys.

    db_redis reads ``<code>:<table>`` in its ``keys`` parameter and names every key of the
    table ``<code>:<table>:<type>::<values>``: so ``<prefix>:location:entry::<ruid>``. The code
    ends at the first ``:``, and ``= ; & ,`` separate the parameter's parts, ``* ? [`` would be
    patterns in its SCANs: a prefix holding any of them cannot name the registrations' keys."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", prefix):
        raise EdgeConfigError(
            f"redis_prefix: {prefix!r}: the edge keeps registrations under "
            f"'<redis_prefix>:{LOCATION_TABLE}:...' and needs letters, digits, '_', '.' or '-' only"
        )
    return prefix


def registration_keys(prefix: str) -> str:
    """The pattern of every Redis key holding the center's registrations (db_redis)."""
    return f"{usrloc_key_prefix(prefix)}:{LOCATION_TABLE}:*"


def usrloc_db_url(url: str) -> str:
    """db_redis's URL (``redis://[user[:password]@]host:port/db``) for the center's Redis."""
    parsed = urlsplit(url)
    if parsed.scheme != "redis":
        raise EdgeConfigError(
            f"redis_url: {url!r}: the edge keeps registrations in Redis over TCP (redis://) only"
        )
    db = (parsed.path or "/0").strip("/") or "0"
    if not db.isdigit():
        raise EdgeConfigError(f"redis_url: {url!r}: database {db!r} is not a number")
    auth = ""
    if parsed.password:
        if re.search(r"[@/:\s\"]", unquote(parsed.password)):
            raise EdgeConfigError(
                "redis_url: the edge cannot pass a password with '@', '/', ':', '\"' or space"
            )
        auth = f"{unquote(parsed.username or '')}:{unquote(parsed.password)}@"
    host = parsed.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"redis://{auth}{host}:{parsed.port or 6379}/{db}"
