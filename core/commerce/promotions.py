"""The promotion engine: full-reduction tiers, shop and platform coupons, cross-shop gifts.

Pure functions on Decimal money; the rules come from YAML (core/commerce/promotions.yaml, whose header
states the stacking rules). `best_plan` tries every allowed coupon combination (at most one coupon per shop
plus at most one platform coupon: a handful of options) and keeps the one that saves the most;
`next_tier_offers` finds the lowest-priced items that lift a shop to its next full-reduction step.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import yaml

BUNDLED = Path(__file__).resolve().parent / "promotions.yaml"
CENT = Decimal("0.01")
ZERO = Decimal(0)


class PromotionRulesError(ValueError):
    """A promotions file that cannot be used; the message names the file and the problem."""


def money(value: Any) -> Decimal:
    """Exact money from YAML or JSON numbers (str() first, so 0.1 stays 0.1)."""
    return Decimal(str(value)).quantize(CENT)


@dataclass(frozen=True, slots=True)
class Names:
    """A name per locale; falls back to English, then to any."""

    by_locale: Mapping[str, str]

    def get(self, locale: str) -> str:
        return self.by_locale.get(locale) or self.by_locale.get("en") or next(iter(self.by_locale.values()), "")


@dataclass(frozen=True, slots=True)
class Step:
    threshold: Decimal
    off: Decimal


@dataclass(frozen=True, slots=True)
class FullReduction:
    """Either tiers (the highest reached counts) or `every` step off (up to max_off)."""

    tiers: tuple[Step, ...] = ()
    every: Step | None = None
    max_off: Decimal | None = None

    def discount(self, amount: Decimal) -> Decimal:
        if self.every is not None:
            off = (amount // self.every.threshold) * self.every.off
            return min(off, self.max_off) if self.max_off is not None else off
        reached = [s.off for s in self.tiers if amount >= s.threshold]
        return max(reached, default=ZERO)

    def next_step(self, amount: Decimal) -> Step | None:
        """The smallest amount above `amount` that gives more off, and the off there; None at the top."""
        now = self.discount(amount)
        if self.every is not None:
            if self.max_off is not None and now >= self.max_off:
                return None
            threshold = (amount // self.every.threshold + 1) * self.every.threshold
            return Step(threshold, self.discount(threshold))
        return next((s for s in self.tiers if s.threshold > amount and s.off > now), None)


@dataclass(frozen=True, slots=True)
class Coupon:
    id: str
    threshold: Decimal
    off: Decimal
    shop: str | None = None  # None: a platform coupon

    @property
    def platform(self) -> bool:
        return self.shop is None


@dataclass(frozen=True, slots=True)
class Gift:
    id: str
    name: Names
    min_shops: int
    min_total: Decimal


@dataclass(frozen=True, slots=True)
class Shop:
    id: str
    name: Names
    reduction: FullReduction | None
    products: frozenset[str]


@dataclass(frozen=True, slots=True)
class PromotionRules:
    shops: Mapping[str, Shop]
    default_shop: str
    coupons: tuple[Coupon, ...] = ()
    gifts: tuple[Gift, ...] = ()

    def shop_of(self, product_name: str) -> str:
        return next((s.id for s in self.shops.values() if product_name in s.products), self.default_shop)


@dataclass(frozen=True, slots=True)
class CartLine:
    name: str
    price: Decimal
    quantity: int = 1

    @property
    def amount(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True, slots=True)
class ShopPart:
    shop: str
    subtotal: Decimal
    reduction: Decimal
    coupon: Coupon | None = None
    coupon_off: Decimal = ZERO

    @property
    def payable(self) -> Decimal:
        return self.subtotal - self.reduction - self.coupon_off


@dataclass(frozen=True, slots=True)
class Plan:
    subtotal: Decimal
    parts: tuple[ShopPart, ...]
    platform_coupon: Coupon | None = None
    platform_off: Decimal = ZERO
    gifts: tuple[Gift, ...] = ()

    @property
    def total(self) -> Decimal:
        return sum((p.payable for p in self.parts), ZERO) - self.platform_off

    @property
    def saving(self) -> Decimal:
        return self.subtotal - self.total

    @property
    def coupons(self) -> tuple[Coupon, ...]:
        shop = tuple(p.coupon for p in self.parts if p.coupon is not None)
        return shop + ((self.platform_coupon,) if self.platform_coupon is not None else ())


@dataclass(frozen=True, slots=True)
class NextTierOffer:
    """Spend `gap` more at `shop` to reach `threshold` and get `extra_off` more off; `items` fill the gap."""

    shop: str
    gap: Decimal
    threshold: Decimal
    extra_off: Decimal
    items: tuple[tuple[str, Decimal], ...] = field(default=())


def _shop_subtotals(rules: PromotionRules, cart: Iterable[CartLine]) -> dict[str, Decimal]:
    subtotals: dict[str, Decimal] = {}
    for line in cart:
        shop = rules.shop_of(line.name)
        subtotals[shop] = subtotals.get(shop, ZERO) + line.amount
    return subtotals


def _gifts(rules: PromotionRules, shops: int, total: Decimal) -> tuple[Gift, ...]:
    return tuple(g for g in rules.gifts if shops >= g.min_shops and total >= g.min_total)


def best_plan(rules: PromotionRules, cart: Sequence[CartLine]) -> Plan:
    """The combination of coupons that saves the most under the stacking rules (ties: fewer coupons)."""
    subtotals = _shop_subtotals(rules, cart)
    reduced: dict[str, tuple[Decimal, Decimal]] = {}  # shop -> (subtotal, full reduction)
    for shop_id, subtotal in subtotals.items():
        shop = rules.shops.get(shop_id)
        reduction = shop.reduction.discount(subtotal) if shop is not None and shop.reduction is not None else ZERO
        reduced[shop_id] = (subtotal, min(reduction, subtotal))
    # Rule 2: a shop coupon counts against the shop's subtotal after its full reduction.
    shop_ids = sorted(reduced)
    choices: list[list[Coupon | None]] = [
        [None, *(c for c in rules.coupons if c.shop == shop_id and reduced[shop_id][0] - reduced[shop_id][1]
                 >= c.threshold)]
        for shop_id in shop_ids
    ]
    platform: list[Coupon | None] = [None, *(c for c in rules.coupons if c.platform)]
    best: Plan | None = None
    for combo in itertools.product(*choices):
        parts = tuple(
            ShopPart(shop_id, reduced[shop_id][0], reduced[shop_id][1], coupon,
                     min(coupon.off, reduced[shop_id][0] - reduced[shop_id][1]) if coupon else ZERO)
            for shop_id, coupon in zip(shop_ids, combo, strict=True)
        )
        after_shops = sum((p.payable for p in parts), ZERO)
        for coupon in platform:
            # Rule 3: the platform coupon counts against the cart after full reductions and shop coupons.
            if coupon is not None and after_shops < coupon.threshold:
                continue
            off = min(coupon.off, after_shops) if coupon is not None else ZERO
            plan = Plan(sum(subtotals.values(), ZERO), parts, coupon, off)
            if best is None or (plan.saving, -len(plan.coupons)) > (best.saving, -len(best.coupons)):
                best = plan
    if best is None:  # an empty cart
        return Plan(ZERO, ())
    gifts = _gifts(rules, sum(1 for s in subtotals.values() if s > 0), best.total)
    return Plan(best.subtotal, best.parts, best.platform_coupon, best.platform_off, gifts)


def next_tier_offers(
    rules: PromotionRules, cart: Sequence[CartLine], catalog: Iterable[tuple[str, Decimal]], limit: int = 3
) -> list[NextTierOffer]:
    """Per shop of the cart (and per shop with a full reduction when the cart is empty), the gap to the next
    full-reduction step and the `limit` lowest-priced catalog items that each close it alone; smallest gap first.

    `catalog` holds (product name, price) pairs of items on sale; several per product are fine (the lowest
    price that closes the gap is kept).
    """
    subtotals = _shop_subtotals(rules, cart)
    by_shop: dict[str, list[tuple[str, Decimal]]] = {}
    for name, price in catalog:
        by_shop.setdefault(rules.shop_of(name), []).append((name, price))
    offers = []
    for shop_id, shop in rules.shops.items():
        if shop.reduction is None or (subtotals and shop_id not in subtotals):
            continue
        subtotal = subtotals.get(shop_id, ZERO)
        step = shop.reduction.next_step(subtotal)
        if step is None:
            continue
        gap = step.threshold - subtotal
        # The lowest price per product that closes the gap alone (a product's cheaper variants might not).
        fitting: dict[str, Decimal] = {}
        for name, price in by_shop.get(shop_id, ()):
            if price >= gap:
                fitting[name] = min(fitting.get(name, price), price)
        items = tuple(sorted(fitting.items(), key=lambda kv: (kv[1], kv[0]))[:limit])
        offers.append(NextTierOffer(shop_id, gap, step.threshold, step.off - shop.reduction.discount(subtotal),
                                    items))
    return sorted(offers, key=lambda o: (o.gap, o.shop))


# -- rules from YAML -----------------------------------------------------------------------------------------


def _names(raw: Any, where: str) -> Names:
    if isinstance(raw, str):
        return Names({"en": raw})
    if not isinstance(raw, dict) or not raw:
        raise PromotionRulesError(f"{where}: name must be a text or a mapping of locale to text")
    return Names({str(k): str(v) for k, v in raw.items()})


def _reduction(raw: Any, where: str) -> FullReduction | None:
    if raw is None:
        return None
    if "every" in raw:
        cap = raw.get("max_discount")
        return FullReduction(every=Step(money(raw["every"]), money(raw["discount"])),
                             max_off=money(cap) if cap is not None else None)
    tiers = tuple(sorted((Step(money(t), money(o)) for t, o in raw.get("tiers") or ()), key=lambda s: s.threshold))
    if not tiers:
        raise PromotionRulesError(f"{where}: full_reduction needs tiers, or every and discount")
    return FullReduction(tiers=tiers)


def parse_rules(data: Mapping[str, Any], source: str = "<promotions>") -> PromotionRules:
    try:
        shops = {
            str(shop_id): Shop(str(shop_id), _names(raw.get("name", shop_id), f"{source}: shops.{shop_id}"),
                               _reduction(raw.get("full_reduction"), f"{source}: shops.{shop_id}"),
                               frozenset(map(str, raw.get("products") or ())))
            for shop_id, raw in (data.get("shops") or {}).items()
        }
        coupons = tuple(
            Coupon(str(c["id"]), money(c["threshold"]), money(c["discount"]),
                   None if c.get("platform") else str(c["shop"]))
            for c in data.get("coupons") or ()
        )
        gifts = tuple(
            Gift(str(g["id"]), _names(g.get("name", g["id"]), f"{source}: gifts.{g['id']}"),
                 int(g.get("min_shops", 1)), money(g.get("min_total", 0)))
            for g in data.get("gifts") or ()
        )
    except (KeyError, TypeError, AttributeError, ArithmeticError) as exc:
        raise PromotionRulesError(f"{source}: invalid promotion rules: {exc!r}") from None
    default = str(data.get("default_shop") or next(iter(shops), ""))
    if default not in shops:
        raise PromotionRulesError(f"{source}: default_shop {default!r} is not one of the shops")
    unknown = [c.id for c in coupons if c.shop is not None and c.shop not in shops]
    if unknown:
        raise PromotionRulesError(f"{source}: coupons of unknown shops: {', '.join(unknown)}")
    return PromotionRules(shops, default, coupons, gifts)


@cache
def load_rules(path: Path = BUNDLED) -> PromotionRules:
    """The rules in `path`, read once per process (the file is part of the deployment, not edited live)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PromotionRulesError(f"{path}: cannot read promotion rules: {exc}") from None
    return parse_rules(data or {}, str(path))
