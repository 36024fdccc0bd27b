"""Nearby stores and free samples: the shop's stores in the city the shopper names, with today's hours,
whether they are open now, and the free samples they still have. Without a city, the cities with stores
to choose from (the next message answers that question, core.skills.flow).

The stores are the push package's catalog (core/data/stores.yaml, or `pushes.stores_file`); pushes use the
same stores for "a free sample waits at the store 800 m from you".
"""

from __future__ import annotations

from core.message import Button, Reply
from core.push.stores import Catalog, Store
from core.skills import flow
from core.skills.base import SkillContext
from core.skills.choices import sentences

INTENT = "store_nearby"


def cities(catalog: Catalog) -> dict[str, list[Store]]:
    """Stores by city (its English name, else its first name), in the catalog's order."""
    found: dict[str, list[Store]] = {}
    for store in catalog.stores.values():
        if store.city:
            found.setdefault(store.city.get("en") or next(iter(store.city.values())), []).append(store)
    return found


def named_city(catalog: Catalog, text: str) -> list[Store]:
    """The stores of the city the text names, in any locale's name (empty when it names none)."""
    folded = text.casefold()
    for stores in cities(catalog).values():
        if any(name.casefold() in folded for name in stores[0].city.values()):
            return stores
    return []


def describe_store(ctx: SkillContext, catalog: Catalog, store: Store) -> str:
    t = ctx.t
    hours = store.hours_on(ctx.now)
    today = (t("open today {hours}", hours=hours.text()) if hours is not None else t("closed today"))
    now = t("open now") if store.is_open(ctx.now) else t("closed now")
    line = t("· {store}, {address}: {today}, {now}.", store=store.name(t.locale), address=store.address,
             today=today, now=now)
    samples = [t("{sample} ({count} left)", sample=catalog.sample_name(sample, t.locale), count=count)
               for sample, count in store.samples.items() if count > 0]
    if samples:
        line = sentences(t, (line, t("Free samples: {samples}.", samples=t(", ").join(samples))))
    return line


async def store_nearby(ctx: SkillContext) -> list[Reply]:
    t, catalog = ctx.t, ctx.stores
    if catalog is None or not cities(catalog):
        return [Reply(text=t("I don't have a list of our stores yet. A colleague can tell you where to find us: "
                             "just ask for a human."))]
    stores = named_city(catalog, ctx.text)
    if stores:
        city = stores[0].city.get(t.locale) or stores[0].city.get("en", "")
        lines = [t("Our stores in {city}:", city=city), *(describe_store(ctx, catalog, s) for s in stores)]
        lines.append(t("Free samples are given at the counter while stock lasts, one per person."))
        return [Reply(text="\n".join(lines))]
    names = [group[0].city.get(t.locale) or city for city, group in cities(catalog).items()]
    flow.ask(ctx, INTENT, "city", {}, names)
    return [Reply(text=t("We have stores in {cities}. Which city are you in?", cities=t(", ").join(names)),
                  buttons=tuple(Button(name, name) for name in names))]
