"""The shopper asks for a person (or complains): queue the conversation for an agent."""

from __future__ import annotations

from core.handoff import request_handoff
from core.message import Reply
from core.skills.base import SkillContext


async def human_agent(ctx: SkillContext) -> list[Reply]:
    reason = ctx.understanding.intent or "request"
    request_handoff(ctx.session, reason, ctx.now)
    return [Reply(text=ctx.t("I'm passing you to a human colleague. They will reply right here; "
                             "please stay in this chat."))]
