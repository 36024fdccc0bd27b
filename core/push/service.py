"""PushService: the push pieces put together; core/app.py builds one per hub process.

    run(job_id)      choose (the job kind's bulk rules, core.push.jobs; what scripts/bench_push.py measures),
                     then deliver: per recipient the atomic daily-cap reservation and sent mark, then the
                     channel; a failed send gives both back. One report per run.
    inbox            the engine's per-turn hook (core.push.inbox)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.redis import RedisJobStore
from redis import Redis

from core.commerce.base import CommerceBackend
from core.commerce.logistics import DemoLogistics, LogisticsProvider
from core.config import Config
from core.locale import Catalogs, Translator, normalize_locale
from core.message import Reply
from core.metrics import Metrics
from core.push.book import MemoryBook, PushBook, RedisBook
from core.push.delivery import GroupPusher, ShopperPusher, TemplatePusher
from core.push.geo import GeoIndex, MemoryGeoIndex, RedisGeoIndex
from core.push.inbox import PushInbox
from core.push.jobs import KINDS, Composed, Kind, Planned, RunContext, choose
from core.push.report import RunReport
from core.push.rules import Channels, Clock, Skip
from core.push.scheduler import PushScheduler
from core.push.stores import Catalog, configured_catalog
from core.redis_store import RedisStore
from core.sessions import SessionStore

log = logging.getLogger("kefu.push")

SEND_CONCURRENCY = 32


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


class PushService:
    def __init__(
        self,
        config: Config,
        book: PushBook,
        geo: GeoIndex,
        catalog: Catalog,
        commerce: CommerceBackend,
        catalogs: Catalogs,
        metrics: Metrics,
        logistics: LogisticsProvider | None = None,
        job_store: Callable[[], BaseJobStore] = MemoryJobStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.pushes = config.pushes
        self.book = book
        self.geo = geo
        self.catalog = catalog
        self.commerce = commerce
        self.catalogs = catalogs
        self.metrics = metrics
        self.logistics = logistics or DemoLogistics(self.pushes.logistics.demo_anomaly_rate)
        self.clock = clock
        self.inbox = PushInbox(self.pushes, book, metrics)
        self.scheduler = PushScheduler(self.pushes, book, metrics, self.run_scheduled, job_store)
        self.pushers: dict[str, ShopperPusher] = {}
        self.template_pushers: dict[str, TemplatePusher] = {}
        self.group: GroupPusher | None = None
        self._secret = (self.pushes.pickup_code_secret or "kefu-pickup").encode()

    def connect(self, channels: Iterable[object]) -> None:
        """Use every channel (adapter) that offers a push path (core.push.delivery)."""
        for channel in channels:
            if isinstance(channel, ShopperPusher):
                self.pushers[channel.name] = channel
            if isinstance(channel, TemplatePusher):
                self.template_pushers[channel.name] = channel
            if isinstance(channel, GroupPusher):
                self.group = channel

    async def start(self) -> None:
        await self.geo.replace([s.point for s in self.catalog.stores.values()])
        if any(j.enabled for j in self.pushes.jobs):
            await self.scheduler.start()

    async def close(self) -> None:
        await self.scheduler.close()

    def context(self, job_id: str, report: RunReport, now: float) -> RunContext:
        job = self.pushes.job(job_id)
        return RunContext(
            config=self.pushes, shop=self.config.shop, job=job, book=self.book,
            channels=Channels(self.pushes, self.pushers, self.template_pushers), clock=Clock(self.pushes, now),
            report=report, commerce=self.commerce, catalog=self.catalog, geo=self.geo, logistics=self.logistics,
            code_secret=self._secret, has_group=self.group is not None,
        )

    async def run_scheduled(self, job_id: str, scheduled_at: float) -> RunReport:
        return await self.run(job_id, scheduled_at)

    async def run(self, job_id: str, scheduled_at: float | None = None) -> RunReport:
        """One run of a job: choose, deliver, report. Never raises for the job's own failures."""
        started = time.perf_counter()
        now = self.clock()
        job = self.pushes.job(job_id)
        report = RunReport(job.id, job.kind, now, scheduled_at)
        try:
            run = self.context(job_id, report, now)
            planned = await choose(run)
            await self.deliver(run, KINDS[job.kind], planned)
        except Exception as exc:
            report.outcome, report.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("push run %s failed", job_id)
        report.seconds = time.perf_counter() - started
        report.publish(self.metrics)
        try:
            await self.book.record_run(report.as_dict())
        except Exception as exc:  # the report is in the log and the metrics already
            log.warning("push run %s: report not stored: %s", job_id, exc)
        return report

    async def deliver(self, run: RunContext, kind: Kind, planned: list[Planned]) -> None:
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def one(item: Planned) -> None:
            async with gate:
                await self.deliver_one(run, kind, item)

        await asyncio.gather(*(one(item) for item in planned))

    async def deliver_one(self, run: RunContext, kind: Kind, item: Planned) -> None:
        job, report, book = run.job, run.report, self.book
        customer = item.customer_id
        if customer is not None and job.marketing and not await book.reserve_marketing(
                item.day, customer, self.pushes.marketing_per_day):
            report.skip(Skip.DAILY_CAP)
            return
        if item.mark is not None and not await book.mark(job.id, item.mark, run.now + kind.repeat_s(job), run.now):
            await self._release(run, item)
            report.skip(Skip.ALREADY_SENT)
            return
        try:
            sent = await self.send(run, kind, item)
        except Exception:
            log.exception("push %s: send to %s failed", job.id, customer or "the group")
            sent = False
        if sent:
            report.sent += 1
            return
        await self._release(run, item)
        if item.mark is not None:
            await book.unmark(job.id, item.mark)
        report.skip(Skip.SEND_FAILED)

    async def _release(self, run: RunContext, item: Planned) -> None:
        if item.customer_id is not None and run.job.marketing:
            await self.book.release_marketing(item.day, item.customer_id)

    def translator(self, locale: str | None) -> Translator:
        shop = self.config.shop
        return Translator(self.catalogs, normalize_locale(locale, shop.locales) or shop.default_locale)

    async def send(self, run: RunContext, kind: Kind, item: Planned) -> bool:
        if item.route is None:  # a group campaign
            group_locale = getattr(run.job, "locale", "") or self.config.shop.default_locale
            composed = kind.compose(run, item, self.translator(group_locale))
            return self.group is not None and await self.group.push_group(composed.text)
        contact = item.route.contact
        composed = kind.compose(run, item, self.translator(contact.locale))
        template = item.route.template
        if template is None:
            return await self.pushers[contact.channel].push(contact.user_id, contact.chat_id,
                                                             Reply(text=composed.text))
        return await self.template_pushers[contact.channel].push_template(
            contact.user_id, template.template_id, template_data(template.data, composed), template.page)

    async def recent_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return await self.book.recent_runs(limit)


