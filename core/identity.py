"""Channel users to customers, and linking one shopper's channel users into one customer.

A channel user is its own customer until linked. Linking happens on proof, such as a
phone number the platform verified (a Telegram contact, the mini-program's phone API):
the second channel user with the same verified phone joins the first one's customer,
and both conversations become one.
"""

from __future__ import annotations

import hashlib
import re

from core.message import ChannelUser
from core.sessions import Session, SessionStore


def phone_digest(phone: str) -> str:
    """A stable key for a phone number that does not store the number itself."""
    digits = re.sub(r"\D", "", phone)
    if digits.startswith("86") and len(digits) == 13:  # +86 mainland mobile
        digits = digits[2:]
    if len(digits) < 6:
        raise ValueError("not a phone number")
    return hashlib.sha256(f"kefu-phone:{digits}".encode()).hexdigest()[:32]


def merge_sessions(keep: Session, absorb: Session, history_limit: int) -> Session:
    """One conversation out of two: history interleaved by time, `keep`'s slots win."""
    history = sorted(keep.history + absorb.history, key=lambda entry: entry.at)
    merged = Session(
        customer_id=keep.customer_id,
        history=history[-2 * history_limit:],
        slots={**absorb.slots, **keep.slots},
        locale=keep.locale or absorb.locale,
        handoff=keep.handoff if keep.handoff.state != "bot" else absorb.handoff,
        pending=keep.pending or absorb.pending,
        low_confidence_streak=0,
        updated_at=max(keep.updated_at, absorb.updated_at),
    )
    return merged


class Identity:
    def __init__(self, store: SessionStore, history_limit: int) -> None:
        self.store = store
        self.history_limit = history_limit

    async def customer_of(self, user: ChannelUser) -> str:
        return await self.store.resolve(user.key)

    async def link_verified_phone(self, user: ChannelUser, phone: str) -> str:
        """Attach a platform-verified phone to `user`; returns the customer both now belong to."""
        mine = await self.store.resolve(user.key)
        owner = await self.store.register_phone(phone_digest(phone), mine)
        if owner != mine:
            await self.store.merge_customers(owner, mine, self._merge)
        return owner

    async def link(self, first: ChannelUser, second: ChannelUser) -> str:
        """Link two channel users an operator or a verified flow vouches for; `first`'s customer stays."""
        keep = await self.store.resolve(first.key)
        absorb = await self.store.resolve(second.key)
        await self.store.merge_customers(keep, absorb, self._merge)
        return keep

    def _merge(self, keep: Session, absorb: Session) -> Session:
        return merge_sessions(keep, absorb, self.history_limit)
