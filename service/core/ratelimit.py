"""Rate limiting: a sliding-window counter per caller, in Redis or in this process.

Design
------
*Algorithm.* The sliding-window counter (as in Cloudflare's and Redis' write-ups): a
count for the current fixed window and one for the previous window; the estimate at
time t is ``previous * (1 - elapsed/window) + current``. A hit is admitted while the
estimate stays within the limit, and only admitted hits are counted, so a client that
keeps hammering still gets through again once its rate drops. ``Retry-After`` is the
exact time until the estimate falls far enough, assuming no further hits. Unlike a
plain fixed window it does not admit twice the limit across a window boundary.

*Backends.* :class:`RedisWindowCounter` keeps each caller's state in one Redis hash
and updates it in one Lua script, so it is atomic and shared by every process and
host using that Redis; the clock is Redis' ``TIME``, so app hosts' clocks do not
matter. :class:`MemoryWindowCounter` does the same arithmetic under a lock, for one
process (the embedded default, when ``FACEPRINT_REDIS_URL`` is unset). If Redis
fails, the request is admitted and a warning logged: losing the limiter for a while
is better than refusing all traffic.

*Who is counted.* Authenticated ``/v1`` routes count per principal (API key id or
user id) with the key's own ``rate_limit_per_minute`` when it has one, else the
setting of that name; the unauthenticated ``/v1/auth/*`` routes
count per client IP with the stricter ``rate_limit_auth_per_minute`` (it bounds
password guessing). Behind a proxy run uvicorn with ``--forwarded-allow-ips`` so the
client IP is the real one. A limit of 0 turns that limit off.

*How routes get it.* Through router dependencies (``service.http.ratelimit``), so no
route repeats it::

    app.include_router(router, dependencies=[PrincipalRateLimit])

:data:`PrincipalRateLimit` depends on :func:`service.http.deps.get_principal`, which
FastAPI resolves once per request, so authentication runs first (a bad credential is
a 401 and costs no budget) and the route's own role check reuses the same principal.
``/healthz``, ``/readyz`` and ``/metrics`` are on a router without it. Admitted
responses carry ``RateLimit-Limit`` and ``RateLimit-Remaining``; refusals are 429
problem+json with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from service.core.problems import RateLimited
from service.core.redis_client import make_redis
from service.core.settings import Settings

log = logging.getLogger(__name__)

WINDOW_MS = 60_000
REDIS_PREFIX = "faceprint:rl:"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float


class WindowCounter(Protocol):
    def hit(self, key: str, *, limit: int, window_ms: int) -> Decision: ...

    def close(self) -> None: ...


@dataclass
class _Window:
    index: int
    current: int
    previous: int


def _retry_after_ms(state: _Window, now_ms: int, window_ms: int, limit: int) -> float:
    """How long until one more hit fits, if nothing else is admitted meanwhile."""
    into = now_ms - state.index * window_ms
    if state.current + 1 <= limit:
        # Within this window, once enough of the previous window's weight has slid off.
        fraction = 1 - (limit - state.current - 1) / state.previous
        return fraction * window_ms - into
    # Only after this window ends, when the current count becomes the sliding one.
    fraction = max(0.0, 1 - (limit - 1) / state.current)
    return (window_ms - into) + fraction * window_ms


def slide(
    state: _Window | None, now_ms: int, window_ms: int, limit: int
) -> tuple[_Window, Decision]:
    """The arithmetic both backends share (the Lua script below is this, line by line)."""
    if limit < 1:
        raise ValueError("a rate limit must admit at least one request per window")
    index = now_ms // window_ms
    if state is None or state.index < index - 1:
        state = _Window(index, 0, 0)
    elif state.index == index - 1:
        state = _Window(index, 0, state.current)
    else:
        state = _Window(max(state.index, index), state.current, state.previous)
    weight = 1 - (now_ms - state.index * window_ms) / window_ms
    estimate = state.previous * weight + state.current
    if estimate + 1 > limit:
        retry = _retry_after_ms(state, now_ms, window_ms, limit) / 1000
        return state, Decision(False, limit, 0, max(retry, 0.001))
    state.current += 1
    return state, Decision(True, limit, max(0, math.floor(limit - estimate - 1)), 0.0)


class MemoryWindowCounter:
    """One process's counters. Thread-safe; stale callers are swept every few thousand hits."""

    SWEEP_EVERY = 4096

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._hits = 0

    def hit(self, key: str, *, limit: int, window_ms: int) -> Decision:
        now_ms = int(self._clock() * 1000)
        with self._lock:
            state, decision = slide(self._windows.get(key), now_ms, window_ms, limit)
            self._windows[key] = state
            self._hits += 1
            if self._hits % self.SWEEP_EVERY == 0:
                self._sweep(now_ms // window_ms)
        return decision

    def _sweep(self, index: int) -> None:
        stale = [k for k, w in self._windows.items() if w.index < index - 1]
        for key in stale:
            del self._windows[key]

    def close(self) -> None:
        with self._lock:
            self._windows.clear()


# KEYS[1]: the caller's hash; ARGV: limit, window in ms, and optionally the time in ms
# (default: Redis' own clock). Returns {allowed, remaining, retry_after_ms}. Mirrors
# slide() above.
_SLIDE_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local index = math.floor(now / window)
local s = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w, c, p = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3]) or 0
if w == nil or w < index - 1 then
  c, p = 0, 0
