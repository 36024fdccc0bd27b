"""Product questions: ingredients, usage, specs and care, from our product knowledge (core.commerce.products)
and, for the demo store's products, the options the shop sells them in.

A question that names no product is about the product discussed last (kept in the session), else the
shopper is asked which one. Facts of a health product always end with the locale's health disclaimer.
"""

from __future__ import annotations

from core.commerce.base import CommerceError
from core.commerce.products import Fact, ProductKnowledge, knowledge
from core.locale import N_
from core.message import Reply
from core.shaping import Shaper
from core.skills.base import SkillContext

LAST_PRODUCT = "last_product"  # session slot: the product the shopper asked about last
OPTIONS_SHOWN, VALUES_SHOWN = 3, 6

KIND_TEXT = {
    "ingredients": N_("Ingredients"),
    "usage": N_("How to use"),
    "specs": N_("Specs"),
    "care": N_("Care"),
    "safety": N_("Safety"),
}


def _product_facts(ctx: SkillContext, kb: ProductKnowledge) -> list[Fact]:
    facts = kb.facts_for(ctx.text, ctx.t.locale)
    if facts:
        return facts
    last = ctx.session.slots.get(LAST_PRODUCT)
    # No product named: the one asked about last, with the kind of fact this question asks for.
    return kb.facts_for(f"{last} {ctx.text}", ctx.t.locale) if last else []


def store_options(ctx: SkillContext, kb: ProductKnowledge, name: str) -> str | None:
    """What the demo store sells `name` in ("颜色: black, white; 尺码: S, M, L"), if it sells it."""
    product_id = ctx.commerce.list_all_product_types().get(name)
    if product_id is None:
        return None
    try:
        variants = ctx.commerce.get_product_details(product_id)["variants"].values()
    except CommerceError:
        return None
    values: dict[str, list[str]] = {}
    for variant in variants:
        for option, value in variant["options"].items():
            if str(value) not in values.setdefault(option, []):
                values[option].append(str(value))
    t = ctx.t
    parts = [t("{option}: {values}", option=kb.option_name(option, t.locale),
               values=t(", ").join(vals[:VALUES_SHOWN]))
             for option, vals in list(values.items())[:OPTIONS_SHOWN]]
    return t("; ").join(parts) if parts else None


async def product_question(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    kb = knowledge()
    facts = _product_facts(ctx, kb)
    if not facts:
        return [Reply(text=t("Which product would you like to know about? Tell me its name and what you'd like "
                             "to know (ingredients, how to use it, specs)."))]
    lines: list[str] = []
    for name in dict.fromkeys(f.product for f in facts):
        ctx.session.slots[LAST_PRODUCT] = name
        lines.append(t("{product}:", product=kb.local_name(name, t.locale)))
        lines += [t("· {kind}: {fact}", kind=t(KIND_TEXT[f.kind]), fact=f.text) for f in facts if f.product == name]
        options = store_options(ctx, kb, name)
        if options:
            lines.append(t("· In our shop: {options}", options=options))
    text = "\n".join(lines)
    pack = t.pack
    if pack is not None and any(f.health for f in facts):
        text = Shaper.with_disclaimer(pack, text)  # always, whatever words the question used
    return [Reply(text=text)]
