"""``veritag worker``: run the server's background jobs (autolabel, automate, resolve, routing
refits) in a process of their own, on any host that reaches the database (``veritag.jobs``)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from ._common import Db, app, console, open_db


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Run the jobs queued now, then exit (no waiting)")
    ] = False,
    poll: Annotated[
        float, typer.Option(min=0.05, help="Seconds between looks at the queue when it is empty")
    ] = 1.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at the same time")] = 1,
    grace: Annotated[
        float,
        typer.Option(
            min=0,
            help="On SIGTERM or Ctrl+C: seconds to let running jobs finish before handing them "
            "back to the queue for another worker",
        ),
    ] = 30.0,
    db: Db = None,
) -> None:
    """Run queued jobs until stopped; serve with VERITAG_EMBEDDED_WORKER=false to leave every
    job to workers."""
    from ..jobs.worker import Worker

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with open_db(db) as store:
        runner = Worker(store, poll=poll)
        console.print(f"veritag worker {runner.name} (SIGTERM or Ctrl+C stops it)")

        def _stop(signum: int, _frame: FrameType | None) -> None:
            logging.getLogger(__name__).info("signal %d: stopping", signum)
            runner.stop()

        before = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        thread = threading.Thread(
            target=runner.run, kwargs={"concurrency": concurrency, "once": once}, daemon=True
        )
        try:
            thread.start()
            while thread.is_alive() and not runner.stopping:
                thread.join(0.2)  # short joins: the main thread must be free to take signals
            thread.join(grace)
            if thread.is_alive():
                runner.hand_back()
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)
