"""Password sign-in that resists guessing: every place that checks a password comes here.

``sign_in`` is blocking (Redis, SQL, argon2): call it from a worker thread
(``run_in_threadpool``), never on the event loop, where one argon2 verification stalls every
WebSocket and SSE feed of the process for its whole duration.

Throttling: failures are counted per account and per source address in Redis, each in a
fixed window that starts with its first failure (``settings.signin``). An attempt first
*reserves* a slot in both counters atomically (a Lua script), so concurrent guesses cannot
slip past the limit; over either limit the attempt is refused with 429 and Retry-After
before any password is checked, the right one included. A success deletes its account's
counter (the password was proven) but only refunds its own slot of the address counter:
an attacker who owns one valid account cannot wash an address's failures away with it.

Timing: a user that does not exist, or is disabled, costs one argon2 verification against a
dummy hash, so the answer's timing does not tell whether the name exists.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import dataclass

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.errors import TooManyAttempts, Unauthorized, Unavailable
from callcenter.models import User
from callcenter.passwords import hash_password, verify_password
from callcenter.service_keys import REGISTRY, Service

log = logging.getLogger(__name__)

# KEYS: account counter, address counter. ARGV: account limit, address limit, window (s).
# Returns {0} when reserved, else {1 (account) | 2 (address), milliseconds left in the window}.
_RESERVE = """
local limits = {tonumber(ARGV[1]), tonumber(ARGV[2])}
local counts = {}
for i = 1, 2 do
  counts[i] = redis.call('INCR', KEYS[i])
  -- the first slot starts the window; a counter without one (never expected) gets one too
  if redis.call('PTTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[3]) end
end
for i = 1, 2 do
  if counts[i] > limits[i] then
    for j = 1, 2 do redis.call('DECR', KEYS[j]) end
    return {i, redis.call('PTTL', KEYS[i])}
  end
end
return {0, 0}
"""

# KEYS: a counter. Gives back one reserved slot unless the window has already ended (a DECR
# on a missing key would create a counter at -1 that never expires).
_REFUND = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECR', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class SignInMetrics:
    attempts: Counter
    verify_seconds: Histogram


SIGNIN_METRICS: Service[SignInMetrics] = Service("sign-in metrics")


def metrics_for(ctx: AppContext) -> SignInMetrics:
    """The sign-in series on the app's registry (``/metrics``), created once per context."""
    return ctx.services.get_or_make(SIGNIN_METRICS, lambda: _signin_metrics(ctx))


def _signin_metrics(ctx: AppContext) -> SignInMetrics:
    registry = ctx.services.get_or_make(REGISTRY, CollectorRegistry)
    return SignInMetrics(
        attempts=Counter(
            "callcenter_signin_attempts",
            "Password sign-ins by outcome (ok, wrong, throttled)",
            ["outcome"],
            registry=registry,
        ),
        verify_seconds=Histogram(
            "callcenter_password_verify_seconds",
            "argon2 password verifications (known, unknown and disabled users alike)",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        ),
    )


def prepare(ctx: AppContext) -> None:
    """At app creation: the metrics exist on /metrics from the start, and the dummy hash is
    made now rather than during the first unknown user's sign-in (which it would slow)."""
    metrics_for(ctx)
    _dummy_hash()


@functools.cache
def _dummy_hash() -> str:
    """A hash with the deployment's argon2 parameters that no password matches by chance."""
    return hash_password(hashlib.sha256(str(time.time_ns()).encode()).hexdigest())


def _counter_keys(ctx: AppContext, username: str, source: str) -> tuple[str, str]:
    # Hashed: names and addresses come from the network and may be long or odd.
    account = hashlib.sha256(username.encode()).hexdigest()[:32]
    address = hashlib.sha256(source.encode()).hexdigest()[:32]
    prefix = f"{ctx.keys.prefix}:signin"
    return f"{prefix}:account:{account}", f"{prefix}:address:{address}"


def sign_in(ctx: AppContext, username: str, password: str, source: str) -> User:
    """The active user with this name and password, or ``Unauthorized`` / ``TooManyAttempts``.

    ``source`` is the client's address as the server saw it (uvicorn resolves
    X-Forwarded-For only from trusted proxies)."""
    limits = ctx.settings.signin
    metrics = metrics_for(ctx)
    account_key, address_key = _counter_keys(ctx, username, source)
    try:
        scope, ttl_ms = ctx.redis.eval(
            _RESERVE,
            2,
            account_key,
            address_key,
            limits.max_failures_per_account,
            limits.max_failures_per_address,
            limits.window_seconds,
        )
    except redis.RedisError:
        # Without its counters the throttle cannot work: refuse rather than allow unlimited
        # guessing. Bearer tokens already issued keep working.
        log.warning("sign-in refused: the throttle's Redis did not answer", exc_info=True)
        raise Unavailable(
            "暂时无法登录，请稍后再试 / sign-in unavailable: try again shortly"
        ) from None
    if int(scope):
        metrics.attempts.labels("throttled").inc()
        retry_after = max(1, -(-int(ttl_ms) // 1000))
        raise TooManyAttempts(
            f"登录失败次数过多，请 {retry_after} 秒后再试 / "
            f"too many failed sign-ins: try again in {retry_after} s",
            retry_after=retry_after,
            details={"scope": "account" if int(scope) == 1 else "address"},
        )
    with ctx.sessions() as session:
        user = session.scalar(select(User).where(User.username == username))
    usable = user is not None and user.active
    # The same work whether or not this user can sign in: the timing tells nothing.
    password_hash = user.password_hash if user is not None and user.active else _dummy_hash()
    with metrics.verify_seconds.time():
        matched = verify_password(password_hash, password)
    if user is None or not usable or not matched:
        metrics.attempts.labels("wrong").inc()
        raise Unauthorized("用户名或密码错误 / wrong user name or password")
    metrics.attempts.labels("ok").inc()
    try:
        pipe = ctx.redis.pipeline()
        pipe.delete(account_key)
        pipe.eval(_REFUND, 1, address_key)
        pipe.execute()
    except redis.RedisError:
        log.warning("sign-in counters not cleared: Redis did not answer", exc_info=True)
    return user
