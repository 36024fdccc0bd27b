"""Hand-over to a human agent: the session's handoff state and its transitions.

While a conversation is queued or held by an agent the bot stays silent; the
agent console (issue 7) reads the queue and the transcript from the session.
"""

from __future__ import annotations

from core.sessions import Handoff, HandoffState, Session

ACTIVE = (HandoffState.QUEUED, HandoffState.AGENT)


def is_held(session: Session, now: float, queue_timeout_s: float) -> bool:
    """True while a human has (or is about to have) the conversation.

    A queue nobody picked up within `queue_timeout_s` returns the shopper to the bot,
    so nobody is left talking to a wall.
    """
    handoff = session.handoff
    if handoff.state == HandoffState.QUEUED and now - handoff.since > queue_timeout_s:
        session.handoff = Handoff(state=HandoffState.BOT, since=now, reason="queue timeout")
        return False
    return handoff.state in ACTIVE


def request_handoff(session: Session, reason: str, now: float) -> bool:
    """Queue the conversation for an agent; False when it already was."""
    if session.handoff.state in ACTIVE:
        return False
    session.handoff = Handoff(state=HandoffState.QUEUED, since=now, reason=reason)
    return True