elseif w == index - 1 then
  c, p = 0, c
elseif w > index then
  index = w
end
local into = now - index * window
local estimate = p * (1 - into / window) + c
if estimate + 1 > limit then
  local retry
  if c + 1 <= limit then
    retry = (1 - (limit - c - 1) / p) * window - into
  else
    retry = (window - into) + math.max(0, 1 - (limit - 1) / c) * window
  end
  return {0, 0, math.max(1, math.ceil(retry))}
end
redis.call('HSET', KEYS[1], 'w', index, 'c', c + 1, 'p', p)
redis.call('PEXPIRE', KEYS[1], 2 * window)
return {1, math.max(0, math.floor(limit - estimate - 1)), 0}
"""


class RedisWindowCounter:
    """Counters in Redis, shared by every process that uses the same Redis.

    While Redis cannot be reached the counts go on in this process (limits still hold,
    per process), said once in the log; Redis is tried again every ``retry_s`` and, once
    it answers, counting returns there (also said once)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = REDIS_PREFIX,
        timeout_s: float = 0.5,
        clock: Callable[[], float] | None = None,
        retry_s: float = 2.0,
    ) -> None:
        """``clock`` None (the default) uses Redis' clock, one for every process; a clock
        is for driving both backends through the same timeline in tests."""
        # A plain URL or a redis+sentinel:// one (service.core.redis_client).
        self._client = make_redis(url, timeout_s=timeout_s)
        self._script = self._client.register_script(_SLIDE_LUA)
        self._prefix = prefix
        self._clock = clock
        self._fallback = MemoryWindowCounter(clock or time.time)
        self._retry_s = retry_s
        self._down_until: float | None = None  # monotonic; None while Redis answers
        self._state_lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        return self._down_until is not None

    def hit(self, key: str, *, limit: int, window_ms: int) -> Decision:
        if limit < 1:
            raise ValueError("a rate limit must admit at least one request per window")
        down_until = self._down_until
        if down_until is not None and time.monotonic() < down_until:
            return self._fallback.hit(key, limit=limit, window_ms=window_ms)
        args = [limit, window_ms]
        if self._clock is not None:
            args.append(int(self._clock() * 1000))
        try:
            allowed, remaining, retry_ms = self._script(keys=[self._prefix + key], args=args)
        except redis.RedisError as exc:
            with self._state_lock:
                if self._down_until is None:
                    log.warning(
                        "rate limiter: Redis unavailable, counting in this process until it"
                        " is back",
                        extra={"error": type(exc).__name__},
                    )
                self._down_until = time.monotonic() + self._retry_s
            return self._fallback.hit(key, limit=limit, window_ms=window_ms)
        if down_until is not None:
            with self._state_lock:
                if self._down_until is not None:
                    log.warning("rate limiter: Redis is back, counting there again")
                self._down_until = None
        return Decision(bool(allowed), limit, int(remaining), int(retry_ms) / 1000)

    def close(self) -> None:
        self._client.close()


@dataclass
class RateLimiter:
    """The counter plus the limits; built once in ``lifespan`` and held by the app's container."""

    counter: WindowCounter
    per_minute: int
    auth_per_minute: int

    def check(self, key: str, limit: int) -> dict[str, str]:
        """Count one hit for ``key``: the ``RateLimit-*`` headers to send, or
        :class:`RateLimited` when the caller is over ``limit``."""
        if limit <= 0:
            return {}
        decision = self.counter.hit(key, limit=limit, window_ms=WINDOW_MS)
        if not decision.allowed:
            retry = max(1, math.ceil(decision.retry_after_s))
            raise RateLimited(
                f"more than {limit} requests a minute; retry in {retry} s", retry_after=retry
            )
        return {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(decision.remaining)}

    def close(self) -> None:
        self.counter.close()


def build_rate_limiter(settings: Settings) -> RateLimiter:
    counter: WindowCounter = (
        RedisWindowCounter(settings.redis_url) if settings.redis_url else MemoryWindowCounter()
    )
    return RateLimiter(
        counter=counter,
        per_minute=settings.rate_limit_per_minute,
        auth_per_minute=settings.rate_limit_auth_per_minute,
    )
