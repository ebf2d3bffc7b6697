"""Redis stops and comes back: limits keep holding (in this process meanwhile), the log
says so once each way, and counting returns to Redis."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from service.core.ratelimit import RedisWindowCounter
from tests.test_serve_cli import free_port

WINDOW_MS = 60_000


def _start(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (apt-get install redis-server)"
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port, socket_timeout=0.5)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.RedisError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("redis-server did not start")


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


def test_limits_hold_through_a_redis_outage(port: int, caplog: pytest.LogCaptureFixture) -> None:
    server = _start(port)
    counter = RedisWindowCounter(f"redis://127.0.0.1:{port}/0", retry_s=0.3)
    try:
        assert counter.hit("k", limit=3, window_ms=WINDOW_MS).allowed
        server.kill()
        server.wait()
        caplog.set_level(logging.WARNING, logger="service.core.ratelimit")
        # Redis is gone: the limit still holds, counted here (a fresh count of 3).
        got = [counter.hit("k", limit=3, window_ms=WINDOW_MS).allowed for _ in range(5)]
        assert got == [True, True, True, False, False] and counter.degraded
        time.sleep(0.4)  # past retry_s: the next hit tries Redis again, still down
        assert not counter.hit("k", limit=3, window_ms=WINDOW_MS).allowed
        down = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(down) == 1, [r.getMessage() for r in caplog.records]

        server = _start(port)
        time.sleep(0.4)
        assert counter.hit("other", limit=3, window_ms=WINDOW_MS).allowed
        assert not counter.degraded
        back = [r for r in caplog.records if "Redis is back" in r.getMessage()]
        assert len(back) == 1
        # The count is in Redis again.
        assert redis.Redis(port=port).exists(*redis.Redis(port=port).keys("*other*")) == 1
    finally:
        counter.close()
        server.kill()
        server.wait()
