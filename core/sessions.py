"""Conversation sessions and the store that keeps them.

A turn opens with one store call that claims the platform message id (dedup),
resolves the channel user to a customer, takes the customer's lock and loads the
session; it closes with one call that saves the session, releases the lock and
marks the claim done. On Redis each of the two is one round trip (a Lua script),
which is what keeps a turn within twice the cost of a bare GET + SET.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import orjson


class StoreUnavailable(Exception):
    """The session backend cannot be reached; the turn must not go on."""


class LockTimeout(Exception):
    """Another turn of the same customer held the lock for too long."""


class LockLost(Exception):
    """The lock expired during the turn; the session was not saved."""


class HandoffState(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    AGENT = "agent"
    CLOSED = "closed"


@dataclass(slots=True)
class HistoryEntry:
    role: str  # "shopper", "bot" or "agent"
    text: str
    channel: str
    at: float
    intent: str | None = None


@dataclass(slots=True)
class Handoff:
    state: HandoffState = HandoffState.BOT
    agent_id: str | None = None
    since: float = 0.0  # when the state was entered
    reason: str | None = None
    ticket_id: str | None = None  # the ticket of the current (or last) hand-over
    last_activity: float = 0.0  # last message either way while queued or held (idle release)
    # Where the shopper last wrote from: an agent's reply goes back there.
    channel: str | None = None
    user_id: str | None = None
    chat_id: str | None = None


@dataclass(slots=True)
class PendingConfirmation:
    """A write the bot has described and awaits an explicit yes for."""

    action: str
    args: dict[str, Any]
    summary: str
    expires_at: float
    asked_again: bool = False  # the shopper did not answer once and was asked a second time


class Session:
    """One customer's conversation: bounded history, slots, locale, hand-over state, a pending write.

    Every turn reads and writes the whole session, but only a few turns read its history (the LLM,
    a hand-over). So stored entries stay the rows they were stored as until `history` is first read;
    a turn that only appends never builds them into objects.
    """

    __slots__ = (
        "_built",
        "_entries",
        "_fresh",
        "_rewrite",
        "customer_id",
        "handoff",
        "locale",
        "low_confidence_streak",
        "pending",
        "slots",
        "updated_at",
    )

    def __init__(
        self, customer_id: str, history: list[HistoryEntry] | None = None, slots: dict[str, Any] | None = None,
        locale: str | None = None, handoff: Handoff | None = None, pending: PendingConfirmation | None = None,
        low_confidence_streak: int = 0, updated_at: float = 0.0,
    ) -> None:
        self.customer_id = customer_id
        self._entries: list[Any] = history if history is not None else []  # HistoryEntry or stored rows
        self._built = True  # every item of _entries is a HistoryEntry
        # For stores that keep history as a list (RedisStore): entries appended since the load, or the whole
        # history to be written again (a new or merged session, or one stored the old way).
        self._fresh = 0
        self._rewrite = True
        self.slots = slots if slots is not None else {}
        self.locale = locale
        self.handoff = handoff if handoff is not None else Handoff()
        self.pending = pending
        self.low_confidence_streak = low_confidence_streak
        self.updated_at = updated_at

    @property
    def history(self) -> list[HistoryEntry]:
        if not self._built:
            self._entries[:] = [e if isinstance(e, HistoryEntry) else _entry(e) for e in self._entries]
            self._built = True
        return self._entries

    @history.setter
    def history(self, entries: list[HistoryEntry]) -> None:
        self._entries, self._built, self._rewrite = entries, True, True

    def remember(self, entry: HistoryEntry, limit: int) -> None:
        """Append to history, keeping the last `limit` shopper/bot exchanges."""
        entries = self._entries
        entries.append(entry)
        self._fresh += 1
        overflow = len(entries) - 2 * limit
        if overflow > 0:
            del entries[:overflow]

    def to_bytes(self) -> bytes:
        # History entries as arrays, not objects: a third smaller, and 4x faster both ways.
        return orjson.dumps({"history": [_row(e) for e in self._entries], **self._head()})

    def _head(self) -> dict[str, Any]:
        return {"slots": self.slots, "locale": self.locale, "handoff": self.handoff, "pending": self.pending,
                "low_confidence_streak": self.low_confidence_streak, "updated_at": self.updated_at}

    def to_parts(self) -> tuple[bytes, list[bytes], bool]:
        """For a store keeping history as a list: the session without history, the history rows to append
        (all of them when `rewrite`), and `rewrite`. A turn sends its two new entries, not the whole history."""
        entries = self._entries if self._rewrite else self._entries[max(0, len(self._entries) - self._fresh):]
        return orjson.dumps(self._head()), [orjson.dumps(_row(e)) for e in entries], self._rewrite

    @classmethod
    def from_parts(cls, customer_id: str, head: bytes | None, rows: list[bytes]) -> Session:
        """The session `to_parts` stored: its head (or a whole session stored before history became a list)
        and its history rows, oldest first."""
        session = cls.from_bytes(customer_id, head)
        if rows and not session._entries:
            session._entries = orjson.loads(b"[" + b",".join(rows) + b"]")
            session._built = False
            session._rewrite = False
        elif head and not session._entries:
            session._rewrite = False  # an empty history, already stored as a list
        return session

    @classmethod
    def from_bytes(cls, customer_id: str, data: bytes | str | None) -> Session:
        if not data:
            return cls(customer_id=customer_id)
        raw = orjson.loads(data)
        pending = raw.get("pending")
        handoff = raw.get("handoff") or {}
        session = cls(
            customer_id=customer_id,
            history=raw.get("history") or [],
            slots=raw.get("slots") or {},
            locale=raw.get("locale"),
            handoff=Handoff(**{**handoff, "state": HandoffState(handoff.get("state", "bot"))}),
            pending=PendingConfirmation(**pending) if pending else None,
            low_confidence_streak=raw.get("low_confidence_streak", 0),
            updated_at=raw.get("updated_at", 0.0),
        )
        session._built = not session._entries
        return session


def _row(entry: HistoryEntry | list[Any] | dict[str, Any]) -> Any:
    """A history entry as stored: a row."""
    if isinstance(entry, HistoryEntry):
        return (entry.role, entry.text, entry.channel, entry.at, entry.intent)
    return entry if isinstance(entry, list) else _row(_entry(entry))


def _entry(stored: list[Any] | dict[str, Any]) -> HistoryEntry:
    """A stored history entry: a row, or an object in sessions written before entries became rows."""
    return HistoryEntry(*stored) if isinstance(stored, list) else HistoryEntry(**stored)


@dataclass(slots=True)
class OpenTurn:
    """A turn that holds its customer's lock."""

    customer_id: str
    session: Session
    lock_token: str
    dedup_key: str | None


