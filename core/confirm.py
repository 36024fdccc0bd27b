"""Writes wait for an explicit yes (the store's policy): the bot lists the details, the shopper answers.

    reply = ask_to_confirm(ctx, "cancel_pending_order", {"order_id": ..., "reason": ...}, summary)
    ... next turn ...
    replies = await settle_pending(ctx)   # None: this message does not answer the question

A skill (or the LLM agent) that wants a write calls `ask_to_confirm`: the write is kept in the session as a
`PendingConfirmation` and the shopper sees the summary with Yes and No. On the next turn the engine calls
`settle_pending` first: a yes runs the write on the commerce backend (a refusal is explained, nothing
changes), a no drops it. A message that reads as nothing at all (no intent, no entity: "hmm", "wait") is asked
about once more, the write kept; anything else drops it and the message is handled as usual (the shopper moved
on). A pending write lapses after `CONFIRM_TTL_S`: a late yes is told so, and nothing is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from core.commerce.base import WRITE_OPERATIONS, CommerceError
from core.message import Button, Reply
from core.sessions import PendingConfirmation
from core.skills.base import SkillContext

log = logging.getLogger("kefu.confirm")

CONFIRM_TTL_S = 15 * 60
YES, NO = "yes", "no"  # the buttons' payloads

# Whole-message answers only: "yes, but change the address" is not a plain yes.
_YES = re.compile(
    r"(?:yes|y|yep|yeah|yup|ok|okay|sure|confirm(?:ed)?|go ahead|do it|please do"
    r"|是|是的|对|对的|好|好的|好吧|行|可以|确认|确定|没问题|嗯|嗯嗯|同意"
    r"|はい|ええ|お願いします|お願い|大丈夫です|確認しました"
    r"|نعم|أجل|أكيد|موافق|تمام|حسنا)",
    re.I,
)
_NO = re.compile(
    r"(?:no|n|nope|nah|don'?t|stop|never ?mind|not now"
    r"|不|不要|不用|不用了|不是|否|算了|先不|不了|别"
    r"|いいえ|いや|やめて|やめます|結構です"
    r"|لا|كلا|لا شكرا)",
    re.I,
)
_PUNCTUATION = r"[\s.,!?。，！？、~～…]+"
_TRIM = re.compile(rf"^{_PUNCTUATION}|{_PUNCTUATION}$")
# Courtesy around a yes or a no ("yes please", "好的，谢谢", "はい、お願いします") keeps it a plain answer.
_COURTESY = re.compile(
    r"^(?:please|thanks?|thank you|of course|请|麻烦了?|谢谢|吧|啊|呀|呢|お願いします|お願い|ありがとうございます"
    r"|من فضلك|شكرا)$", re.I)
_PARTS = re.compile(_PUNCTUATION)

#: What the shopper is told once a write succeeded, by operation name: filled by the skills that ask for
#: those writes (`register_done_text`). Without an entry a plain "Done." is said.
DoneText = Callable[[SkillContext, dict[str, Any], dict[str, Any]], list[Reply]]
_DONE_TEXTS: dict[str, DoneText] = {}


def register_done_text(action: str, done_text: DoneText) -> None:
    _DONE_TEXTS[action] = done_text


def _plain(word: str) -> bool | None:
    if _YES.fullmatch(word):
        return True
    if _NO.fullmatch(word):
        return False
    return None


def read_answer(text: str) -> bool | None:
    """True for a plain yes, False for a plain no (courtesy words around it allowed), None for anything else."""
    answer = _TRIM.sub("", text)
    whole = _plain(answer)
    if whole is not None:
        return whole
    meant = {_plain(part) for part in _PARTS.split(answer) if part and not _COURTESY.fullmatch(part)}
    return meant.pop() if len(meant) == 1 else None


def ask_to_confirm(ctx: SkillContext, action: str, args: dict[str, Any], summary: str) -> Reply:
    """Keep `action(**args)` pending in the session and ask the shopper to confirm `summary`."""
    if action not in WRITE_OPERATIONS:
        raise ValueError(f"{action} is not a write operation")
    ctx.session.pending = PendingConfirmation(action, dict(args), summary, ctx.now + CONFIRM_TTL_S)
    return _question(ctx, summary)


def _question(ctx: SkillContext, summary: str) -> Reply:
    t = ctx.t
    question = t("Shall I go ahead? Please answer yes or no.")
    return Reply(text=f"{summary}\n{question}", buttons=(Button(t("Yes"), YES), Button(t("No"), NO)))


async def settle_pending(ctx: SkillContext) -> list[Reply] | None:
    """Answer a pending confirmation; None when there is none or this message does not answer it."""
    pending = ctx.session.pending
    if pending is None:
        return None
    ctx.session.pending = None
    answer = read_answer(ctx.text)
    t = ctx.t
    if pending.expires_at < ctx.now:
        if answer:
            return [Reply(text=t("Sorry, that question has expired, so I haven't changed anything. Please ask me "
                                 "again."))]
        return None
    if answer is None:
        if pending.asked_again or ctx.understanding.intent is not None or ctx.understanding.entities:
            return None  # a new request (or a second non-answer): the write is dropped
        pending.asked_again = True
        ctx.session.pending = pending
        return [Reply(text=t("Sorry, I need a clear yes or no for this:")), _question(ctx, pending.summary)]
    if not answer:
        return [Reply(text=t("All right, I haven't changed anything."))]
    try:
        result = getattr(ctx.commerce, pending.action)(**pending.args)
    except CommerceError as exc:
        log.info("confirmed %s refused: %s", pending.action, exc)
        return [Reply(text=t("Sorry, that could not be done: {reason}", reason=str(exc).removeprefix("Error: ")))]
    done_text = _DONE_TEXTS.get(pending.action)
    return done_text(ctx, pending.args, result) if done_text else [Reply(text=t("Done."))]
