"""When pushes run: apscheduler's AsyncIOScheduler, each run once per cluster.

Job store: in memory by default; in Redis when redis.url is set, so every hub process sees the same
next run time (interval jobs stay aligned) and a restart knows which runs it missed. Each process
schedules every job; a run goes ahead only in the process that first claims its lock, a Redis key named
after the job and its scheduled time (SET NX with a TTL), so two processes that wake for the same run
send it once.

Misfires: apscheduler hands over the run times that are due (coalesced into the latest one); a run later
than its grace time is skipped and counted `missed`. Policy `skip` gives ON_TIME_S of grace (clock jitter),
`run_once` gives `max_delay_s`: after a restart the missed runs become one run, unless too old.

At start the jobs of bot_config.yaml replace those in the store; a job whose trigger did not change is
kept as stored, with its next run time (which is how a run missed while down is found).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.metrics import Metrics
from core.push.book import PushBook
from core.push.config import Misfire, PushesConfig

log = logging.getLogger("kefu.push")

ON_TIME_S = 30
RUN_LOCK_MIN_TTL_S = 3600

Fire = Callable[[str, float], Awaitable[Any]]


def scheduled_push(job_id: str) -> None:
    """Stands in for the job's callable in the job store (it must be importable by name); the push
    executor runs the push itself, with the run time apscheduler hands it."""


class PushExecutor(BaseExecutor):
    """Runs a due push on the event loop: misfire check, then `fire(job id, scheduled time)`."""

    def __init__(self, fire: Fire, missed: Callable[[str, float, float], None]) -> None:
        super().__init__()
        self._fire = fire
        self._missed = missed
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._loop = scheduler._eventloop

    def shutdown(self, wait: bool = True) -> None:
        for task in self._tasks:
            task.cancel()

    def _do_submit_job(self, job: Job, run_times: list[dt.datetime]) -> None:
        task = self._loop.create_task(self._run(job, run_times))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job, run_times: list[dt.datetime]) -> None:
        try:
            for run_time in run_times:
                late = (dt.datetime.now(dt.UTC) - run_time).total_seconds()
                if job.misfire_grace_time is not None and late > job.misfire_grace_time:
                    self._missed(job.id, run_time.timestamp(), late)
                    continue
                await self._fire(job.id, run_time.timestamp())
        except BaseException as exc:
            self._run_job_error(job.id, exc, sys.exc_info()[2])
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            self._run_job_success(job.id, [])


class PushScheduler:
    def __init__(self, config: PushesConfig, book: PushBook, metrics: Metrics, run: Fire,
                 job_store: Callable[[], BaseJobStore]) -> None:
        self.config = config
        self.book = book
        self.metrics = metrics
        self.run = run
        self.job_store = job_store
        self.scheduler: AsyncIOScheduler | None = None

    def trigger(self, cron: str, interval_s: int) -> CronTrigger | IntervalTrigger:
        if cron:
            return CronTrigger.from_crontab(cron, timezone=self.config.timezone)
        return IntervalTrigger(seconds=interval_s, timezone=self.config.timezone)

    def grace(self, misfire: Misfire) -> int:
        return ON_TIME_S if misfire.policy == "skip" else misfire.max_delay_s

    async def start(self) -> None:
        jobs = [j for j in self.config.jobs if j.enabled]
        scheduler = AsyncIOScheduler(
            timezone=self.config.timezone,
            jobstores={"default": self.job_store()},
            executors={"default": PushExecutor(self.fire, self.missed)},
        )
        scheduler.start(paused=True)
        self.scheduler = scheduler
        stored = {job.id: job for job in scheduler.get_jobs()}
        for spec in jobs:
            misfire = spec.misfire or self.config.misfire
            # The name records what the job was built from: an unchanged job keeps its stored next run time.
            fingerprint = (f"{spec.kind} {spec.trigger_text} {self.config.timezone} "
                           f"{misfire.policy}/{misfire.max_delay_s}")
            known = stored.pop(spec.id, None)
            if known is not None and known.name == fingerprint:
                continue
            with contextlib.suppress(ConflictingIdError):  # another process added it at the same moment
                scheduler.add_job(scheduled_push, self.trigger(spec.cron, spec.interval_s), args=[spec.id],
                                  id=spec.id, name=fingerprint, coalesce=True, max_instances=1,
                                  misfire_grace_time=self.grace(misfire), replace_existing=True)
        for leftover in stored:
            scheduler.remove_job(leftover)
        scheduler.resume()
        for job in scheduler.get_jobs():
            log.info("push job %s: next run %s", job.id, job.next_run_time)

    async def close(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.scheduler = None

    async def fire(self, job_id: str, scheduled_at: float) -> None:
        ttl = RUN_LOCK_MIN_TTL_S
        spec = self.config.job(job_id)
        if spec.interval_s:
            ttl = max(ttl, 2 * spec.interval_s)
        if not await self.book.claim_run(f"{job_id}:{scheduled_at:.3f}", ttl):
            self.metrics.push_runs.labels(job_id, "other_process").inc()
            log.debug("push run %s at %.3f: taken by another hub process", job_id, scheduled_at)
            return
        await self.run(job_id, scheduled_at)

    def missed(self, job_id: str, scheduled_at: float, late_s: float) -> None:
        self.metrics.push_runs.labels(job_id, "missed").inc()
        log.warning("push run %s scheduled at %s missed by %.0f s: skipped (misfire policy)", job_id,
                    dt.datetime.fromtimestamp(scheduled_at, dt.UTC).isoformat(), late_s)