@dataclass(frozen=True, slots=True)
class StoreSettings:
    session_ttl_s: int = 7 * 24 * 3600
    lock_ttl_s: float = 60.0
    lock_wait_s: float = 10.0
    dedup_ttl_s: int = 24 * 3600
    pending_claim_ttl_s: int = 90
    unknown_queue_max: int = 10_000
    history_turns: int = 20  # shopper/bot exchanges kept (Session.remember bounds it the same way)


SessionMerge = Callable[[Session, Session], Session]


class SessionStore(Protocol):
    name: str

    async def open_turn(self, channel_user_key: str, dedup_key: str | None) -> OpenTurn | None:
        """Claim, resolve, lock, load. None means the message was claimed before (a retry)."""
        ...

    async def close_turn(self, turn: OpenTurn, session: Session) -> None: ...

    async def abandon_turn(self, turn: OpenTurn) -> None:
        """Release the lock and the claim without saving, so a retry is answered."""
        ...

    async def load(self, customer_id: str) -> Session: ...

    async def resolve(self, channel_user_key: str) -> str: ...

    async def register_phone(self, phone_digest: str, customer_id: str) -> str:
        """Record a verified phone for a customer; returns the customer that owns it."""
        ...

    async def merge_customers(self, keep: str, absorb: str, merge: SessionMerge) -> None:
        """Make `absorb`'s channel users part of `keep`, merging their sessions."""
        ...

    async def push_unknown(self, item: dict[str, Any]) -> None: ...

    async def list_unknown(self, limit: int = 100) -> list[dict[str, Any]]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


T = TypeVar("T")


def new_token() -> str:
    return secrets.token_hex(8)


async def wait_for_lock(attempt: Callable[[bool], Awaitable[tuple[str, T]]], wait_s: float) -> T:
    """Call `attempt(first)` until it is not ("locked", _); return the value of ("done", value).

    Only the first call has `first` true: that is the one that claims the dedup key.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.002
    first = True
    while True:
        status, value = await attempt(first)
        first = False
        if status == "done":
            return value
        if time.monotonic() >= deadline:
            raise LockTimeout
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


class CustomerLocks(Protocol):
    async def take_lock(self, customer_id: str, token: str) -> None: ...

    async def release_lock(self, customer_id: str, token: str) -> None: ...


@asynccontextmanager
async def holding(locks: CustomerLocks, customer_ids: Iterable[str]) -> AsyncIterator[None]:
    """Hold several customers' turn locks, taken in sorted order so two merges cannot deadlock."""
    token = new_token()
    held: list[str] = []
    try:
        for customer_id in sorted(set(customer_ids)):
            await locks.take_lock(customer_id, token)
            held.append(customer_id)
        yield
    finally:
        for customer_id in held:
            await locks.release_lock(customer_id, token)


