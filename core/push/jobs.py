"""Each kind of push: whom it is for (`choose`) and what it says (`compose`).

`choose` applies every rule that can be checked in bulk and counts each skip in the run's report; what
needs an atomic step across hub processes (the daily cap, the sent mark) is checked again at delivery.
Bulk reads go out together (with Redis, several replies are in flight at once), and the cyclic garbage
collector pauses while a run chooses (see `cyclic_gc_paused`).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import hmac
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.commerce.base import CommerceBackend, CommerceError
from core.commerce.logistics import Anomaly, LogisticsProvider, Problem, Weather, alert_text
from core.config import ShopConfig
from core.locale import Translator
from core.push.book import Contact, PushBook
from core.push.config import (
    GroupCampaignJob,
    LogisticsAlertJob,
    PaymentReminderJob,
    PushesConfig,
    SamplePickupJob,
)
from core.push.geo import GeoIndex
from core.push.report import RunReport
from core.push.rules import Channels, Clock, Route, Skip
from core.push.stores import Catalog

NEAREST_CANDIDATES = 3  # stores looked at per shopper, nearest first, when the nearest has run out
SAMPLE_TEMPLATE = "push.sample_pickup"
PAYMENT_TEMPLATE = "push.payment_reminder"

Job = SamplePickupJob | PaymentReminderJob | LogisticsAlertJob | GroupCampaignJob


@dataclass(slots=True)
class Planned:
    """One message a run decided to send."""

    customer_id: str | None  # None: the group of a group campaign
    route: Route | None
    day: str  # the recipient's local date (the daily cap counts per day)
    mark: str | None  # what the job's sent mark is about (a customer, an order, a parcel)
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Composed:
    text: str
    fields: dict[str, str]  # for template messages: the parts of the text


@dataclass(slots=True)
class RunContext:
    config: PushesConfig
    shop: ShopConfig
    job: Job
    book: PushBook
    channels: Channels
    clock: Clock
    report: RunReport
    commerce: CommerceBackend
    catalog: Catalog
    geo: GeoIndex
    logistics: LogisticsProvider
    code_secret: bytes
    has_group: bool

    @property
    def now(self) -> float:
        return self.clock.now


class Kind(Protocol):
    def repeat_s(self, job: Job) -> float:
        """How long a sent mark lasts."""
        ...

    async def choose(self, run: RunContext) -> list[Planned]: ...

    def compose(self, run: RunContext, item: Planned, t: Translator) -> Composed: ...


class Screen:
    """The state every shopper push checks, read once per run."""

    def __init__(self, run: RunContext, contacts: dict[str, list[Contact]], opted: set[str], marked: set[str]) -> None:
        self.run = run
        self.contacts = contacts
        self.opted = opted
        self.marked = marked
        self._counts: dict[str, dict[str, int]] = {}
        # Looked up once: `reach` runs for every candidate.
        self._route, self._kind, self._now = run.channels.route, run.job.kind, run.now

    @classmethod
    async def load(cls, run: RunContext) -> Screen:
        book = run.book
        contacts, opted, marked = await asyncio.gather(book.contacts(), book.opted_out(),
                                                       book.marked(run.job.id, run.now))
        return cls(run, contacts, opted, marked)

    def reach(self, customer_id: str, subject: str | None) -> Route | Skip:
        """Opt-out, earlier sends and the channels: whether and how this customer can be messaged."""
        if customer_id in self.opted:
            return Skip.OPTED_OUT
        if subject is not None and subject in self.marked:
            return Skip.ALREADY_SENT
        contacts = self.contacts.get(customer_id)
        if not contacts:
            return Skip.NO_CHANNEL
        return self._route(contacts, self._kind, self._now)

    async def timing(self, customer_id: str, zone: str) -> str | Skip:
        """Quiet hours and the daily cap where the shopper is; their local date when neither applies."""
        clock = self.run.clock
        if clock.quiet(zone):
            return Skip.QUIET_HOURS
        day = clock.day(zone)
        if self.run.job.marketing:
            counts = self._counts.get(day)
            if counts is None:
                counts = self._counts[day] = await self.run.book.marketing_counts(day)
            if counts.get(customer_id, 0) >= self.run.config.marketing_per_day:
                return Skip.DAILY_CAP
        return day

    def zone_of(self, route: Route) -> str:
        return self.run.clock.zone_of_locale(route.contact.locale)


def format_distance(metres: float, t: Translator) -> str:
    if metres < 1000:
        return t("{meters} m", meters=t.number(int(round(metres / 10) * 10)))
    return t("{km} km", km=t.number(round(metres / 1000, 1)))


def pickup_code(secret: bytes, customer_id: str, store_id: str, sample: str, day: str) -> str:
    """Six characters the store counter can check by recomputing them (same secret, same day)."""
    digest = hmac.new(secret, f"{customer_id}|{store_id}|{sample}|{day}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:6]


class SamplePickup:
    def repeat_s(self, job: Job) -> float:
        assert isinstance(job, SamplePickupJob)
        return job.repeat_after_days * 86400

    async def choose(self, run: RunContext) -> list[Planned]:
        job, report = run.job, run.report
        assert isinstance(job, SamplePickupJob)
        # The shared state loads while the locations do (with Redis: several replies in flight at once).
        loading = asyncio.ensure_future(Screen.load(run))
        try:
            located = await run.book.locations(run.now)
        except BaseException:
            loading.cancel()
            raise
        report.candidates = len(located)
        stock = run.catalog.open_with_stock(job.sample, run.now)
        hits_of = run.geo.nearest_many([(loc.lat, loc.lon) for loc in located], job.radius_km * 1000,
                                       NEAREST_CANDIDATES, among=stock.keys())
        hits, screen = await asyncio.gather(hits_of, loading)
        reachable: list[tuple[int, str, Route]] = []
        for i, loc in enumerate(located):
            reach = screen.reach(loc.customer_id, loc.customer_id)
            if isinstance(reach, Skip):
                report.skip(reach)
            else:
                reachable.append((i, loc.customer_id, reach))
        # Nearest shoppers first, so a store's last samples go to the shoppers closest to it.
        reachable.sort(key=lambda r: hits[r[0]][0][1] if hits[r[0]] else math.inf)
        planned: list[Planned] = []
        stores = run.catalog.stores
        for i, customer_id, route in reachable:
            found = hits[i]
            if not found:
                report.skip(Skip.NO_STORE_NEARBY)
                continue
            day = await screen.timing(customer_id, stores[found[0][0]].timezone)
            if isinstance(day, Skip):
                report.skip(day)
                continue
            pick = next(((sid, d) for sid, d in found if stock[sid] > 0), None)
            if pick is None:
                report.skip(Skip.NO_STOCK)
                continue
            stock[pick[0]] -= 1
            planned.append(Planned(customer_id, route, day, customer_id, {"store": pick[0], "distance_m": pick[1]}))
        return planned

    def compose(self, run: RunContext, item: Planned, t: Translator) -> Composed:
        job = run.job
        assert isinstance(job, SamplePickupJob) and item.customer_id is not None
        store = run.catalog.stores[item.values["store"]]
        hours = store.hours_on(run.now)
        fields = {
            "sample": run.catalog.sample_name(job.sample, t.locale),
            "store": store.name(t.locale),
            "distance": format_distance(item.values["distance_m"], t),
            "hours": hours.text() if hours is not None else "",
            "code": pickup_code(run.code_secret, item.customer_id, store.id, job.sample, item.day),
        }
        text = t.template(SAMPLE_TEMPLATE, run.shop.currency, **fields)
        return Composed(text, {**fields, "address": store.address})


def balance_due(order: dict[str, Any]) -> float:
    total = sum(float(i.get("price", 0)) for i in order.get("items") or ())
    paid = sum(float(p.get("amount", 0)) * (1 if p.get("transaction_type") == "payment" else -1)
               for p in order.get("payment_history") or ())
    return round(total - paid, 2)


def _store_users(contacts: dict[str, list[Contact]]) -> dict[str, str]:
    """Customers signed in to a store account: customer -> store user (the most recent contact's)."""
    users: dict[str, str] = {}
    for customer_id, items in contacts.items():
        signed = [c for c in items if c.store_user]
        if signed:
            users[customer_id] = str(max(signed, key=lambda c: c.last_inbound).store_user)
    return users


def _orders(commerce: CommerceBackend, store_user: str) -> list[dict[str, Any]]:
    try:
        ids = commerce.get_user_details(store_user).get("orders") or []
        return [commerce.get_order_details(order_id) for order_id in ids]
    except CommerceError:
        return []


async def _per_order(run: RunContext, find: Callable[[list[dict[str, Any]]], list[tuple[str, dict[str, Any]]]]
                     ) -> list[Planned]:
    """Shared by order-based pushes: for each signed-in customer, the first subject `find` reports
    that was not sent before; then opt-out, channels, quiet hours and the cap."""
    report = run.report
    screen = await Screen.load(run)
    planned: list[Planned] = []
    for customer_id, store_user in _store_users(screen.contacts).items():
        due = [(subject, values) for subject, values in find(_orders(run.commerce, store_user))
               if subject not in screen.marked]
        if not due:
            continue
        report.candidates += 1
        subject, values = due[0]
        reach = screen.reach(customer_id, None)
        if isinstance(reach, Skip):
            report.skip(reach)
            continue
        day = await screen.timing(customer_id, screen.zone_of(reach))
        if isinstance(day, Skip):
            report.skip(day)
            continue
        planned.append(Planned(customer_id, reach, day, subject, values))
    return planned


class PaymentReminder:
    def repeat_s(self, job: Job) -> float:
        assert isinstance(job, PaymentReminderJob)
        return job.repeat_after_hours * 3600

    async def choose(self, run: RunContext) -> list[Planned]:
        job = run.job
        assert isinstance(job, PaymentReminderJob)

        def unpaid(orders: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
            found = []
            for order in orders:
                if "pending" not in str(order.get("status")):
                    continue
                if job.unpaid == "balance_due":
                    amount = balance_due(order)
                else:
                    amount = round(sum(float(i.get("price", 0)) for i in order.get("items") or ()), 2)
                if amount > 0:
                    found.append((order["order_id"], {"order_id": order["order_id"], "amount": amount}))
            return found

        return await _per_order(run, unpaid)

    def compose(self, run: RunContext, item: Planned, t: Translator) -> Composed:
        values = item.values
        text = t.template(PAYMENT_TEMPLATE, run.shop.currency, order_id=values["order_id"], amount=values["amount"])
        return Composed(text, {"order_id": values["order_id"], "amount": t.money(values["amount"], run.shop.currency)})


class LogisticsAlert:
    def repeat_s(self, job: Job) -> float:
        assert isinstance(job, LogisticsAlertJob)
        return job.repeat_after_days * 86400

    async def choose(self, run: RunContext) -> list[Planned]:
        def problems(orders: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
            return [(f"{a.tracking_id}:{a.problem}", {"order_id": a.order_id, "tracking_id": a.tracking_id,
                                                       "problem": str(a.problem), "days": a.days,
                                                       "weather": str(a.weather) if a.weather else None})
                    for a in run.logistics.anomalies(orders)]

        return await _per_order(run, problems)

    def compose(self, run: RunContext, item: Planned, t: Translator) -> Composed:
        values = item.values
        weather = values.get("weather")
        problem = alert_text(t, Anomaly(values["order_id"], values["tracking_id"], Problem(values["problem"]),
                                        int(values.get("days") or 0), Weather(weather) if weather else None))
        text = t("There is a problem with the delivery of your order {order_id}: {problem}. We are looking into "
                 "it and will keep you posted; reply here if you have any questions.",
                 order_id=values["order_id"], problem=problem)
        return Composed(text, {"order_id": values["order_id"], "tracking_id": values["tracking_id"],
                               "problem": problem})


class GroupCampaign:
    def repeat_s(self, job: Job) -> float:
        return 0.0

    async def choose(self, run: RunContext) -> list[Planned]:
        run.report.candidates = 1
        if not run.has_group:
            run.report.skip(Skip.NO_CHANNEL)
            return []
        zone = run.config.timezone
        if run.clock.quiet(zone):
            run.report.skip(Skip.QUIET_HOURS)
            return []
        return [Planned(None, None, run.clock.day(zone), None)]

    def compose(self, run: RunContext, item: Planned, t: Translator) -> Composed:
        job = run.job
        assert isinstance(job, GroupCampaignJob)
        text = job.text.get(t.locale) or next(v for v in job.text.values() if v.strip())
        return Composed(text, {})


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Choosing makes a few hundred thousand short-lived tuples and records, none in a reference cycle; the
    cyclic collector would rescan them (and the whole heap) again and again, a third of the run's time.
    Reference counting frees them anyway; the collector resumes afterwards (unless it was off before)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def choose(run: RunContext) -> list[Planned]:
    """The recipients of one run of `run.job` (its kind's `choose`), counted in `run.report`."""
    with cyclic_gc_paused():
        planned = await KINDS[run.job.kind].choose(run)
    run.report.chosen = len(planned)
    return planned


KINDS: dict[str, Kind] = {
    "sample_pickup": SamplePickup(),
    "payment_reminder": PaymentReminder(),
    "logistics_alert": LogisticsAlert(),
    "group_campaign": GroupCampaign(),
}
