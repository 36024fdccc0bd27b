"""The shopper's recent shop events (browse, favourite, cart) that a channel reported, kept in the session.

A bounded list, newest last, so the session stays small whatever a page sends; the recommendations skill
reads it. Products are kept by name (the demo store's, or ours), resolved once when the event arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.commerce.base import CommerceBackend, CommerceError
from core.commerce.products import knowledge
from core.message import EventKind
from core.sessions import Session

SLOT = "shop_events"
KEPT = 20
SHOP_EVENTS = (EventKind.BROWSE, EventKind.FAVOURITE, EventKind.CART)


@dataclass(frozen=True, slots=True)
class ShopEvent:
    kind: EventKind
    product: str  # its name
    at: float


def product_name(commerce: CommerceBackend, product_id: str) -> str | None:
    """The name of a demo store product id, or of one of ours (core/data/products.yaml); None if unknown."""
    own = next((p.name for p in knowledge().products.values() if p.product_id == product_id), None)
    if own is not None:
        return own
    try:
        return str(commerce.get_product_details(product_id)["name"])
    except CommerceError:
        return None


def record(session: Session, commerce: CommerceBackend, kind: EventKind, product_id: str | None, at: float) -> bool:
    """Keep the event (the last KEPT of them); False when the product is unknown."""
    name = product_name(commerce, product_id) if product_id else None
    if name is None:
        return False
    kept = [e for e in session.slots.get(SLOT) or [] if e[:2] != [str(kind), name]]  # the latest of each counts
    kept.append([str(kind), name, at])
    session.slots[SLOT] = kept[-KEPT:]
    return True


def recent(session: Session) -> list[ShopEvent]:
    """The kept events, newest first."""
    kept = session.slots.get(SLOT) or []
    return [ShopEvent(EventKind(kind), str(name), float(at)) for kind, name, at in reversed(kept)]
