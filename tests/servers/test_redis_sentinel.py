"""Rate limits in Redis behind Sentinel: the limiter finds the master through Sentinel
(a redis+sentinel:// URL or FACEPRINT_REDIS_SENTINELS), and keeps counting on the
replica that Sentinel promotes when the master dies."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from service.core.ratelimit import RedisWindowCounter, build_rate_limiter
from service.core.redis_client import parse_sentinel_url
from service.core.settings import Settings
from tests.servers.stores import SENTINEL_MASTER, RedisSentinelSet

pytestmark = pytest.mark.servers

HOUR = 3_600_000


@pytest.fixture
def own_sentinel() -> Iterator[RedisSentinelSet]:
    """A set of its own: the failover test kills its master."""
    root = Path(tempfile.mkdtemp(prefix="faceprint-servers-redis-fo-"))
    servers = None
    try:
        servers = RedisSentinelSet(root)
        yield servers
    finally:
        if servers is not None:
            servers.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_settings_sentinels_give_the_same_limiter_as_the_url(
    sentinel_redis: RedisSentinelSet, tmp_path: Path
) -> None:
    by_list = Settings(
        data_dir=tmp_path,
        redis_sentinels=f"127.0.0.1:{sentinel_redis.sentinel_port}",  # type: ignore[arg-type]
        redis_sentinel_master=SENTINEL_MASTER,
    )
    assert by_list.redis_url == sentinel_redis.url
    limiter = build_rate_limiter(by_list)
    other = build_rate_limiter(Settings(data_dir=tmp_path, redis_url=sentinel_redis.url))
    try:
        key = f"k-{time.monotonic_ns()}"
        assert limiter.counter.hit(key, limit=3, window_ms=HOUR).remaining == 2
        # The second limiter (another API process) sees the same count, on the master.
        assert other.counter.hit(key, limit=3, window_ms=HOUR).remaining == 1
        master = redis.Redis(port=sentinel_redis.master_port())
        assert master.exists(f"faceprint:rl:{key}")
    finally:
        limiter.close()
        other.close()


def test_limits_survive_a_master_failover(own_sentinel: RedisSentinelSet) -> None:
    counter = RedisWindowCounter(own_sentinel.url, timeout_s=0.5, retry_s=0.3)
    try:
        decisions = [counter.hit("caller", limit=10, window_ms=HOUR) for _ in range(4)]
        assert [d.remaining for d in decisions] == [9, 8, 7, 6]
        old = own_sentinel.master_port()
        # The replica has the counts before the master dies (replication is async).
        assert redis.Redis(port=old).wait(1, 2000) == 1
        own_sentinel.kill_master()
        deadline = time.monotonic() + 30
        counted_here = 0
        while True:
            decision = counter.hit("caller", limit=10, window_ms=HOUR)
            if not counter.degraded and counted_here:
                break  # counted in Redis again
            # No master (or Sentinel not yet sure of the new one): this process counts
            # on its own meanwhile, so the limit still holds.
            counted_here += counter.degraded
            assert time.monotonic() < deadline, "the limiter found no master within 30 s"
            time.sleep(0.1)
        assert own_sentinel.master_port() != old
        assert counted_here > 0  # Sentinel waits 2 s before it calls the master down
        # The promoted replica carries on from the count the old master had.
        assert decision.remaining == 5
        after = [counter.hit("caller", limit=10, window_ms=HOUR) for _ in range(6)]
        assert [d.remaining for d in after[:5]] == [4, 3, 2, 1, 0]
        assert not after[5].allowed
    finally:
        counter.close()


def test_sentinel_settings_are_read_and_malformed_ones_fail_at_start(tmp_path: Path) -> None:
    target = parse_sentinel_url("redis+sentinel://:s%40cret@10.0.0.1:26379,[::1]:26380/cache/3")
    assert target.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (target.master, target.db, target.password) == ("cache", 3, "s@cret")
    folded = Settings(
        data_dir=tmp_path,
        redis_url="redis://:pw@ignored-host/2",
        redis_sentinels='["10.0.0.1:26379", "10.0.0.2:26379"]',  # type: ignore[arg-type]
    )
    assert folded.redis_url == "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster/2"
    with pytest.raises(ValueError, match="master_name"):
        Settings(data_dir=tmp_path, redis_url="redis+sentinel://127.0.0.1:26379")
    with pytest.raises(ValueError, match="host:port"):
        Settings(data_dir=tmp_path, redis_sentinels="sentinel-without-port")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        Settings(
            data_dir=tmp_path,
            redis_url="redis+sentinel://127.0.0.1:26379/m",
            redis_sentinels=["127.0.0.1:26380"],
        )
