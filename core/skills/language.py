"""The shopper asked for a language ("English please", "日本語で"): confirm it in that language.

The engine has already switched the turn's locale and remembered the choice in the session
(core.locale.pick_locale); this skill only says so.
"""

from __future__ import annotations

from core.message import Reply
from core.skills.base import SkillContext

SWITCH_INTENT = "switch_locale"


async def switch_locale(ctx: SkillContext) -> list[Reply]:
    # One msgid: each catalog names its own language ("…in English", "…日本語で…").
    return [Reply(text=ctx.t("Of course. From now on I'll answer you in English."))]
