"""``faceprint worker``: the embedding worker that drains the job queue."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from service.cli.common import batch_components, console
from service.core.datadir import load_secrets
from service.core.logging import configure_logging
from service.core.settings import get_settings
from service.domain.webhooks.dispatch import DispatchConfig, Dispatcher

# -- faceprint worker --------------------------------------------------------------------


def worker(
    batch_size: Annotated[
        int, typer.Option(min=1, max=1024, help="Most jobs (faces) embedded in one batch.")
    ] = 32,
    max_wait_ms: Annotated[
        float,
        typer.Option(min=0, help="After the first job, wait at most this long to fill a batch."),
    ] = 50.0,
    lease_s: Annotated[
        float,
        typer.Option(min=1, help="A claimed job returns to the queue if not finished in time."),
    ] = 120.0,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port (/metrics).")
    ] = None,
    worker_id: Annotated[
        str | None, typer.Option(help="Name of this worker in the jobs table (default random).")
    ] = None,
) -> None:
    """Run the embedding worker (enrollment jobs, batched).

    Claims enrollment jobs in batches (up to --batch-size, or whatever arrived within
    --max-wait-ms), detect and embed them in one batch (on CUDA
    when onnxruntime offers it, else CPU) and index the faces. Run as many as you like,
    on one machine or many: jobs are claimed with SELECT … FOR UPDATE SKIP LOCKED. SIGTERM
    or Ctrl-C finishes the batch in hand (or releases it) and exits."""
    from service.worker.loop import WorkerOptions, install_stop_signals, run_worker

    settings = get_settings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    install_stop_signals(stop)
    options = WorkerOptions(
        batch_size=batch_size,
        max_wait_ms=max_wait_ms,
        lease_s=lease_s,
        metrics_port=metrics_port,
        worker_id=worker_id,
    )
    webhooks = DispatchConfig.from_settings(settings)
    with batch_components(pool_size=4 + webhooks.threads) as (components, url):
        # The worker's own enrollment.* events (and everyone else's) go out from here too.
        dispatcher = Dispatcher(components.engine, load_secrets(settings).encryption_key, webhooks)
        dispatcher.start()
        try:
            run_worker(components, url, options, stop)
        finally:
            dispatcher.stop()
    console.print("worker stopped")