def template_data(data: Mapping[str, str], composed: Composed) -> dict[str, str]:
    values = _Blank({**composed.fields, "text": composed.text})
    return {name: pattern.format_map(values) for name, pattern in data.items()}


def build_push_service(config: Config, store: SessionStore, commerce: CommerceBackend, catalogs: Catalogs,
                       metrics: Metrics, prefix: str = "kefu:", clock: Callable[[], float] = time.time,
                       catalog: Catalog | None = None) -> PushService:
    """Redis-backed when the sessions are (book, GEO index, job store), in memory otherwise."""
    catalog = catalog or configured_catalog(config)
    book: PushBook
    geo: GeoIndex
    job_store: Callable[[], BaseJobStore] = MemoryJobStore
    if isinstance(store, RedisStore):
        book = RedisBook(store.client, prefix, timeout_s=config.redis.timeout_s, pipe=store.pipe)
        geo = RedisGeoIndex(store.client, f"{prefix}push:stores")
        url, timeout = config.redis.url, config.redis.timeout_s

        def job_store() -> BaseJobStore:
            # apscheduler 3 talks to Redis synchronously: a few short calls per wake-up, on the loop.
            jobs = RedisJobStore(jobs_key=f"{prefix}push:jobs", run_times_key=f"{prefix}push:job_times")
            jobs.redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
            return jobs
    else:
        book, geo = MemoryBook(), MemoryGeoIndex()
    return PushService(config, book, geo, catalog, commerce, catalogs, metrics, job_store=job_store, clock=clock)
