"""The one object ``lifespan`` builds and every route gets through ``ContainerDep``:
the database, the components (pipeline, index, image store, thread pool), the liveness
runtime, the auth service and the rate limiter. Nothing is built on a request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.core.datadir import Secrets
from service.core.ratelimit import RateLimiter
from service.core.settings import Settings
from service.domain.auth.login import AuthService
from service.domain.components import Components
from service.domain.liveness.runtime import LivenessRuntime
from service.domain.webhooks.dispatch import Dispatcher
from service.domain.webhooks.endpoints import Keys as WebhookKeys

# A readiness probe answers None when its part is ready, else why it is not.
ReadinessProbe = Callable[[], str | None]


@dataclass
class Container:
    settings: Settings
    engine: Engine
    sessionmaker: sessionmaker[Session]
    # Sessions for the read-only views that may lag (FACEPRINT_DATABASE_READ_URL);
    # the primary's own sessionmaker when no replica is configured.
    read_sessionmaker: sessionmaker[Session]
    secrets: Secrets
    components: Components
    liveness: LivenessRuntime
    auth: AuthService
    rate_limiter: RateLimiter
    webhooks: Dispatcher
    webhook_keys: WebhookKeys
    readiness_probes: dict[str, ReadinessProbe] = field(default_factory=dict)
    read_engine: Engine | None = None

    def close(self) -> None:
        self.webhooks.stop()
        self.components.close()
        self.rate_limiter.close()
        self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()
