"""The dispatcher: threads that claim due deliveries (``FOR UPDATE SKIP LOCKED``, so
any number of processes may run one), POST them signed, and record the outcome.

Each delivery is claimed and recorded in one transaction that stays open during the
POST. A dispatcher that dies mid-delivery (even SIGKILL) drops its connection, the
database rolls the claim back and the row is due again for another: nothing is lost,
and the retry carries the same ``webhook-id``. The one duplicate this allows is a crash
between the receiver's answer and the commit, which the receiver's idempotency on
``webhook-id`` absorbs."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.core.settings import Settings
from service.db.models import Event, Webhook, WebhookDelivery
from service.domain.events import CHANNEL
from service.domain.webhooks import metrics, signing
from service.domain.webhooks.endpoints import signing_secrets
from service.domain.webhooks.targets import Policy, UnsafeWebhookUrl, resolve

log = logging.getLogger("faceprint.webhooks")

RESPONSE_KEPT = 1024
MAX_RETRY_AFTER_S = 24 * 3600.0
USER_AGENT = "Faceprint-Webhooks/1"

_CLAIM = text(
    "SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
    " WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.active"
    " ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED"
)
# Deliveries of a disabled endpoint wait for it to be re-enabled: not a backlog.
_QUEUE = text(
    "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(d.created_at)), 0)"
    " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
    " WHERE d.status = 'pending' AND w.active"
)
# Events all of whose deliveries succeeded (or whose endpoints are gone) are kept for
# the retention period only; those with a failed or pending delivery stay for recover.
_PRUNE = text(
    "DELETE FROM events e WHERE e.created_at < now() - make_interval(days => :days)"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
    " WHERE d.event_id = e.id AND d.status <> 'delivered')"
)
PRUNE_EVERY_S = 600.0


@dataclass(frozen=True)
class DispatchConfig:
    schedule_s: tuple[float, ...]
    timeout_s: float = 10.0
    threads: int = 4
    poll_s: float = 1.0
    policy: Policy = field(default_factory=Policy)
    retention_days: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchConfig:
        return cls(
            schedule_s=tuple(settings.webhook_retry_schedule_s),
            timeout_s=settings.webhook_timeout_s,
            threads=settings.webhook_dispatchers,
            poll_s=settings.webhook_poll_s,
            retention_days=settings.webhook_retention_days,
            policy=Policy(settings.webhook_allow_http, settings.webhook_allow_private),
        )


@dataclass
class Attempt:
    status_code: int | None
    latency_ms: float
    response: str | None = None
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - now, 0.0), MAX_RETRY_AFTER_S)


def body_of(event: Event) -> bytes:
    """The message as sent: the stored payload, serialised the same way every time."""
    return json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode()


def post(
    client: httpx.Client, url: str, policy: Policy, headers: dict[str, str], body: bytes
) -> Attempt:
    """One POST to the checked address of ``url``; redirects are not followed."""
    started = time.perf_counter()
    try:
        target = resolve(url, policy)
    except UnsafeWebhookUrl as exc:
        return Attempt(None, 0.0, error=exc.detail)
    extensions = {"sni_hostname": target.host} if url.startswith("https") else {}
    request = client.build_request(
        "POST",
        target.pinned_url(),
        content=body,
        headers={**headers, "host": target.host_header()},
        extensions=extensions,
    )
    try:
        response = client.send(request, stream=True)
        try:
            kept = b""
            for chunk in response.iter_bytes():
                kept += chunk
                if len(kept) >= RESPONSE_KEPT:
                    break
        finally:
            response.close()
    except httpx.HTTPError as exc:
        latency = (time.perf_counter() - started) * 1000
        return Attempt(None, latency, error=f"{type(exc).__name__}: {exc}"[:500])
    latency = (time.perf_counter() - started) * 1000
    retry_after = None
    if response.status_code in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
    text_kept = kept[:RESPONSE_KEPT].decode("utf-8", errors="replace")
    return Attempt(response.status_code, latency, text_kept, retry_after_s=retry_after)


class Dispatcher:
    def __init__(self, engine: Engine, encryption_key: bytes, config: DispatchConfig) -> None:
        self._engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)
        self._key = encryption_key
        self.config = config
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._generation = 0
        self._threads: list[threading.Thread] = []

    # -- one delivery --------------------------------------------------------------

    def deliver_one(self, client: httpx.Client) -> bool:
        """Claim one due delivery, send it and record the outcome. False if none was due."""
        with self._sessions() as session, session.begin():
            delivery_id = session.execute(_CLAIM).scalar()
            if delivery_id is None:
                return False
            delivery = session.get(WebhookDelivery, delivery_id)
            assert delivery is not None
            webhook = session.get(Webhook, delivery.webhook_id)
            event = session.get(Event, delivery.event_id)
            assert webhook is not None and event is not None
            try:
                attempt = self._send(client, webhook, event)
            except Exception as exc:  # e.g. a secret the data key cannot decrypt
                # Recorded as a failed attempt: the row follows the retry schedule
                # instead of being claimed again at once, forever.
                log.exception("webhook delivery %s could not be sent", delivery_id)
                attempt = Attempt(None, 0.0, error=f"{type(exc).__name__}: {exc}"[:500])
            self._record(session, delivery, webhook, attempt)
        return True

    def _send(self, client: httpx.Client, webhook: Webhook, event: Event) -> Attempt:
        body = body_of(event)
        msg_id = str(event.payload["id"])
        timestamp = int(time.time())
        secrets = signing_secrets(self._key, webhook, datetime.now(UTC))
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.signature_header(secrets, msg_id, timestamp, body),
        }
        return post(client, webhook.url, self.config.policy, headers, body)

    def _delay(self, attempts: int, attempt: Attempt) -> float | None:
        """Seconds until the next try after ``attempts`` failed ones; None: give up."""
        schedule = self.config.schedule_s
        if attempts > len(schedule):
            return None
        if attempt.retry_after_s is not None:
            return max(attempt.retry_after_s, 0.0)
        return schedule[attempts - 1] * random.uniform(0.9, 1.1)

    def _record(
        self, session: Session, delivery: WebhookDelivery, webhook: Webhook, attempt: Attempt
    ) -> None:
        now = datetime.now(UTC)
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.last_status_code = attempt.status_code
        delivery.last_latency_ms = round(attempt.latency_ms, 2)
        delivery.last_response = attempt.response
        delivery.last_error = attempt.error
        if attempt.ok:
            delivery.status, delivery.delivered_at, outcome = "delivered", now, "delivered"
        elif attempt.status_code == 410:
            delivery.status, outcome = "failed", "disabled"
            webhook.active = False
            webhook.disabled_reason = f"the endpoint answered 410 Gone at {now.isoformat()}"
            webhook.updated_at = now
        else:
            delay = self._delay(delivery.attempts, attempt)
            if delay is None:
                delivery.status, outcome = "failed", "failed"
            else:
                delivery.next_attempt_at = now + timedelta(seconds=delay)
                outcome = "retry"
        metrics.DELIVERIES.labels(outcome=outcome).inc()
        metrics.LATENCY.observe(attempt.latency_ms / 1000)
        log.info(
            "webhook delivery attempt",
            extra={
                "delivery_id": str(delivery.id),
                "webhook_id": str(webhook.id),
                "attempt": delivery.attempts,
                "outcome": outcome,
                "status_code": attempt.status_code,
                "latency_ms": delivery.last_latency_ms,
                "error": attempt.error,
                "response": attempt.response,
            },
        )

    # -- threads -------------------------------------------------------------------

    def _work(self) -> None:
        with httpx.Client(
            timeout=self.config.timeout_s, follow_redirects=False, trust_env=False
        ) as client:
            seen = -1
            while not self._stop.is_set():
                try:
                    if self.deliver_one(client):
                        continue
                except Exception:  # the loop must outlive one bad row or a lost connection
                    log.exception("webhook dispatcher: delivery failed unexpectedly")
                    self._stop.wait(self.config.poll_s)
                with self._wake:
                    if self._generation == seen:
                        self._wake.wait(self.config.poll_s)
                    seen = self._generation

    def _poke(self) -> None:
        with self._wake:
            self._generation += 1
            self._wake.notify_all()

    def _listen(self) -> None:
        """Wakes the workers when an announcement commits, and keeps the gauges fresh."""
        url = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn: psycopg.Connection | None = None
        next_prune = time.monotonic()
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(url, autocommit=True)
                    conn.execute(f"LISTEN {CHANNEL}")
                for _ in conn.notifies(timeout=self.config.poll_s, stop_after=1):
                    self._poke()
                self._gauges()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                    self.prune()
            except (psycopg.Error, OSError, SQLAlchemyError):
                log.warning("webhook dispatcher: LISTEN connection lost; reconnecting")
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(self.config.poll_s)
        if conn is not None:
            conn.close()

    def prune(self) -> int:
        """Delete delivered events older than the retention period; returns how many."""
        with self._engine.begin() as conn:
            return int(conn.execute(_PRUNE, {"days": self.config.retention_days}).rowcount)

    def _gauges(self) -> None:
        with self._engine.connect() as conn:
            depth, age = conn.execute(_QUEUE).one()
        metrics.QUEUE_DEPTH.set(int(depth))
        metrics.OLDEST_PENDING.set(float(age))

    def start(self) -> Dispatcher:
        if self._threads or self.config.threads <= 0:
            return self
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._work, name=f"webhooks-{i}", daemon=True)
            for i in range(self.config.threads)
        ]
        self._threads.append(
            threading.Thread(target=self._listen, name="webhooks-listen", daemon=True)
        )
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop after the deliveries in flight (each bounded by the POST timeout)."""
        self._stop.set()
        self._poke()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._threads = []