class MemoryStore:
    """The embedded default: one process, nothing shared, nothing kept on restart."""

    name = "memory"

    def __init__(self, settings: StoreSettings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or StoreSettings()
        self._clock = clock
        self._sessions: dict[str, tuple[bytes, float]] = {}
        self._claims: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._identity: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._phones: dict[str, str] = {}
        self._unknown: deque[dict[str, Any]] = deque(maxlen=self.settings.unknown_queue_max)
        self._claim_order: OrderedDict[str, None] = OrderedDict()

    def _live(self, table: dict[str, tuple[str, float]], key: str) -> str | None:
        entry = table.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del table[key]
            return None
        return entry[0]

    def _purge_claims(self) -> None:
        # Claims are written in time order, so expired ones sit at the front.
        now = self._clock()
        while self._claim_order:
            key = next(iter(self._claim_order))
            entry = self._claims.get(key)
            if entry is not None and entry[1] > now:
                break
            self._claim_order.popitem(last=False)
            self._claims.pop(key, None)

    def _set_claim(self, key: str, state: str, ttl_s: float) -> None:
        self._claims[key] = (state, self._clock() + ttl_s)
        self._claim_order.pop(key, None)
        self._claim_order[key] = None

    async def open_turn(self, channel_user_key: str, dedup_key: str | None) -> OpenTurn | None:
        token = new_token()

        async def attempt(first: bool) -> tuple[str, OpenTurn | None]:
            if first and dedup_key is not None:
                self._purge_claims()
                if self._live(self._claims, dedup_key) is not None:
                    return "done", None
                self._set_claim(dedup_key, "pending", self.settings.pending_claim_ttl_s)
            customer_id = self._identity.get(channel_user_key, channel_user_key)
            if self._live(self._locks, customer_id) is not None:
                return "locked", None
            self._locks[customer_id] = (token, self._clock() + self.settings.lock_ttl_s)
            return "done", OpenTurn(customer_id, await self.load(customer_id), token, dedup_key)

        try:
            return await wait_for_lock(attempt, self.settings.lock_wait_s)
        except LockTimeout:
            if dedup_key is not None:
                self._claims.pop(dedup_key, None)
            raise

    async def close_turn(self, turn: OpenTurn, session: Session) -> None:
        if self._live(self._locks, turn.customer_id) != turn.lock_token:
            raise LockLost(turn.customer_id)
        self._sessions[turn.customer_id] = (session.to_bytes(), self._clock() + self.settings.session_ttl_s)
        del self._locks[turn.customer_id]
        if turn.dedup_key is not None:
            self._set_claim(turn.dedup_key, "done", self.settings.dedup_ttl_s)

    async def abandon_turn(self, turn: OpenTurn) -> None:
        if self._live(self._locks, turn.customer_id) == turn.lock_token:
            del self._locks[turn.customer_id]
        if turn.dedup_key is not None and self._live(self._claims, turn.dedup_key) == "pending":
            del self._claims[turn.dedup_key]

    async def load(self, customer_id: str) -> Session:
        entry = self._sessions.get(customer_id)
        if entry is None or entry[1] <= self._clock():
            self._sessions.pop(customer_id, None)
            return Session(customer_id=customer_id)
        return Session.from_bytes(customer_id, entry[0])

    async def resolve(self, channel_user_key: str) -> str:
        return self._identity.get(channel_user_key, channel_user_key)

    async def register_phone(self, phone_digest: str, customer_id: str) -> str:
        return self._phones.setdefault(phone_digest, customer_id)

    async def merge_customers(self, keep: str, absorb: str, merge: SessionMerge) -> None:
        if keep == absorb:
            return
        async with holding(self, (keep, absorb)):
            merged = merge(await self.load(keep), await self.load(absorb))
            merged.customer_id = keep
            self._sessions[keep] = (merged.to_bytes(), self._clock() + self.settings.session_ttl_s)
            self._sessions.pop(absorb, None)
            members = self._members.pop(absorb, {absorb})
            for member in members:
                self._identity[member] = keep
            self._members.setdefault(keep, {keep}).update(members)
            for phone, owner in self._phones.items():
                if owner == absorb:
                    self._phones[phone] = keep

    async def release_lock(self, customer_id: str, token: str) -> None:
        if self._live(self._locks, customer_id) == token:
            del self._locks[customer_id]

    async def take_lock(self, customer_id: str, token: str) -> None:
        async def attempt(_first: bool) -> tuple[str, None]:
            if self._live(self._locks, customer_id) is not None:
                return "locked", None
            self._locks[customer_id] = (token, self._clock() + self.settings.lock_ttl_s)
            return "done", None

        await wait_for_lock(attempt, self.settings.lock_wait_s)

    async def push_unknown(self, item: dict[str, Any]) -> None:
        self._unknown.appendleft(item)

    async def list_unknown(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._unknown)[:limit]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
