"""Hand-over to a human agent: the state machine of one conversation, kept in its session (`session.handoff`).

    bot ──request──> queued ──claim──> agent ──release, or idle──> bot
     ^                 │                 └─────resolve─────> closed ──request──> queued
     └──timeout, cancel┘

While queued or held by an agent the bot stays silent: the shopper's messages go to the agent console
(core.desk). Every transition happens under the customer's turn lock (a turn, or an agent action that
takes the lock through the session store), so a shopper message and an agent's claim never interleave.
"""

from __future__ import annotations

from core.sessions import Handoff, HandoffState, Session

ACTIVE = (HandoffState.QUEUED, HandoffState.AGENT)
TRANSITIONS: dict[HandoffState, frozenset[HandoffState]] = {
    HandoffState.BOT: frozenset({HandoffState.QUEUED}),
    HandoffState.CLOSED: frozenset({HandoffState.QUEUED}),
    HandoffState.QUEUED: frozenset({HandoffState.AGENT, HandoffState.BOT, HandoffState.CLOSED}),
    HandoffState.AGENT: frozenset({HandoffState.BOT, HandoffState.CLOSED}),
}
QUEUE_TIMEOUT = "queue timeout"
IDLE = "idle"


class HandoffConflict(Exception):
    """The conversation is not in a state that allows this (already claimed, held by someone else, released)."""


def is_active(session: Session) -> bool:
    """Queued or held: the bot must not answer."""
    return session.handoff.state in ACTIVE


def move(session: Session, to: HandoffState, now: float, reason: str | None = None,
         agent_id: str | None = None) -> Handoff:
    """Go to state `to`; returns the previous handoff. Raises HandoffConflict for a transition not in the table."""
    before = session.handoff
    if to not in TRANSITIONS[before.state]:
        raise HandoffConflict(f"cannot go from {before.state} to {to}")
    session.handoff = Handoff(
        state=to, agent_id=agent_id if to == HandoffState.AGENT else None, since=now,
        reason=reason or before.reason, ticket_id=before.ticket_id, last_activity=now,
        channel=before.channel, user_id=before.user_id, chat_id=before.chat_id,
    )
    return before


def request_handoff(session: Session, reason: str, now: float) -> bool:
    """Queue the conversation for an agent; False when it already was (queued or held)."""
    if is_active(session):
        return False
    move(session, HandoffState.QUEUED, now, reason)
    return True


def expiry(session: Session, now: float, queue_timeout_s: float, idle_release_s: float) -> str | None:
    """Why an active hand-over has run out, if it has: nobody claimed it, or the held conversation went quiet.

    Either way the shopper goes back to the bot, so nobody is left talking to a wall.
    """
    handoff = session.handoff
    if handoff.state == HandoffState.QUEUED and now - handoff.since > queue_timeout_s:
        return QUEUE_TIMEOUT
    if handoff.state == HandoffState.AGENT and now - max(handoff.last_activity, handoff.since) > idle_release_s:
        return IDLE
    return None


def claim(session: Session, agent_id: str, now: float) -> None:
    if session.handoff.state != HandoffState.QUEUED:
        raise HandoffConflict(f"the conversation is {session.handoff.state}"
                              + (f" with {session.handoff.agent_id}" if session.handoff.agent_id else ""))
    move(session, HandoffState.AGENT, now, agent_id=agent_id)


def check_holder(session: Session, agent_id: str) -> None:
    """An agent acts only on a conversation they hold (a queued one may be released or resolved by anyone)."""
    handoff = session.handoff
    if handoff.state == HandoffState.AGENT and handoff.agent_id != agent_id:
        raise HandoffConflict(f"the conversation is held by {handoff.agent_id}")
    if handoff.state not in ACTIVE:
        raise HandoffConflict(f"the conversation is back with the {handoff.state}")


def release(session: Session, agent_id: str, now: float, reason: str = "released") -> None:
    check_holder(session, agent_id)
    move(session, HandoffState.BOT, now, reason)


def resolve(session: Session, agent_id: str, now: float, reason: str) -> None:
    check_holder(session, agent_id)
    move(session, HandoffState.CLOSED, now, reason)
