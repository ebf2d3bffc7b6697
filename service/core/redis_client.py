"""One Redis client from ``FACEPRINT_REDIS_URL``: a plain Redis, or the master that
Sentinel names.

Accepted forms:

* ``redis://[[user]:password@]host:port[/db]`` (and ``rediss://``, ``unix://``): one
  server, as redis-py reads it.
* ``redis+sentinel://[[user]:password@]host:port[,host:port…]/master_name[/db]``: ask
  those Sentinels which server is the master of ``master_name`` and talk to it. The
  password is the master's; the Sentinels are asked without one. After a failover the
  client's next command reaches the new master (redis-py's Sentinel pool asks again on a
  connection error, or when a replica answers READONLY).

``FACEPRINT_REDIS_SENTINELS=host:port,host:port`` (with ``FACEPRINT_REDIS_SENTINEL_MASTER``,
default ``mymaster``) is the same as a sentinel URL; the settings turn it into one, so
every other part of the service sees one ``redis_url``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None
    password: str | None


def _host_port(item: str) -> tuple[str, int]:
    host, sep, port = item.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"a Sentinel address must be host:port, not {item!r}")
    return host.strip("[]"), int(port)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Split a ``redis+sentinel://`` URL; ValueError says what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL: {parts.scheme}://")
    # netloc is "[user:password@]h1:p1,h2:p2"; urlsplit's host/port do not handle a list.
    credentials, _, hosts = parts.netloc.rpartition("@")
    username: str | None = None
    password: str | None = None
    if credentials:
        user, _, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) or None
    sentinels = tuple(_host_port(h) for h in hosts.split(",") if h.strip())
    if not sentinels:
        raise ValueError("a sentinel URL names at least one Sentinel host:port")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("a sentinel URL ends in /master_name or /master_name/db")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValueError(f"the database number must be an integer, not {path[1]!r}")
        db = int(path[1])
    return SentinelTarget(sentinels, unquote(path[0]), db, username, password)


def sentinel_url(sentinels: list[str], master: str, base_url: str | None = None) -> str:
    """The sentinel URL for ``FACEPRINT_REDIS_SENTINELS``: the hosts given, and the
    password and database of ``base_url`` (a ``redis://`` URL) when one is set."""
    hosts = ",".join(f"{h}:{p}" for h, p in (_host_port(s) for s in sentinels))
    credentials, db = "", 0
    if base_url:
        parts = urlsplit(base_url)
        if parts.password or parts.username:
            credentials = f"{parts.username or ''}:{parts.password or ''}@"
        path = parts.path.strip("/")
        db = int(path) if path.isdigit() else 0
    return f"{SENTINEL_SCHEME}://{credentials}{hosts}/{master}/{db}"


def make_redis(url: str, *, timeout_s: float) -> redis.Redis:
    """A client for ``url`` whose every command gives up after ``timeout_s``."""
    if not url.startswith(SENTINEL_SCHEME + "://"):
        return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    target = parse_sentinel_url(url)
    sentinel = Sentinel(
        list(target.sentinels),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return sentinel.master_for(
        target.master,
        db=target.db,
        username=target.username,
        password=target.password,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
