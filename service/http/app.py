"""The FastAPI application. Everything expensive is built once in ``lifespan``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import Engine

from indexing.pipeline import FacePipeline
from service.core.datadir import load_secrets
from service.core.ratelimit import build_rate_limiter
from service.core.settings import Settings
from service.db.session import make_engine, make_sessionmaker
from service.domain.auth.login import build_auth
from service.domain.components import Components, build_components
from service.domain.liveness.runtime import build_runtime as build_liveness_runtime
from service.domain.webhooks.dispatch import DispatchConfig, Dispatcher
from service.domain.webhooks.endpoints import Keys as WebhookKeys
from service.http.bodylimit import BodyLimitMiddleware
from service.http.console import install_console
from service.http.container import Container, ReadinessProbe
from service.http.docs import install_docs
from service.http.errors import install_problem_handlers
from service.http.middleware import RequestContextMiddleware
from service.http.openapi import install_openapi
from service.http.ratelimit import PrincipalRateLimit
from service.http.routes import analytics as analytics_api
from service.http.routes import (
    api_keys,
    audit,
    auth,
    faces,
    galleries,
    health,
    jobs,
    matching,
    me,
    models,
    verifications,
    webhooks,
)
from service.http.routes import liveness as liveness_api


def _index_problem(components: Components) -> str | None:
    with components.engine.connect() as conn:
        health = components.index.health(conn)
    return None if health.ok else health.detail


def _replica_problem(read_engine: Engine) -> str | None:
    try:
        with read_engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure to answer is "not ready"
        name = type(exc).__name__
        return f"the read replica (FACEPRINT_DATABASE_READ_URL) does not answer: {name}"
    return None


def _probes(components: Components, read_engine: Engine | None) -> dict[str, ReadinessProbe]:
    probes: dict[str, ReadinessProbe] = {
        "index": lambda: _index_problem(components),
        "image_store": components.image_store.health,
    }
    if read_engine is not None:
        probes["read_replica"] = lambda: _replica_problem(read_engine)
    return probes


def build_container(
    settings: Settings, *, database_url: str, pipeline: FacePipeline | None = None
) -> Container:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    read_engine = read_sessions = None
    if settings.database_read_url is not None:
        read_engine = make_engine(settings.database_read_url.get_secret_value())
        read_sessions = make_sessionmaker(read_engine)
    secrets = load_secrets(settings)
    components = build_components(settings, engine, secrets, pipeline=pipeline)
    dispatch = DispatchConfig.from_settings(settings)
    return Container(
        settings=settings,
        engine=engine,
        sessionmaker=sessions,
        read_sessionmaker=read_sessions or sessions,
        read_engine=read_engine,
        secrets=secrets,
        components=components,
        liveness=build_liveness_runtime(settings, components.pipeline),
        auth=build_auth(settings, secrets),
        rate_limiter=build_rate_limiter(settings),
        webhooks=Dispatcher(engine, secrets.encryption_key, dispatch),
        webhook_keys=WebhookKeys(secrets.encryption_key, dispatch.policy),
        readiness_probes=_probes(components, read_engine),
    )


def create_app(
    settings: Settings, *, database_url: str, pipeline: FacePipeline | None = None
) -> FastAPI:
    """An app bound to one database. ``faceprint serve`` resolves the URL (embedded or
    external) before building the app, so the app itself never starts servers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = build_container(settings, database_url=database_url, pipeline=pipeline)
        app.state.container = container
        container.components.start_relay()
        container.components.start_warm_up()
        container.webhooks.start()
        try:
            yield
        finally:
            container.close()

    app = FastAPI(
        title="Faceprint",
        version="0.1.0",
        description="Self-hosted face verification (1:1) and identification (1:N).",
        lifespan=lifespan,
        # /docs is served from the package (service.http.docs); ReDoc has no offline build.
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    install_openapi(app)
    install_problem_handlers(app)
    # Inside the request context (so a 413 is logged and timed like any answer).
    app.add_middleware(BodyLimitMiddleware, default_limit=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    if settings.cors_origins:
        # Off unless configured: an integrator's own capture page on another origin.
        # Credentials are headers (X-API-Key, Authorization), never cookies.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-Id"],
            expose_headers=["X-Request-Id", "Server-Timing"],
            allow_credentials=False,
            max_age=600,
        )
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(me.router, dependencies=[PrincipalRateLimit])
    app.include_router(api_keys.router, dependencies=[PrincipalRateLimit])
    app.include_router(audit.router, dependencies=[PrincipalRateLimit])
    app.include_router(jobs.router, dependencies=[PrincipalRateLimit])
    app.include_router(models.router, dependencies=[PrincipalRateLimit])
    app.include_router(liveness_api.router, dependencies=[PrincipalRateLimit])
    for router in (
        galleries.router,
        faces.router,
        matching.router,
        verifications.router,
        webhooks.router,
        analytics_api.router,
    ):
        app.include_router(router, dependencies=[PrincipalRateLimit])
    install_console(app)
    return app


def app_from_environment() -> FastAPI:
    """The app of one `faceprint serve --workers N` process: settings from the
    environment, the database URL from the 0600 file the parent named there
    (FACEPRINT_DATABASE_URL_FILE)."""
    from service.core.logging import configure_logging
    from service.core.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    if settings.database_url is None:
        raise RuntimeError(
            "FACEPRINT_DATABASE_URL_FILE (or FACEPRINT_DATABASE_URL) must be set for workers"
        )
    return create_app(settings, database_url=settings.database_url.get_secret_value())
