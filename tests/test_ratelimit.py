"""Rate limiting: the sliding-window arithmetic, both backends, and the 429s over HTTP."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
import redis

from service.core.ratelimit import MemoryWindowCounter, RedisWindowCounter, WindowCounter
from tests.conftest import ClientFactory, make_key

WINDOW = 60_000
# Redis keeps its own clock; a long window makes a test that straddles a window edge
# change nothing (the previous window's weight moves by under 1/3600 in a second).
HOUR = 3_600_000


class Clock:
    """Time that moves only when the test says so (the arithmetic is exact then)."""

    def __init__(self, start_s: float) -> None:
        self.now = start_s

    def __call__(self) -> float:
        return self.now


def test_sliding_window_admits_limit_then_gives_exact_retry_after() -> None:
    clock = Clock(600.0)  # the start of a window
    counter = MemoryWindowCounter(clock)
    decisions = [counter.hit("k", limit=3, window_ms=WINDOW) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    # All three hits are in this window: the next fits once they slide out of the
    # estimate, i.e. 3 * (1 - f) + 0 + 1 <= 3 at f = 1/3 of the next window: 60 + 20 s.
    assert decisions[3].retry_after_s == pytest.approx(80.0)
    clock.now += 79.9
    assert not counter.hit("k", limit=3, window_ms=WINDOW).allowed
    clock.now += 0.1
    assert counter.hit("k", limit=3, window_ms=WINDOW).allowed
    assert not counter.hit("k", limit=3, window_ms=WINDOW).allowed  # refused hits do not count


def test_no_double_burst_across_a_window_boundary() -> None:
    """A plain fixed window would admit 2x the limit around the boundary; this must not."""
    clock = Clock(659.0)  # one second before a window ends
    counter = MemoryWindowCounter(clock)
    admitted = sum(counter.hit("k", limit=10, window_ms=WINDOW).allowed for _ in range(10))
    clock.now = 661.0  # two seconds later, in the next window
    admitted += sum(counter.hit("k", limit=10, window_ms=WINDOW).allowed for _ in range(10))
    assert admitted == 10


def test_keys_are_independent_and_stale_windows_forgotten() -> None:
    clock = Clock(0.0)
    counter = MemoryWindowCounter(clock)
    assert counter.hit("a", limit=1, window_ms=WINDOW).allowed
    assert not counter.hit("a", limit=1, window_ms=WINDOW).allowed
    assert counter.hit("b", limit=1, window_ms=WINDOW).allowed
    clock.now = 121.0  # two windows on: nothing of the old counts remains
    assert counter.hit("a", limit=1, window_ms=WINDOW).allowed


@pytest.fixture(params=["memory", "redis"])
def counter(request: pytest.FixtureRequest) -> Iterator[WindowCounter]:
    if request.param == "memory":
        made: WindowCounter = MemoryWindowCounter()
    else:
        made = RedisWindowCounter(request.getfixturevalue("redis_url"))
    yield made
    made.close()


def test_both_backends_refuse_over_the_limit(counter: WindowCounter) -> None:
    decisions = [counter.hit("caller", limit=5, window_ms=HOUR) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    # Five hits in the current window: free again after it ends plus 1/5 of the next.
    assert 720.0 <= decisions[5].retry_after_s <= 4320.0
    assert counter.hit("someone-else", limit=5, window_ms=HOUR).allowed


def test_both_backends_are_atomic_under_concurrency(counter: WindowCounter) -> None:
    admitted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            allowed = counter.hit("shared", limit=120, window_ms=HOUR).allowed
            with lock:
                admitted.append(allowed)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 300 and sum(admitted) == 120


def test_lua_script_and_python_agree_step_by_step(redis_url: str) -> None:
    """The Redis script re-states slide() in Lua; drive both through one random timeline."""
    rng = random.Random(7)
    clock = Clock(1_000.0)
    memory = MemoryWindowCounter(clock)
    remote = RedisWindowCounter(redis_url, clock=clock)
    try:
        for step in range(600):
            clock.now += rng.choice([0.0, 0.05, 0.5, 3.0, 17.0, 45.0, 130.0])
            key = rng.choice(["a", "b"])
            limit = rng.choice([1, 2, 5, 9])
            mine = memory.hit(key, limit=limit, window_ms=WINDOW)
            theirs = remote.hit(key, limit=limit, window_ms=WINDOW)
            assert (mine.allowed, mine.remaining) == (theirs.allowed, theirs.remaining), step
            assert mine.retry_after_s == pytest.approx(theirs.retry_after_s, abs=0.002), step
    finally:
        remote.close()


def test_redis_outage_counts_in_process_rather_than_failing() -> None:
    counter = RedisWindowCounter("redis://127.0.0.1:1/0", timeout_s=0.2)
    assert counter.hit("k", limit=1, window_ms=WINDOW).allowed
    # The limit still holds while Redis is unreachable (tests/faults has the outage).
    assert not counter.hit("k", limit=1, window_ms=WINDOW).allowed
    assert counter.degraded
    counter.close()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, object]:
    if request.param == "memory":
        return {"redis_url": None}
    return {"redis_url": request.getfixturevalue("redis_url")}


def assert_429(response) -> int:  # noqa: ANN001
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/rate-limited")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 120
    return retry_after


def test_api_routes_are_limited_per_principal(make_client: ClientFactory, backend) -> None:  # noqa: ANN001
    client = make_client(rate_limit_per_minute=3, **backend)
    first, second = make_key(client, "admin"), make_key(client, "admin")
    responses = [client.get("/v1/api-keys", headers={"X-API-Key": first}) for _ in range(4)]
    assert [r.status_code for r in responses[:3]] == [200] * 3
    assert [r.headers["ratelimit-remaining"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0].headers["ratelimit-limit"] == "3"
    assert_429(responses[3])
    # Another principal has its own budget; a bad key is a 401, not a hit on anyone's.
    assert client.get("/v1/api-keys", headers={"X-API-Key": second}).status_code == 200
    assert client.get("/v1/api-keys", headers={"X-API-Key": "fp_bad_key"}).status_code == 401


def test_role_refusals_still_spend_budget(make_client: ClientFactory) -> None:
    client = make_client(rate_limit_per_minute=2)
    operator = make_key(client, "operator")
    statuses = [
        client.get("/v1/api-keys", headers={"X-API-Key": operator}).status_code for _ in range(3)
    ]
    assert statuses == [403, 403, 429]


def test_auth_routes_are_limited_per_client_ip(make_client: ClientFactory, backend) -> None:  # noqa: ANN001
    client = make_client(rate_limit_auth_per_minute=2, **backend)
    body = {"email": "nobody@example.org", "password": "guess-guess"}
    statuses = [client.post("/v1/auth/token", json=body).status_code for _ in range(2)]
    assert statuses == [401, 401]
    assert_429(client.post("/v1/auth/token", json=body))
    assert_429(client.post("/v1/auth/refresh", json={"refresh_token": "fprt_x"}))


def test_health_metrics_and_readiness_are_not_limited(make_client: ClientFactory) -> None:
    client = make_client(rate_limit_per_minute=1, rate_limit_auth_per_minute=1)
    for path in ("/healthz", "/readyz", "/metrics") * 3:
        assert client.get(path).status_code == 200


def test_zero_turns_a_limit_off(make_client: ClientFactory) -> None:
    client = make_client(rate_limit_per_minute=0)
    key = make_key(client, "admin")
    for _ in range(5):
        response = client.get("/v1/api-keys", headers={"X-API-Key": key})
        assert response.status_code == 200 and "ratelimit-limit" not in response.headers


def test_two_app_instances_share_the_budget_through_redis(
    make_client: ClientFactory, redis_url: str
) -> None:
    one = make_client(rate_limit_per_minute=4, redis_url=redis_url)
    two = make_client(rate_limit_per_minute=4, redis_url=redis_url)
    key = make_key(one, "admin")
    headers = {"X-API-Key": key}
    statuses = [
        (one if i % 2 else two).get("/v1/api-keys", headers=headers).status_code for i in range(4)
    ]
    assert statuses == [200] * 4
    assert_429(one.get("/v1/api-keys", headers=headers))
    assert_429(two.get("/v1/api-keys", headers=headers))
    assert redis.Redis.from_url(redis_url).keys("faceprint:rl:*")


def test_in_memory_instances_do_not_share(make_client: ClientFactory) -> None:
    """The contrast to the Redis case: without Redis each process counts for itself."""
    one = make_client(rate_limit_per_minute=1)
    two = make_client(rate_limit_per_minute=1)
    headers = {"X-API-Key": make_key(one, "admin")}
    assert one.get("/v1/api-keys", headers=headers).status_code == 200
    assert two.get("/v1/api-keys", headers=headers).status_code == 200
    assert one.get("/v1/api-keys", headers=headers).status_code == 429
