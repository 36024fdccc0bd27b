"""The demo store: the shared retail data set (tau2-bench retail), with the writes of SEMANTICS.md.

The shared file is never written: on first start it is copied to `<data_dir>/demo_store.json`; writes go to
an append-only journal beside it (see `core.commerce.journal`), so they survive a restart of the hub.

Every write follows ../shared/data/retail/SEMANTICS.md exactly. It works on copies of the records it may
change, so a refusal (`CommerceError`) found at any point leaves the store as it was; only a write that
passed every check is journalled and then put in place. Money is rounded to 2 decimals after every change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from core.commerce.base import CANCEL_REASONS, CommerceError
from core.commerce.journal import Journal, apply_entry

Record = dict[str, Any]

ADDRESS_FIELDS = ("address1", "address2", "city", "country", "state", "zip")  # db.json's key order


def _copy(record: Any) -> Any:
    """A deep copy; an orjson round trip is ~6x faster than copy.deepcopy on these records."""
    return orjson.loads(orjson.dumps(record))


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CommerceError(f"Error: {what} must be a string")
    return value


def _ids(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CommerceError(f"Error: {what} must be a list of item ids")
    return value


def _address(address1: Any, address2: Any, city: Any, state: Any, country: Any, zip: Any) -> Record:
    fields = {"address1": address1, "address2": address2, "city": city, "country": country, "state": state, "zip": zip}
    return {name: _text(fields[name], name) for name in ADDRESS_FIELDS}


def _is_gift_card(method: Record) -> bool:
    return method.get("source") == "gift_card"


def _payment(kind: str, amount: float, method_id: str) -> Record:
    return {"transaction_type": kind, "amount": amount, "payment_method_id": method_id}


def _lacking(order: Record, item_ids: list[str]) -> str | None:
    """The first id that `item_ids` holds more often than the order does, if any."""
    held = [item["item_id"] for item in order["items"]]
    return next((i for i in item_ids if item_ids.count(i) > held.count(i)), None)


def _match_items(order: Record, item_ids: list[str]) -> list[Record]:
    """The order's items, one for each id in `item_ids`: the first not yet taken with that id (so an order that
    holds an id twice has both entries changed when the id is listed twice). Counts are checked beforehand."""
    taken: set[int] = set()
    matched = []
    for item_id in item_ids:
        index = next(i for i, item in enumerate(order["items"]) if item["item_id"] == item_id and i not in taken)
        taken.add(index)
        matched.append(order["items"][index])
    return matched


class _Change:
    """The records one write may change, as working copies; nothing reaches the store unless it commits."""

    def __init__(self, store: DemoStore) -> None:
        self._store = store
        self.orders: dict[str, Record] = {}
        self.users: dict[str, Record] = {}

    def order(self, order_id: Any) -> Record:
        order_id = _text(order_id, "order_id")
        if order_id not in self.orders:
            if order_id not in self._store._orders:
                raise CommerceError("Error: order not found")
            self.orders[order_id] = _copy(self._store._orders[order_id])
        return self.orders[order_id]

    def user(self, user_id: Any) -> Record:
        user_id = _text(user_id, "user_id")
        if user_id not in self.users:
            if user_id not in self._store._users:
                raise CommerceError("Error: user not found")
            self.users[user_id] = _copy(self._store._users[user_id])
        return self.users[user_id]

    def payment_method(self, user_id: str, method_id: Any) -> Record:
        method_id = _text(method_id, "payment_method_id")
        method = self.user(user_id)["payment_methods"].get(method_id)
        if method is None:
            raise CommerceError("Error: payment method not found")
        return method

    def variant(self, product_id: str, item_id: str) -> Record | None:
        product = self._store._products.get(product_id)
        return None if product is None else product["variants"].get(item_id)


class DemoStore:
    """A `CommerceBackend` over the demo data set. `DemoStore(data)` alone is an in-memory store (no files)."""

    name = "demo"

    def __init__(self, data: dict[str, Any], journal: Journal | None = None) -> None:
        self._journal = journal
        self._install(data)

    def _install(self, data: dict[str, Any]) -> None:
        self._data = data
        self._users: dict[str, Record] = data["users"]
        self._orders: dict[str, Record] = data["orders"]
        self._products: dict[str, Record] = data["products"]
        self._by_email: dict[str, str] = {}
        self._by_name: dict[tuple[str, str], list[str]] = {}  # names never change; zips are read live
        for user_id, user in self._users.items():
            self._by_email.setdefault(user["email"].lower(), user_id)
            key = (user["name"]["first_name"].lower(), user["name"]["last_name"].lower())
            self._by_name.setdefault(key, []).append(user_id)
        self._product_types = {
            p["name"]: pid for pid, p in sorted(self._products.items(), key=lambda kv: kv[1]["name"])
        }

    @classmethod
    def open(
        cls, source: Path, data_dir: Path, *, fsync: bool = False, compact_over_bytes: int = 8 << 20
    ) -> DemoStore:
        """The store kept in `data_dir`: created from `source` (never written) on first start, else as last left.

        Each write is appended to the journal before it returns, so it survives a restart of the hub. `fsync`
        also syncs each append to disk, to survive power loss, for 0.2-10 ms a write. A journal over
        `compact_over_bytes` (~5,000 writes at 8 MiB) is folded into the snapshot when the store opens.
        """
        journal = Journal(data_dir, fsync=fsync)
        return cls(journal.open(source, compact_over_bytes=compact_over_bytes), journal)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()

    @property
    def data_dir(self) -> Path | None:
        """The folder of the store's files (skills keep their audit logs there); None for an in-memory store."""
        return self._journal.data_dir if self._journal is not None else None

    def _sync(self, *, lock_held: bool = False) -> None:
        """Take in what other hub processes sharing the data folder have written (one stat when nothing)."""
        if self._journal is None:
            return
        reloaded, entries = self._journal.catch_up(lock_held=lock_held)
        if reloaded is not None:
            self._install(reloaded)
        for entry in entries:
            apply_entry(self._data, entry)

    @contextmanager
    def _writing(self, op: str, args: dict[str, Any]) -> Iterator[_Change]:
        """Run one write: lock out other processes, catch up, let the body check and change working copies,
        then journal the changed records and put them in place. A CommerceError leaves everything as it was."""
        if self._journal is None:
            change = _Change(self)
            yield change
            apply_entry(self._data, self._changed(change))
            return
        with self._journal.locked(exclusive=True):
            self._sync(lock_held=True)
            change = _Change(self)
            yield change
            changes = self._changed(change)
            try:
                self._journal.append(op, args, changes)
            except OSError as exc:
                raise CommerceError("Error: the store could not save this change, nothing was changed") from exc
            apply_entry(self._data, changes)

    def _changed(self, change: _Change) -> dict[str, dict[str, Record]]:
        """The working copies that differ from the store's records (a user read only for a check is left out)."""
        return {
            "orders": {k: v for k, v in change.orders.items() if v != self._orders[k]},
            "users": {k: v for k, v in change.users.items() if v != self._users[k]},
        }

    # -- reads ---------------------------------------------------------------------------------------------

    def user_exists(self, user_id: str) -> bool:
        # No operation adds or removes users, so this needs no catch-up with other processes (it runs every turn).
        return user_id in self._users

    def find_user_id_by_email(self, email: str) -> str:
        """The user id (str) whose email equals `email`, ignoring case and surrounding spaces."""
        self._sync()
        user_id = self._by_email.get(_text(email, "email").strip().lower())
        if user_id is None:
            raise CommerceError("Error: user not found")
        return user_id

    def find_user_id_by_name_zip(self, first_name: str, last_name: str, zip: str) -> str:
        """The user id (str) with this first and last name (ignoring case and surrounding spaces) whose
        current default address has exactly this zip; the first such user in the store's order."""
        self._sync()
        key = (_text(first_name, "first_name").strip().lower(), _text(last_name, "last_name").strip().lower())
        zip = _text(zip, "zip")
        for user_id in self._by_name.get(key, ()):
            if self._users[user_id]["address"]["zip"] == zip:
                return user_id
        raise CommerceError("Error: user not found")

    def get_user_details(self, user_id: str) -> Record:
        """A copy of the user: user_id, name, address, email, payment_methods (gift cards with balance), orders."""
        self._sync()
        if not isinstance(user_id, str) or user_id not in self._users:
            raise CommerceError("Error: user not found")
        return _copy(self._users[user_id])

    def get_order_details(self, order_id: str) -> Record:
        """A copy of the order: order_id, user_id, address, items, status, fulfillments, payment_history, and the
        fields a write added (cancel_reason, return_*, exchange_*)."""
        self._sync()
        if not isinstance(order_id, str) or order_id not in self._orders:
            raise CommerceError("Error: order not found")
        return _copy(self._orders[order_id])

    def get_product_details(self, product_id: str) -> Record:
        """A copy of the product: name, product_id, variants (item_id -> options, available, price)."""
        self._sync()
        if not isinstance(product_id, str) or product_id not in self._products:
            raise CommerceError("Error: product not found")
        return _copy(self._products[product_id])

    def list_all_product_types(self) -> dict[str, str]:
        """Product name -> product id for the 50 product types, sorted by name."""
        return dict(self._product_types)

    # -- writes (SEMANTICS.md, row by row) -------------------------------------------------------------------

    def cancel_pending_order(self, order_id: str, reason: str) -> Record:
        """Cancel a `pending` order for 'no longer needed' or 'ordered by mistake'. Every payment_history entry
        gets a refund of its amount to its method appended (a gift card's balance goes up at once); status
        `cancelled`, `cancel_reason` set. Returns the order after the change."""
        with self._writing("cancel_pending_order", {"order_id": order_id, "reason": reason}) as change:
            order = change.order(order_id)
            if order["status"] != "pending":
                raise CommerceError("Error: non-pending order cannot be cancelled")
            if reason not in CANCEL_REASONS:
                raise CommerceError("Error: invalid reason, it must be 'no longer needed' or 'ordered by mistake'")
            refunds = []
            for payment in order["payment_history"]:
                method = change.payment_method(order["user_id"], payment["payment_method_id"])
                refunds.append(_payment("refund", payment["amount"], payment["payment_method_id"]))
                if _is_gift_card(method):
                    method["balance"] = round(method["balance"] + payment["amount"], 2)
            order["payment_history"].extend(refunds)
            order["status"] = "cancelled"
            order["cancel_reason"] = reason
            return _copy(order)

    def modify_pending_order_address(
        self, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
    ) -> Record:
        """Replace the shipping address of a pending order (status `pending` or `pending (item modified)`).
        Returns the order after the change."""
        args = {"order_id": order_id, "address1": address1, "address2": address2, "city": city, "state": state,
                "country": country, "zip": zip}
        with self._writing("modify_pending_order_address", args) as change:
            order = change.order(order_id)
            if "pending" not in order["status"]:
                raise CommerceError("Error: non-pending order cannot be modified")
            order["address"] = _address(address1, address2, city, state, country, zip)
            return _copy(order)

    def modify_pending_order_payment(self, order_id: str, payment_method_id: str) -> Record:
        """Pay a pending order (one `payment` in its history) with another of the user's methods: appends a
        `payment` of the amount by the new method, then a `refund` of it to the old one; gift card balances
        move at once (a new gift card must cover the amount). Returns the order after the change."""
        args = {"order_id": order_id, "payment_method_id": payment_method_id}
        with self._writing("modify_pending_order_payment", args) as change:
            order = change.order(order_id)
            if "pending" not in order["status"]:
                raise CommerceError("Error: non-pending order cannot be modified")
            new_method = change.payment_method(order["user_id"], payment_method_id)
            history = order["payment_history"]
            if len(history) != 1 or history[0]["transaction_type"] != "payment":
                raise CommerceError("Error: there should be exactly one payment for a pending order")
            old_id = history[0]["payment_method_id"]
            if old_id == payment_method_id:
                raise CommerceError("Error: the new payment method should be different from the current one")
            old_method = change.payment_method(order["user_id"], old_id)
            amount = history[0]["amount"]
            if _is_gift_card(new_method) and new_method["balance"] < amount:
                raise CommerceError("Error: insufficient gift card balance to pay for the order")
            history.append(_payment("payment", amount, payment_method_id))
            history.append(_payment("refund", amount, old_id))
            if _is_gift_card(new_method):
                new_method["balance"] = round(new_method["balance"] - amount, 2)
            if _is_gift_card(old_method):
                old_method["balance"] = round(old_method["balance"] + amount, 2)
            return _copy(order)

    def modify_pending_order_items(
        self, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
    ) -> Record:
        """Swap items of a `pending` order for other available variants of the same products (once: the status
        becomes `pending (item modified)`). item_ids[i] becomes new_item_ids[i], taking that variant's item_id,
        price and options; a listed id appearing twice changes two entries. The price difference
        round(sum(new - old), 2) is appended as a `payment` (> 0) or `refund` (otherwise) of its absolute
        value by `payment_method_id`; a gift card pays it at once (and must cover it). Returns the order."""
        args = {"order_id": order_id, "item_ids": item_ids, "new_item_ids": new_item_ids,
                "payment_method_id": payment_method_id}
        with self._writing("modify_pending_order_items", args) as change:
            order = change.order(order_id)
            if order["status"] != "pending":
                raise CommerceError("Error: non-pending order cannot be modified")
            item_ids = _ids(item_ids, "item_ids")
            new_item_ids = _ids(new_item_ids, "new_item_ids")
            missing = _lacking(order, item_ids)
            if missing is not None:
                raise CommerceError(f"Error: {missing} not found")
            if len(item_ids) != len(new_item_ids):
                raise CommerceError("Error: the number of items to be exchanged should match")
            items = _match_items(order, item_ids)
            variants = []
            difference = 0.0
            for item, new_item_id in zip(items, new_item_ids, strict=True):
                if new_item_id == item["item_id"]:
                    raise CommerceError("Error: the new item id should be different from the old item id")
                variant = change.variant(item["product_id"], new_item_id)
                if variant is None or not variant["available"]:
                    raise CommerceError(f"Error: new item {new_item_id} not found or available")
                variants.append(variant)
                difference += variant["price"] - item["price"]
            difference = round(difference, 2)
            method = change.payment_method(order["user_id"], payment_method_id)
            if _is_gift_card(method) and method["balance"] < difference:
                raise CommerceError("Error: insufficient gift card balance to pay for the new item")
            kind = "payment" if difference > 0 else "refund"
            order["payment_history"].append(_payment(kind, abs(difference), payment_method_id))
            if _is_gift_card(method):
                method["balance"] = round(method["balance"] - difference, 2)
            for item, variant in zip(items, variants, strict=True):
                item["item_id"] = variant["item_id"]
                item["price"] = variant["price"]
                item["options"] = _copy(variant["options"])
            order["status"] = "pending (item modified)"
            return _copy(order)

    def return_delivered_order_items(self, order_id: str, item_ids: list[str], payment_method_id: str) -> Record:
        """Request the return of items of a `delivered` order, refunded later to its original method or to one of
        the user's gift cards: status `return requested`, `return_items` (sorted ids), `return_payment_method_id`.
        No money moves yet. Returns the order after the change."""
        args = {"order_id": order_id, "item_ids": item_ids, "payment_method_id": payment_method_id}
        with self._writing("return_delivered_order_items", args) as change:
            order = change.order(order_id)
            if order["status"] != "delivered":
                raise CommerceError("Error: non-delivered order cannot be returned")
            method = change.payment_method(order["user_id"], payment_method_id)
            original = order["payment_history"][0]["payment_method_id"] if order["payment_history"] else None
            if not _is_gift_card(method) and payment_method_id != original:
                raise CommerceError("Error: payment method should be the original payment method or a gift card")
            item_ids = _ids(item_ids, "item_ids")
            if _lacking(order, item_ids) is not None:
                raise CommerceError("Error: some item not found")
            order["status"] = "return requested"
            order["return_items"] = sorted(item_ids)
            order["return_payment_method_id"] = payment_method_id
            return _copy(order)

    def exchange_delivered_order_items(
        self, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
    ) -> Record:
        """Request the exchange of items of a `delivered` order for available variants of the same products:
        status `exchange requested`, `exchange_items` and `exchange_new_items` (sorted ids),
        `exchange_payment_method_id`, `exchange_price_difference` = round(sum(new - old), 2) (a gift card must
        cover a positive one). No money moves yet. Returns the order after the change."""
        args = {"order_id": order_id, "item_ids": item_ids, "new_item_ids": new_item_ids,
                "payment_method_id": payment_method_id}
        with self._writing("exchange_delivered_order_items", args) as change:
            order = change.order(order_id)
            if order["status"] != "delivered":
                raise CommerceError("Error: non-delivered order cannot be exchanged")
            item_ids = _ids(item_ids, "item_ids")
            new_item_ids = _ids(new_item_ids, "new_item_ids")
            missing = _lacking(order, item_ids)
            if missing is not None:
                raise CommerceError(f"Error: number of {missing} not found")
            if len(item_ids) != len(new_item_ids):
                raise CommerceError("Error: the number of items to be exchanged should match")
            difference = 0.0
            for item, new_item_id in zip(_match_items(order, item_ids), new_item_ids, strict=True):
                variant = change.variant(item["product_id"], new_item_id)
                if variant is None or not variant["available"]:
                    raise CommerceError(f"Error: new item {new_item_id} not found or available")
                difference += variant["price"] - item["price"]
            difference = round(difference, 2)
            method = change.payment_method(order["user_id"], payment_method_id)
            if _is_gift_card(method) and method["balance"] < difference:
                raise CommerceError("Error: insufficient gift card balance to pay for the price difference")
            order["status"] = "exchange requested"
            order["exchange_items"] = sorted(item_ids)
            order["exchange_new_items"] = sorted(new_item_ids)
            order["exchange_payment_method_id"] = payment_method_id
            order["exchange_price_difference"] = difference
            return _copy(order)

    def modify_user_address(
        self, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
    ) -> Record:
        """Replace the user's default address. Returns the user after the change."""
        args = {"user_id": user_id, "address1": address1, "address2": address2, "city": city, "state": state,
                "country": country, "zip": zip}
        with self._writing("modify_user_address", args) as change:
            user = change.user(user_id)
            user["address"] = _address(address1, address2, city, state, country, zip)
            return _copy(user)

    # -- the whole store -------------------------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """A copy of the whole store: {"products", "users", "orders"}, as db.json lays it out."""
        self._sync()
        return _copy(self._data)

    def to_json(self) -> bytes:
        """The whole store as JSON in db.json's layout (4-space indent), keys sorted: byte-stable for a state."""
        self._sync()
        return json.dumps(self._data, indent=4, sort_keys=True).encode()
