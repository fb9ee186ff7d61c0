"""A job worker: takes jobs from the queue, runs them, heartbeats while they run.

``veritag worker`` runs one in its own process; ``veritag serve`` runs one thread of it in each
server process unless ``VERITAG_EMBEDDED_WORKER=false``. Either way the queue (``jobs.queue``) is
the only thing workers share, so any number of them, on any hosts, can serve one database.

A job that raises a ``VeritagError`` (a user's mistake: too few labels, a bad option) fails at
once with its message; running it again would give the same answer. Any other exception may be
passing (the database restarting, memory running out), so the job is queued again until its
attempts are used up, and the client sees only the exception's type, the worker's name and a
pointer to that worker's log, never its text (which can hold SQL or paths).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable

from ..config import load_settings
from ..errors import VeritagError
from ..store.engine import Store
from . import queue
from .kinds import run_kind

__all__ = ["Worker", "worker_name"]

log = logging.getLogger(__name__)


def worker_name() -> str:
    """``host:pid:tag``: where to look for a job's log, and unique per worker."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Worker:
    """Runs queued jobs, ``concurrency`` at a time, until ``stop()``.

    ``run`` returns once stopped and every job it runs is finished; ``hand_back`` queues the
    jobs still running again (for a process that must exit now: they restart on another
    worker).
    """

    def __init__(
        self,
        store: Store,
        *,
        poll: float = 1.0,
        timeout: float | None = None,
        name: str | None = None,
    ) -> None:
        self.store = store
        self.name = name or worker_name()
        self.poll = poll
        self.timeout = load_settings().job_heartbeat_timeout if timeout is None else timeout
        #: Seconds between heartbeats: several per timeout, so one slow write is no death.
        self.beat = min(5.0, self.timeout / 4)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, queue.Job] = {}

    def stop(self) -> None:
        """Take no new job; ``run`` returns when the running ones are done."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Look for a job now instead of at the next poll (a job was just queued)."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, concurrency: int = 1, once: bool = False) -> None:
        """Run jobs on ``concurrency`` threads until stopped (``once``: until none is queued)."""
        threads = [
            threading.Thread(
                target=self._loop, args=(once,), name=f"veritag-worker-{i}", daemon=True
            )
            for i in range(concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def run_one(self) -> bool:
        """Take one job and run it to its end; False when none was waiting."""
        job = queue.claim(self.store, self.name, timeout=self.timeout)
        if job is None:
            return False
        with self._lock:
            self._running[job.id] = job
        try:
            self._run(job)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
        return True

    def hand_back(self) -> list[str]:
        """Queue the running jobs again for another worker (this attempt does not count); their
        ids. The threads running them go on until the process exits, but can store nothing."""
        with self._lock:
            jobs = list(self._running.values())
        handed = [job.id for job in jobs if queue.hand_back(self.store, job, self.name)]
        for job_id in handed:
            log.warning("job %s handed back to the queue", job_id)
        return handed

    def _loop(self, once: bool) -> None:
        while not self._stop.is_set():
            try:
                found = self.run_one()
            except Exception:  # the database away: say so and try again at the next poll
                log.exception("worker %s could not take a job", self.name)
                found = False
            if found:
                continue
            if once:
                return
            self._wake.wait(self.poll)
            self._wake.clear()

    def _run(self, job: queue.Job) -> None:
        log.info(
            "job %s (%s on project %s): attempt %d of %d",
            job.id,
            job.kind,
            job.project,
            job.attempts,
            job.max_attempts,
        )
        done = threading.Event()
        beating = threading.Thread(
            target=self._heartbeat,
            args=(job, done),
            name=f"veritag-heartbeat-{job.id}",
            daemon=True,
        )
        beating.start()
        try:
            self._settle(job, lambda: run_kind(self.store, job.kind, job.project, job.params or {}))
        finally:
            done.set()
            beating.join()

    def _settle(self, job: queue.Job, work: Callable[[], object]) -> None:
        """Run ``work`` and store how it ended, unless the job stopped being this worker's."""
        try:
            result = work()
        except VeritagError as exc:
            state = queue.fail(self.store, job, self.name, str(exc), retry=False)
            log.info("job %s failed: %s", job.id, exc)
        except Exception as exc:
            log.exception("job %s raised on attempt %d", job.id, job.attempts)
            error = (
                f"internal error in job {job.id} ({type(exc).__name__}, attempt {job.attempts} "
                f"of {job.max_attempts}); see the log of worker {self.name}"
            )
            state = queue.fail(self.store, job, self.name, error, retry=True)
        else:
            state = "done" if queue.finish(self.store, job, self.name, result) else None
            log.info("job %s done", job.id)
        if state is None:
            log.warning(
                "job %s was taken over by another worker; its outcome here is dropped", job.id
            )
        elif state == "queued":
            log.info("job %s queued again", job.id)

    def _heartbeat(self, job: queue.Job, done: threading.Event) -> None:
        while not done.wait(self.beat):
            try:
                if not queue.heartbeat(self.store, job, self.name):
                    return  # taken over or handed back: nothing more to say
            except Exception:  # a missed beat is no failure; the timeout allows several
                log.exception("heartbeat of job %s failed", job.id)
