"""The shopper asks for a person, complains, or is upset: queue the conversation for an agent.

The engine queues it first when it escalates on its own (emotion, VIP, repeated low confidence), with
that reason; the ticket and the agent console are the desk's (core.desk).
"""

from __future__ import annotations

from core.handoff import request_handoff
from core.message import Reply
from core.skills.base import SkillContext

APOLOGY_REASONS = ("complaint", "emotion")


async def human_agent(ctx: SkillContext) -> list[Reply]:
    request_handoff(ctx.session, ctx.understanding.intent or "human_agent", ctx.now)
    if ctx.session.handoff.reason in APOLOGY_REASONS:
        return [Reply(text=ctx.t("I'm sorry about this. I'm passing you to a human colleague right away; "
                                 "they will reply right here."))]
    return [Reply(text=ctx.t("I'm passing you to a human colleague. They will reply right here; "
                             "please stay in this chat."))]
