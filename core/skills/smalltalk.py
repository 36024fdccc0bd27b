"""Greetings and goodbyes."""

from __future__ import annotations

from core.message import Button, Reply
from core.skills.base import SkillContext


async def greet(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    text = t("Hello! I'm the {shop} assistant. I can check your orders, returns, promotions and sizes. "
             "What can I do for you?", shop=ctx.shop.name)
    return [Reply(text=text, buttons=(
        Button(t("Where is my order?"), t("Where is my order?")),
        Button(t("Talk to a human"), t("human please")),
    ))]


async def thanks_bye(ctx: SkillContext) -> list[Reply]:
    return [Reply(text=ctx.t("You're welcome! Come back any time."))]
