"""The agent desk: hand-overs opened by the bot, worked by human agents in the console (core.console).

Inside a turn (the engine holds the customer's lock):
  holds()   a queued or held conversation: the shopper's message goes to the consoles, the bot stays silent
  open()    the bot decided to hand over: a ticket, its priority, a place in the queue

Agent actions (each takes the customer's turn lock through the session store, so it never interleaves
with a shopper's turn on any channel or hub process): claim, reply, release, resolve. `sweep()` (every
`agents.sweep_interval_s` in each process) returns idle and unclaimed conversations to the bot.

Live events go through the desk store's pub/sub to every process; each process fans them out to its
console sockets (`listen()`) and pushes relayed web chat messages to the sockets it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from core.agent_queue import DeskStore
from core.config import Config
from core.handoff import (
    IDLE,
    QUEUE_TIMEOUT,
    HandoffConflict,
    check_holder,
    claim,
    expiry,
    is_active,
    move,
    release,
    resolve,
)
from core.locale import N_, Catalogs, Translator
from core.message import Message, Reply
from core.outbound import Address, Outbound
from core.profiles import Profiles, priority, priority_now, rank
from core.sessions import HandoffState, HistoryEntry, LockTimeout, Session, SessionStore
from core.tickets import Ticket, TicketEvent, TicketState

log = logging.getLogger("kefu.desk")

LISTENER_BACKLOG = 1000  # events a slow console may fall behind by before it is told to resync
MAX_REPLY_CHARS = 4000
APOLOGY_REASONS = ("complaint", "emotion")

# What the shopper is told when the hand-over changes (in their language, from the catalogs).
JOINED = N_("A customer service colleague has joined the chat and will reply shortly.")
BACK_TO_BOT = N_("You're chatting with the assistant again. If you need a person, just ask for a human.")
RESOLVED = N_("This conversation has been marked as resolved. Thank you for your patience!")
UNCLAIMED = N_("Sorry, none of our colleagues could take your chat in time. I'm back to help; "
               "ask for a human again whenever you like.")


class TicketNotFound(Exception):
    pass


class Desk:
    def __init__(
        self, config: Config, sessions: SessionStore, store: DeskStore, profiles: Profiles, catalogs: Catalogs,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.agents = config.agents
        self.sessions = sessions
        self.store = store
        self.profiles = profiles
        self.catalogs = catalogs
        self.clock = clock
        self.outbound = Outbound()
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()
        self.instance = secrets.token_hex(6)  # this process, so it skips its own relayed deliveries

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._pump(), name="desk-events"),
                       loop.create_task(self._sweep_forever(), name="desk-sweep")]
        with contextlib.suppress(TimeoutError):  # Redis down at start: the pump keeps trying
            await asyncio.wait_for(self._ready.wait(), 5)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def agent_messages_since(self, channel: str, user_id: str, since: float) -> list[HistoryEntry]:
        """An agent's messages to this channel user after `since` (epoch seconds), from the transcript: for a chat
        that was not connected when they were sent (a web page reopened later, an HTTP-only client)."""
        customer_id = await self.sessions.resolve(f"{channel}:{user_id}")
        session = await self.sessions.load(customer_id)
        return [e for e in session.history if e.role == "agent" and e.at > since]

    # -- inside a turn --------------------------------------------------------------------------

    async def holds(self, customer_id: str, session: Session, message: Message, text: str, now: float) -> bool:
        """Step 6: True when a human has (or is about to have) the conversation; the message went to them."""
        if not is_active(session):
            return False
        why = expiry(session, now, self.agents.queue_timeout_s, self.agents.idle_release_s)
        if why is not None:
            await self._expire(session, why, now)
            return False
        handoff = session.handoff
        remember_address(session, message)
        handoff.last_activity = now
        content = text or describe(message)
        if handoff.ticket_id is None or not content:
            return True
        event = TicketEvent(now, "shopper", "shopper", content, message.channel)
        # Published first: the console's latency is what the agent feels; the ticket log follows.
        await self.store.publish({"type": "message", "ticket": handoff.ticket_id, "customer": customer_id,
                                  **asdict(event)})
        await self.store.add_event(handoff.ticket_id, event)
        if handoff.state == HandoffState.AGENT:
            await self.store.hold(handoff.ticket_id, now)
        return True

    async def open(self, customer_id: str, session: Session, message: Message, questions: list[str],
                   emotion: float, locale: str, now: float) -> Ticket:
        """The bot has queued the conversation (core.handoff.request_handoff): open its ticket and queue it."""
        reason = session.handoff.reason or "human_agent"
        profile = self.profiles.build(session)
        base = priority(emotion, profile.tier, profile.order_value, reason)
        ticket = Ticket(
            id=Ticket.new_id(), customer_id=customer_id, opened_at=now, reason=reason, locale=locale,
            channel=message.channel, question=questions[-1] if questions else "", unanswered=questions[:-1],
            priority=base, emotion=emotion, tier=profile.tier, order_value=profile.order_value,
            profile=profile.as_dict(),
        )
        session.handoff.ticket_id = ticket.id
        remember_address(session, message)
        await self.store.save_ticket(ticket, new=True)
        await self.store.add_event(ticket.id, TicketEvent(now, "opened", "bot", reason, message.channel))
        await self.store.enqueue(ticket.id, rank(base, now))
        await self.store.publish({"type": "queue", "ticket": ticket.id, "state": ticket.state})
        log.info("hand-over %s opened for %s: %s, priority %.1f", ticket.id, customer_id, reason, base)
        return ticket

    # -- agent actions --------------------------------------------------------------------------

    async def claim(self, ticket_id: str, agent_id: str) -> Ticket:
        now = self.clock()
        ticket = await self._ticket(ticket_id)
        async with self._conversation(ticket) as session:
            claim(session, agent_id, now)
            ticket.state, ticket.agent_id, ticket.claimed_at = TicketState.CLAIMED, agent_id, now
            await self.store.save_ticket(ticket)
            await self.store.dequeue(ticket.id)
            await self.store.hold(ticket.id, now)
            notice = self._notice(session, JOINED, now)
            await self._log(ticket, TicketEvent(now, "claimed", agent_id))
            address = address_of(session)
        await self.store.publish({"type": "ticket", "ticket": ticket.id, "state": ticket.state, "agent": agent_id})
        await self._deliver(address, notice, "bot")
        return ticket

    async def reply(self, ticket_id: str, agent_id: str, text: str) -> bool:
        """The agent's message to the shopper, on the shopper's channel; False when it could not be delivered."""
        text = text.strip()
        if not text or len(text) > MAX_REPLY_CHARS:
            raise ValueError(f"a reply is 1 to {MAX_REPLY_CHARS} characters")
        now = self.clock()
        ticket = await self._ticket(ticket_id)
        async with self._conversation(ticket) as session:
            check_holder(session, agent_id)
            if session.handoff.state != HandoffState.AGENT:
                raise HandoffConflict("claim the conversation before replying")
            address = address_of(session)
            session.handoff.last_activity = now
            session.remember(HistoryEntry("agent", text, address.channel if address else "console", now),
                             self.config.sessions.history_turns)
            event = TicketEvent(now, "agent", agent_id, text, address.channel if address else None)
            await self.store.add_event(ticket.id, event)
            await self.store.hold(ticket.id, now)
        await self.store.publish({"type": "message", "ticket": ticket.id, "customer": ticket.customer_id,
                                  **asdict(event)})
        return await self._deliver(address, text, "agent")

    async def release(self, ticket_id: str, agent_id: str) -> Ticket:
        """Back to the bot."""
        now = self.clock()
        ticket = await self._ticket(ticket_id)
        async with self._conversation(ticket) as session:
            release(session, agent_id, now)
            notice = self._notice(session, BACK_TO_BOT, now)
            await self._close(ticket, TicketState.RELEASED, TicketEvent(now, "released", agent_id), now)
            address = address_of(session)
        await self.store.publish({"type": "ticket", "ticket": ticket.id, "state": ticket.state, "agent": agent_id})
        await self._deliver(address, notice, "bot")
        return ticket

    async def resolve(self, ticket_id: str, agent_id: str, reason: str, label: str | None = None) -> Ticket:
        """Closed with the agent's reason, and (for the learning loop) the intent the shopper's question was."""
        reason = " ".join(reason.split())[:500]
        if not reason:
            raise ValueError("a resolution needs a reason")
        now = self.clock()
        ticket = await self._ticket(ticket_id)
        async with self._conversation(ticket) as session:
            resolve(session, agent_id, now, reason)
            ticket.resolution, ticket.label = reason, label
            notice = self._notice(session, RESOLVED, now)
            await self._close(ticket, TicketState.RESOLVED, TicketEvent(now, "resolved", agent_id, reason), now)
            address = address_of(session)
        questions = [q for q in (*ticket.unanswered, ticket.question) if q.strip()]
        if questions:
            await self.store.push_resolution({
                "ticket": ticket.id, "texts": questions, "label": label, "reason": reason, "locale": ticket.locale,
                "agent": agent_id, "at": now, "escalation": ticket.reason,
            })
        await self.store.publish({"type": "ticket", "ticket": ticket.id, "state": ticket.state, "agent": agent_id})
        await self._deliver(address, notice, "bot")
        return ticket

    async def sweep(self) -> int:
        """Return idle held and unclaimed queued conversations to the bot; how many went back."""
        now = self.clock()
        idle_before = now - self.agents.idle_release_s
        candidates = [t for t, last in await self.store.held() if last < idle_before]
        for ticket in await self.store.tickets(await self.store.queued(10_000)):
            if now - ticket.opened_at > self.agents.queue_timeout_s:
                candidates.append(ticket.id)
        returned = 0
        for ticket_id in candidates:
            ticket = await self.store.ticket(ticket_id)
            if ticket is None:
                await self.store.unhold(ticket_id)
                await self.store.dequeue(ticket_id)
                continue
            try:
                async with self._conversation(ticket) as session:
                    why = expiry(session, now, self.agents.queue_timeout_s, self.agents.idle_release_s)
                    if why is None:
                        continue  # a message arrived meanwhile
                    await self._expire(session, why, now, ticket)
                    notice = self._notice(session, UNCLAIMED if why == QUEUE_TIMEOUT else BACK_TO_BOT, now)
                    address = address_of(session)
            except (HandoffConflict, LockTimeout):  # ended meanwhile, or a long turn holds it: next round
                continue
            returned += 1
            await self._deliver(address, notice, "bot")
        return returned

    # -- reads for the console ------------------------------------------------------------------

    async def queue(self) -> dict[str, Any]:
        now = self.clock()
        waiting = await self.store.tickets(await self.store.queued())
        held = await self.store.tickets([t for t, _ in await self.store.held()])
        return {
            "now": now,
            "queue": [listing(t, now) for t in waiting],
            "held": [listing(t, now) for t in sorted(held, key=lambda t: t.claimed_at or 0)],
        }

    async def conversation(self, ticket_id: str, agent_id: str) -> dict[str, Any]:
        """Everything the console shows for one ticket: transcript across channels, profile, history, suggestions."""
        now = self.clock()
        ticket = await self._ticket(ticket_id)
        session = await self.sessions.load(await self.sessions.resolve(ticket.customer_id))
        history = [t for t in await self.store.tickets_of(ticket.customer_id) if t.id != ticket.id]
        return {
            "ticket": {**listing(ticket, now), "profile": ticket.profile},
            "state": session.handoff.state if session.handoff.ticket_id == ticket.id else "ended",
            "transcript": [asdict(entry) for entry in session.history],
            "events": [asdict(e) for e in await self.store.events(ticket.id)],
            "history": [listing(t, now) for t in history],
            "suggestions": self.suggestions(ticket, agent_id),
        }

    def suggestions(self, ticket: Ticket, agent_id: str) -> list[str]:
        t = Translator(self.catalogs, ticket.locale)
        out = [t("Hello, this is {agent} from customer service. I've read our conversation and I'm looking "
                 "into it now.", agent=agent_id)]
        if ticket.reason in APOLOGY_REASONS or ticket.emotion > 0:
            out.append(t("I'm very sorry for the trouble. Let me sort this out for you right away."))
        if not ticket.profile.get("orders"):
            out.append(t("Could you tell me your order number, please?"))
        out.append(t("One moment please, I'm checking this for you."))
        out.append(t("Is there anything else I can help you with?"))
        return out

    # -- live events ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def listen(self) -> Any:
        """A queue of live events for one console socket, while the `with` lasts."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(LISTENER_BACKLOG)
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)

    async def _pump(self) -> None:
        first = True
        async for event in self.store.subscribe():
            kind = event.get("type")
            if kind == "ready":
                self._ready.set()
                if first:
                    first = False
                    continue
                event = {"type": "resync"}  # re-subscribed after an outage: events may have been missed
            if kind == "deliver":
                try:
                    await self._push_here(event)
                except Exception:  # a malformed relay must not stop the consoles' events
                    log.exception("relayed delivery failed")
                continue
            self._fan_out(event)

    def _fan_out(self, event: dict[str, Any]) -> None:
        for queue in list(self._listeners):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a console that stopped reading: make it start over
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait({"type": "resync"})

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.agents.sweep_interval_s)
            try:
                returned = await self.sweep()
                if returned:
                    log.info("%d idle or unclaimed conversation(s) returned to the bot", returned)
            except Exception:  # the store may be down; try again next round
                log.exception("desk sweep failed")

    # -- helpers --------------------------------------------------------------------------------

    async def _ticket(self, ticket_id: str) -> Ticket:
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        return ticket

    @contextlib.asynccontextmanager
    async def _conversation(self, ticket: Ticket) -> AsyncIterator[Session]:
        """The ticket's session under its customer's turn lock; saved on success, untouched on an error.

        A ticket the session no longer points to (it ended, or the turn that opened it failed to save)
        is closed on the way.
        """
        turn = await self.sessions.open_turn(ticket.customer_id, None)
        assert turn is not None  # no dedup key: never a duplicate
        try:
            if turn.session.handoff.ticket_id != ticket.id or not ticket.state.open:
                if ticket.state.open:
                    await self._close(ticket, TicketState.EXPIRED, TicketEvent(self.clock(), "expired", "desk",
                                                                               "stale"), self.clock())
                    await self.store.publish({"type": "ticket", "ticket": ticket.id, "state": ticket.state})
                raise HandoffConflict(f"this hand-over has ended ({ticket.state})")
            yield turn.session
        except BaseException:
            await self.sessions.abandon_turn(turn)
            raise
        await self.sessions.close_turn(turn, turn.session)

    async def _close(self, ticket: Ticket, state: TicketState, event: TicketEvent, now: float) -> None:
        ticket.state, ticket.closed_at = state, now
        if state == TicketState.EXPIRED and ticket.resolution is None:
            ticket.resolution = event.text or None
        await self.store.save_ticket(ticket)
        await self.store.dequeue(ticket.id)
        await self.store.unhold(ticket.id)
        await self._log(ticket, event)

    async def _expire(self, session: Session, why: str, now: float, ticket: Ticket | None = None) -> None:
        """Back to the bot because nobody claimed it in time, or it went quiet (under the customer's lock)."""
        ticket_id = session.handoff.ticket_id
        move(session, HandoffState.BOT, now, why)
        if ticket is None and ticket_id is not None:
            ticket = await self.store.ticket(ticket_id)
        if ticket is not None and ticket.state.open:
            await self._close(ticket, TicketState.EXPIRED, TicketEvent(now, "expired", "desk", why), now)
            await self.store.publish({"type": "ticket", "ticket": ticket.id, "state": ticket.state})
        log.info("hand-over %s back to the bot: %s", ticket_id, "idle" if why == IDLE else why)

    async def _log(self, ticket: Ticket, event: TicketEvent) -> None:
        await self.store.add_event(ticket.id, event)

    def _notice(self, session: Session, msgid: str, now: float) -> str:
        """A hand-over notice in the shopper's language, kept in the transcript."""
        text = self.catalogs.gettext(session.locale or self.config.shop.default_locale, msgid)
        channel = session.handoff.channel or "console"
        session.remember(HistoryEntry("bot", text, channel, now), self.config.sessions.history_turns)
        return text

    async def _deliver(self, address: Address | None, text: str, author: str) -> bool:
        """Send `text` to the shopper; False when it could not be (nothing reached them from this process
        and no other process could have: an offline web chat, a channel refusing)."""
        if address is None:
            return False
        if await self.outbound.send(address, Reply(text=text), author):
            return True
        if self.outbound.per_process(address.channel) and self.store.shared:
            # The shopper's socket may be held by another hub process: each one tries its own.
            await self.store.publish({"type": "deliver", "origin": self.instance, "channel": address.channel,
                                      "user_id": address.user_id, "chat_id": address.chat_id, "text": text,
                                      "author": author})
            return True
        return False

    async def _push_here(self, event: dict[str, Any]) -> None:
        if event.get("origin") == self.instance:
            return
        address = Address(str(event["channel"]), str(event["user_id"]), str(event["chat_id"]))
        await self.outbound.send(address, Reply(text=str(event["text"])), str(event.get("author", "bot")))


def remember_address(session: Session, message: Message) -> None:
    handoff = session.handoff
    handoff.channel, handoff.user_id, handoff.chat_id = message.channel, message.user.user_id, message.chat.chat_id


def address_of(session: Session) -> Address | None:
    h = session.handoff
    if not (h.channel and h.user_id):
        return None
    return Address(h.channel, h.user_id, h.chat_id or h.user_id)


def describe(message: Message) -> str:
    """What a message without text was, for the agent."""
    if message.attachments:
        return " ".join(f"[{a.kind}]" for a in message.attachments)
    if message.location is not None and message.event is None:
        return f"[location {message.location.lat:.5f},{message.location.lon:.5f}]"
    return ""


def listing(ticket: Ticket, now: float) -> dict[str, Any]:
    out = ticket.summary()
    out["waiting_s"] = round(now - ticket.opened_at, 1)
    out["priority_now"] = priority_now(ticket.priority, ticket.opened_at, now) if ticket.state.open else ticket.priority
    out["tags"] = ticket.profile.get("tags", [])
    return out
