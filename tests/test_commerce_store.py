"""The demo store against ../shared/data/retail/SEMANTICS.md: every row, its effects and its refusals.

Orders are picked from the real db.json by what a row needs (status, payment method, items); expected values
are computed here from db.json, not from the store. Each test works on its own copy in a temp dir.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.commerce.base import READ_OPERATIONS, WRITE_OPERATIONS, CommerceBackend, CommerceError
from core.commerce.demo_store import DemoStore
from core.config import PROJECT_ROOT

SHARED_DB = PROJECT_ROOT.parent / "shared" / "data" / "retail" / "db.json"
ADDRESS = {"address1": "1 Harbour Road", "address2": "Flat 2", "city": "Hong Kong", "state": "HK",
           "country": "China", "zip": "999077"}
Db = dict[str, Any]


# -- helpers: pick real records by what a test needs ------------------------------------------------------


@pytest.fixture(scope="session")
def db() -> Db:
    """db.json as read-only reference data (tests never change it: the store works on its own copy)."""
    return orjson.loads(SHARED_DB.read_bytes())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DemoStore]:
    s = DemoStore.open(SHARED_DB, tmp_path / "var")
    yield s
    s.close()


def method_source(db: Db, order: dict[str, Any], method_id: str) -> str:
    return str(db["users"][order["user_id"]]["payment_methods"][method_id]["source"])


def pick_order(db: Db, status: str, where: Callable[[dict[str, Any]], bool] = lambda o: True) -> dict[str, Any]:
    """The first order in db.json with this status for which `where` holds."""
    for order in db["orders"].values():
        if order["status"] == status and where(order):
            return order
    raise LookupError(f"no {status} order fits")


def paid_with(db: Db, source: str) -> Callable[[dict[str, Any]], bool]:
    def check(order: dict[str, Any]) -> bool:
        history = order["payment_history"]
        return len(history) == 1 and method_source(db, order, history[0]["payment_method_id"]) == source

    return check


def other_method(db: Db, order: dict[str, Any], source: str | None = None) -> str | None:
    """One of the order's user's methods other than the one that paid (of `source`, if given)."""
    paid = order["payment_history"][0]["payment_method_id"]
    for method_id, method in db["users"][order["user_id"]]["payment_methods"].items():
        if method_id != paid and (source is None or method["source"] == source):
            return method_id
    return None


def alternative(db: Db, item: dict[str, Any], where: Callable[[dict[str, Any]], bool] = lambda v: True) -> str | None:
    """An available variant of the item's product, other than the item, for which `where` holds."""
    for variant_id, variant in db["products"][item["product_id"]]["variants"].items():
        if variant_id != item["item_id"] and variant["available"] and where(variant):
            return variant_id
    return None


def unavailable(db: Db, item: dict[str, Any]) -> str | None:
    for variant_id, variant in db["products"][item["product_id"]]["variants"].items():
        if variant_id != item["item_id"] and not variant["available"]:
            return variant_id
    return None


def variant(db: Db, item_id: str) -> dict[str, Any]:
    for product in db["products"].values():
        if item_id in product["variants"]:
            return dict(product["variants"][item_id])
    raise LookupError(item_id)


def foreign_item(db: Db, order: dict[str, Any]) -> str:
    """An available item id of a product the order does not hold."""
    held = {item["product_id"] for item in order["items"]}
    for product_id, product in db["products"].items():
        if product_id not in held:
            return next(vid for vid, v in product["variants"].items() if v["available"])
    raise LookupError("every product is in the order")


def journal_size(store: DemoStore) -> int:
    assert store._journal is not None
    return store._journal.journal_path.stat().st_size


def assert_refused(store: DemoStore, call: Callable[[], Any], match: str) -> None:
    """The call raises CommerceError matching `match`, and nothing changed: not the store, not the journal."""
    before, size = orjson.dumps(store._data), journal_size(store)
    with pytest.raises(CommerceError, match=match):
        call()
    assert orjson.dumps(store._data) == before
    assert journal_size(store) == size


def is_two_decimals(x: float) -> bool:
    return round(x, 2) == x


# -- the protocol --------------------------------------------------------------------------------------------


def test_the_demo_store_implements_every_operation_of_the_protocol(store: DemoStore) -> None:
    backend: CommerceBackend = store
    for name in (*READ_OPERATIONS, *WRITE_OPERATIONS, "user_exists"):
        assert callable(getattr(backend, name)), name
        assert name in CommerceBackend.__dict__, name


# -- reads ---------------------------------------------------------------------------------------------------


def test_find_user_by_email_ignores_case(store: DemoStore) -> None:
    assert store.find_user_id_by_email("noah.brown7922@example.com") == "noah_brown_6181"
    assert store.find_user_id_by_email("Noah.Brown7922@EXAMPLE.com") == "noah_brown_6181"
    with pytest.raises(CommerceError, match="user not found"):
        store.find_user_id_by_email("nobody@example.com")


def test_find_user_by_name_and_zip_ignores_case_of_names_but_not_the_zip(store: DemoStore, db: Db) -> None:
    user = db["users"]["yusuf_rossi_9620"]
    zip_code = user["address"]["zip"]
    assert store.find_user_id_by_name_zip("Yusuf", "Rossi", zip_code) == "yusuf_rossi_9620"
    assert store.find_user_id_by_name_zip("yusuf", "ROSSI", zip_code) == "yusuf_rossi_9620"
    for first, last, wrong in (("Yusuf", "Rossi", "00000"), ("Yusuf", "Ross", zip_code), ("Yusu", "Rossi", zip_code)):
        with pytest.raises(CommerceError, match="user not found"):
            store.find_user_id_by_name_zip(first, last, wrong)


def test_gets_return_copies_that_cannot_change_the_store(store: DemoStore) -> None:
    order = store.get_order_details("#W2611340")
    order["status"] = "cancelled"
    order["items"].clear()
    user = store.get_user_details("noah_brown_6181")
    user["payment_methods"].clear()
    product = store.get_product_details("9523456873")
    product["variants"].clear()
    assert store.get_order_details("#W2611340")["status"] == "processed"
    assert store.get_order_details("#W2611340")["items"]
    assert store.get_user_details("noah_brown_6181")["payment_methods"]
    assert store.get_product_details("9523456873")["variants"]


def test_unknown_records_are_refused(store: DemoStore) -> None:
    for call, match in (
        (lambda: store.get_user_details("nobody_1"), "user not found"),
        (lambda: store.get_order_details("#W0000000"), "order not found"),
        (lambda: store.get_product_details("0"), "product not found"),
    ):
        with pytest.raises(CommerceError, match=match):
            call()
    assert not store.user_exists("nobody_1")
    assert store.user_exists("noah_brown_6181")


def test_product_types_map_names_to_ids_sorted_by_name(store: DemoStore, db: Db) -> None:
    types = store.list_all_product_types()
    assert len(types) == 50
    assert list(types) == sorted(types)
    assert all(db["products"][pid]["name"] == name for name, pid in types.items())


# -- cancel pending order --------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["credit_card", "paypal"])
def test_cancel_refunds_each_payment_to_its_method(store: DemoStore, db: Db, source: str) -> None:
    order = pick_order(db, "pending", paid_with(db, source))
    payment = order["payment_history"][0]
    result = store.cancel_pending_order(order["order_id"], "no longer needed")
    after = store.get_order_details(order["order_id"])
    assert result == after
    assert after["status"] == "cancelled"
    assert after["cancel_reason"] == "no longer needed"
    assert after["payment_history"] == [
        payment,
        {"transaction_type": "refund", "amount": payment["amount"], "payment_method_id": payment["payment_method_id"]},
    ]
    assert {k: v for k, v in after.items() if k not in ("status", "cancel_reason", "payment_history")} == {
        k: v for k, v in order.items() if k not in ("status", "payment_history")
    }
    assert store.get_user_details(order["user_id"]) == db["users"][order["user_id"]]  # no balance to move


def test_cancel_puts_a_gift_card_payment_back_on_the_card_at_once(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", paid_with(db, "gift_card"))
    payment = order["payment_history"][0]
    card = db["users"][order["user_id"]]["payment_methods"][payment["payment_method_id"]]
    store.cancel_pending_order(order["order_id"], "ordered by mistake")
    after = store.get_order_details(order["order_id"])
    assert after["cancel_reason"] == "ordered by mistake"
    assert after["payment_history"][-1] == {
        "transaction_type": "refund", "amount": payment["amount"], "payment_method_id": card["id"]}
    balance = store.get_user_details(order["user_id"])["payment_methods"][card["id"]]["balance"]
    assert balance == round(card["balance"] + payment["amount"], 2)


def test_cancel_after_a_payment_change_refunds_every_history_entry(store: DemoStore, db: Db) -> None:
    """SEMANTICS: "for each entry of payment_history, append a refund": the refund entry too, as the benchmark does."""
    order = pick_order(db, "pending", lambda o: paid_with(db, "credit_card")(o) and other_method(db, o, "gift_card")
                       is not None and db["users"][o["user_id"]]["payment_methods"][other_method(db, o, "gift_card")]
                       ["balance"] >= o["payment_history"][0]["amount"])
    old = order["payment_history"][0]
    card_id = other_method(db, order, "gift_card")
    assert card_id is not None
    card_balance = db["users"][order["user_id"]]["payment_methods"][card_id]["balance"]
    store.modify_pending_order_payment(order["order_id"], card_id)
    store.cancel_pending_order(order["order_id"], "no longer needed")
    after = store.get_order_details(order["order_id"])
    amount = old["amount"]
    assert [(p["transaction_type"], p["payment_method_id"], p["amount"]) for p in after["payment_history"]] == [
        ("payment", old["payment_method_id"], amount),
        ("payment", card_id, amount),
        ("refund", old["payment_method_id"], amount),
        ("refund", old["payment_method_id"], amount),
        ("refund", card_id, amount),
        ("refund", old["payment_method_id"], amount),
    ]
    balance = store.get_user_details(order["user_id"])["payment_methods"][card_id]["balance"]
    assert balance == round(round(card_balance - amount, 2) + amount, 2)


@pytest.mark.parametrize("status", ["processed", "delivered", "cancelled"])
def test_cancel_is_refused_unless_the_order_is_pending(store: DemoStore, db: Db, status: str) -> None:
    order = pick_order(db, status)
    assert_refused(store, lambda: store.cancel_pending_order(order["order_id"], "no longer needed"),
                   "non-pending order cannot be cancelled")


def test_cancel_is_refused_once_items_were_modified(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: paid_with(db, "paypal")(o) and alternative(db, o["items"][0]))
    new = alternative(db, order["items"][0])
    store.modify_pending_order_items(order["order_id"], [order["items"][0]["item_id"]], [new],
                                     order["payment_history"][0]["payment_method_id"])
    assert_refused(store, lambda: store.cancel_pending_order(order["order_id"], "no longer needed"),
                   "non-pending order cannot be cancelled")


@pytest.mark.parametrize("reason", ["changed my mind", "No longer needed", "", "other"])
def test_cancel_is_refused_for_any_other_reason(store: DemoStore, db: Db, reason: str) -> None:
    order = pick_order(db, "pending")
    assert_refused(store, lambda: store.cancel_pending_order(order["order_id"], reason), "invalid reason")


def test_cancel_of_an_unknown_order_is_refused(store: DemoStore) -> None:
    assert_refused(store, lambda: store.cancel_pending_order("#W0000000", "no longer needed"), "order not found")


def test_money_is_rounded_to_cents_after_every_change(tmp_path: Path, db: Db) -> None:
    """0.1 + 0.2 is 0.30000000000000004 in floats: the balance must read 0.3."""
    data = orjson.loads(SHARED_DB.read_bytes())
    order = pick_order(data, "pending", paid_with(data, "gift_card"))
    card_id = order["payment_history"][0]["payment_method_id"]
    data["users"][order["user_id"]]["payment_methods"][card_id]["balance"] = 0.1
    order["payment_history"][0]["amount"] = 0.2
    store = DemoStore(data)
    store.cancel_pending_order(order["order_id"], "no longer needed")
    assert store.get_user_details(order["user_id"])["payment_methods"][card_id]["balance"] == 0.3


# -- modify pending order address ----------------------------------------------------------------------------


def test_modify_order_address_replaces_the_six_fields(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending")
    result = store.modify_pending_order_address(order["order_id"], **ADDRESS)
    after = store.get_order_details(order["order_id"])
    assert result == after
    assert after["address"] == ADDRESS
    assert {k: v for k, v in after.items() if k != "address"} == {k: v for k, v in order.items() if k != "address"}
    assert store.get_user_details(order["user_id"])["address"] == db["users"][order["user_id"]]["address"]


def test_modify_order_address_is_allowed_after_items_were_modified(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: paid_with(db, "paypal")(o) and alternative(db, o["items"][0]))
    store.modify_pending_order_items(order["order_id"], [order["items"][0]["item_id"]],
                                     [alternative(db, order["items"][0])],
                                     order["payment_history"][0]["payment_method_id"])
    after = store.modify_pending_order_address(order["order_id"], **ADDRESS)
    assert after["address"] == ADDRESS
    assert after["status"] == "pending (item modified)"


@pytest.mark.parametrize("status", ["processed", "delivered", "cancelled"])
def test_modify_order_address_is_refused_unless_pending(store: DemoStore, db: Db, status: str) -> None:
    order = pick_order(db, status)
    assert_refused(store, lambda: store.modify_pending_order_address(order["order_id"], **ADDRESS),
                   "non-pending order cannot be modified")


def test_modify_order_address_is_refused_for_an_unknown_order_or_a_non_text_field(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending")
    assert_refused(store, lambda: store.modify_pending_order_address("#W0000000", **ADDRESS), "order not found")
    assert_refused(store, lambda: store.modify_pending_order_address(order["order_id"], **{**ADDRESS, "zip": 10001}),
                   "zip must be a string")


# -- modify pending order payment ----------------------------------------------------------------------------


def test_modify_payment_appends_the_new_payment_then_the_old_refund(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: paid_with(db, "credit_card")(o) and other_method(db, o, "paypal"))
    old = order["payment_history"][0]
    new_id = other_method(db, order, "paypal")
    result = store.modify_pending_order_payment(order["order_id"], new_id)
    after = store.get_order_details(order["order_id"])
    assert result == after
    assert after["status"] == "pending"
    assert after["payment_history"] == [
        old,
        {"transaction_type": "payment", "amount": old["amount"], "payment_method_id": new_id},
        {"transaction_type": "refund", "amount": old["amount"], "payment_method_id": old["payment_method_id"]},
    ]
    assert store.get_user_details(order["user_id"]) == db["users"][order["user_id"]]


def test_modify_payment_to_a_gift_card_takes_the_amount_off_its_balance(store: DemoStore, db: Db) -> None:
    def fits(o: dict[str, Any]) -> bool:
        card = other_method(db, o, "gift_card")
        return not paid_with(db, "gift_card")(o) and card is not None and (
            db["users"][o["user_id"]]["payment_methods"][card]["balance"] >= o["payment_history"][0]["amount"])

    order = pick_order(db, "pending", fits)
    card_id = other_method(db, order, "gift_card")
    card = db["users"][order["user_id"]]["payment_methods"][card_id]
    store.modify_pending_order_payment(order["order_id"], card_id)
    balance = store.get_user_details(order["user_id"])["payment_methods"][card_id]["balance"]
    assert balance == round(card["balance"] - order["payment_history"][0]["amount"], 2)


def test_modify_payment_from_a_gift_card_puts_the_amount_back_on_it(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: paid_with(db, "gift_card")(o) and other_method(db, o) is not None)
    old = order["payment_history"][0]
    card = db["users"][order["user_id"]]["payment_methods"][old["payment_method_id"]]
    new_id = other_method(db, order)
    store.modify_pending_order_payment(order["order_id"], new_id)
    methods = store.get_user_details(order["user_id"])["payment_methods"]
    assert methods[card["id"]]["balance"] == round(card["balance"] + old["amount"], 2)
    assert [p["transaction_type"] for p in store.get_order_details(order["order_id"])["payment_history"]] == [
        "payment", "payment", "refund"]


@pytest.mark.parametrize("status", ["processed", "delivered", "cancelled"])
def test_modify_payment_is_refused_unless_pending(store: DemoStore, db: Db, status: str) -> None:
    order = pick_order(db, status, lambda o: other_method(db, o) is not None)
    assert_refused(store, lambda: store.modify_pending_order_payment(order["order_id"], other_method(db, order)),
                   "non-pending order cannot be modified")


def test_modify_payment_is_refused_for_the_same_method(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending")
    same = order["payment_history"][0]["payment_method_id"]
    assert_refused(store, lambda: store.modify_pending_order_payment(order["order_id"], same), "should be different")


def test_modify_payment_is_refused_for_a_method_the_user_does_not_have(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending")
    assert_refused(store, lambda: store.modify_pending_order_payment(order["order_id"], "credit_card_0000000"),
                   "payment method not found")


def test_modify_payment_is_refused_unless_the_history_is_exactly_one_payment(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: paid_with(db, "credit_card")(o) and other_method(db, o, "paypal"))
    store.modify_pending_order_payment(order["order_id"], other_method(db, order, "paypal"))
    back = order["payment_history"][0]["payment_method_id"]  # history is now payment, payment, refund
    assert_refused(store, lambda: store.modify_pending_order_payment(order["order_id"], back), "exactly one payment")


def test_modify_payment_is_refused_after_items_were_modified_with_a_difference(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: paid_with(db, "credit_card")(o) and other_method(db, o, "paypal")
                       and alternative(db, o["items"][0]) is not None)
    store.modify_pending_order_items(order["order_id"], [order["items"][0]["item_id"]],
                                     [alternative(db, order["items"][0])],
                                     order["payment_history"][0]["payment_method_id"])
    paypal = other_method(db, order, "paypal")
    assert_refused(store, lambda: store.modify_pending_order_payment(order["order_id"], paypal), "exactly one payment")


def test_modify_payment_to_a_gift_card_too_small_is_refused(store: DemoStore, db: Db) -> None:
    def fits(o: dict[str, Any]) -> bool:
        card = other_method(db, o, "gift_card")
        return card is not None and (
            db["users"][o["user_id"]]["payment_methods"][card]["balance"] < o["payment_history"][0]["amount"])

    order = pick_order(db, "pending", fits)
    assert_refused(store, lambda: store.modify_pending_order_payment(order["order_id"],
                                                                     other_method(db, order, "gift_card")),
                   "insufficient gift card balance")


# -- modify pending order items ------------------------------------------------------------------------------


def test_modify_items_takes_each_new_variant_and_charges_the_difference(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: paid_with(db, "credit_card")(o) and alternative(
        db, o["items"][0], lambda v: v["price"] > o["items"][0]["price"]) is not None)
    item = order["items"][0]
    new_id = alternative(db, item, lambda v: v["price"] > item["price"])
    new = variant(db, new_id)
    method_id = order["payment_history"][0]["payment_method_id"]
    result = store.modify_pending_order_items(order["order_id"], [item["item_id"]], [new_id], method_id)
    after = store.get_order_details(order["order_id"])
    assert result == after
    assert after["status"] == "pending (item modified)"
    assert after["items"][0] == {**item, "item_id": new_id, "price": new["price"], "options": new["options"]}
    assert after["items"][1:] == order["items"][1:]
    assert after["payment_history"] == [
        *order["payment_history"],
        {"transaction_type": "payment", "amount": round(new["price"] - item["price"], 2),
         "payment_method_id": method_id},
    ]


def test_modify_items_refunds_a_negative_difference(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: paid_with(db, "paypal")(o) and alternative(
        db, o["items"][0], lambda v: v["price"] < o["items"][0]["price"]) is not None)
    item = order["items"][0]
    new_id = alternative(db, item, lambda v: v["price"] < item["price"])
    method_id = order["payment_history"][0]["payment_method_id"]
    after = store.modify_pending_order_items(order["order_id"], [item["item_id"]], [new_id], method_id)
    assert after["payment_history"][-1] == {
        "transaction_type": "refund", "amount": round(item["price"] - variant(db, new_id)["price"], 2),
        "payment_method_id": method_id}


def test_modify_items_with_no_difference_records_a_zero_refund(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: any(alternative(db, i, lambda v, i=i: v["price"] == i["price"])
                                                    for i in o["items"]))
    item = next(i for i in order["items"] if alternative(db, i, lambda v, i=i: v["price"] == i["price"]))
    new_id = alternative(db, item, lambda v: v["price"] == item["price"])
    method_id = order["payment_history"][0]["payment_method_id"]
    after = store.modify_pending_order_items(order["order_id"], [item["item_id"]], [new_id], method_id)
    assert after["payment_history"][-1] == {"transaction_type": "refund", "amount": 0.0, "payment_method_id": method_id}


def test_modify_items_gives_each_old_item_its_own_new_variant(store: DemoStore, db: Db) -> None:
    """Two items of two products at different prices: each takes its own variant's price and options (the
    benchmark's code gives every changed item the last variant's price and options; SEMANTICS.md does not)."""
    def fits(o: dict[str, Any]) -> bool:
        return len({i["product_id"] for i in o["items"][:2]}) == 2 and all(
            alternative(db, i) is not None for i in o["items"][:2])

    order = pick_order(db, "pending", fits)
    old = order["items"][:2]
    new_ids = [alternative(db, i) for i in old]
    new = [variant(db, v) for v in new_ids]
    assert new[0]["price"] != new[1]["price"]
    method_id = order["payment_history"][0]["payment_method_id"]
    after = store.modify_pending_order_items(order["order_id"], [i["item_id"] for i in old], new_ids, method_id)
    for changed, was, v in zip(after["items"][:2], old, new, strict=True):
        assert changed == {**was, "item_id": v["item_id"], "price": v["price"], "options": v["options"]}
    difference = round((new[0]["price"] - old[0]["price"]) + (new[1]["price"] - old[1]["price"]), 2)
    last = after["payment_history"][-1]
    assert (last["transaction_type"], last["amount"]) == ("payment" if difference > 0 else "refund", abs(difference))


def test_modify_items_listing_a_doubled_item_twice_changes_both_entries(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: len({i["item_id"] for i in o["items"]}) < len(o["items"]))
    doubled = next(i for i in order["items"] if [j["item_id"] for j in order["items"]].count(i["item_id"]) == 2)
    new_a = alternative(db, doubled)
    new_b = alternative(db, doubled, lambda v: v["item_id"] != new_a)
    method_id = order["payment_history"][0]["payment_method_id"]
    after = store.modify_pending_order_items(order["order_id"], [doubled["item_id"]] * 2, [new_a, new_b], method_id)
    positions = [n for n, i in enumerate(order["items"]) if i["item_id"] == doubled["item_id"]]
    assert [after["items"][n]["item_id"] for n in positions] == [new_a, new_b]
    assert [after["items"][n]["price"] for n in positions] == [variant(db, new_a)["price"], variant(db, new_b)["price"]]


def test_modify_items_paid_by_gift_card_moves_its_balance(store: DemoStore, db: Db) -> None:
    def fits(o: dict[str, Any]) -> bool:
        if not paid_with(db, "gift_card")(o):
            return False
        card = db["users"][o["user_id"]]["payment_methods"][o["payment_history"][0]["payment_method_id"]]
        return alternative(db, o["items"][0], lambda v: 0 < v["price"] - o["items"][0]["price"] <= card["balance"]) \
            is not None

    order = pick_order(db, "pending", fits)
    item = order["items"][0]
    card_id = order["payment_history"][0]["payment_method_id"]
    balance = db["users"][order["user_id"]]["payment_methods"][card_id]["balance"]
    new_id = alternative(db, item, lambda v: 0 < v["price"] - item["price"] <= balance)
    store.modify_pending_order_items(order["order_id"], [item["item_id"]], [new_id], card_id)
    difference = round(variant(db, new_id)["price"] - item["price"], 2)
    after = store.get_user_details(order["user_id"])["payment_methods"][card_id]["balance"]
    assert after == round(balance - difference, 2)
    assert is_two_decimals(after)


def test_modify_items_refund_to_a_gift_card_raises_its_balance(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: paid_with(db, "gift_card")(o) and alternative(
        db, o["items"][0], lambda v: v["price"] < o["items"][0]["price"]) is not None)
    item = order["items"][0]
    card_id = order["payment_history"][0]["payment_method_id"]
    balance = db["users"][order["user_id"]]["payment_methods"][card_id]["balance"]
    new_id = alternative(db, item, lambda v: v["price"] < item["price"])
    store.modify_pending_order_items(order["order_id"], [item["item_id"]], [new_id], card_id)
    difference = round(variant(db, new_id)["price"] - item["price"], 2)
    assert store.get_user_details(order["user_id"])["payment_methods"][card_id]["balance"] == round(
        balance - difference, 2)


def test_modify_items_is_refused_a_second_time(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "pending", lambda o: len(o["items"]) > 1 and all(alternative(db, i) for i in o["items"]))
    method_id = order["payment_history"][0]["payment_method_id"]
    first, second = order["items"][:2]
    store.modify_pending_order_items(order["order_id"], [first["item_id"]], [alternative(db, first)], method_id)
    assert_refused(store, lambda: store.modify_pending_order_items(
        order["order_id"], [second["item_id"]], [alternative(db, second)], method_id), "non-pending order")


@pytest.mark.parametrize("status", ["processed", "delivered", "cancelled"])
def test_modify_items_is_refused_unless_pending(store: DemoStore, db: Db, status: str) -> None:
    order = pick_order(db, status, lambda o: alternative(db, o["items"][0]) is not None)
    item, method_id = order["items"][0], order["payment_history"][0]["payment_method_id"]
    assert_refused(store, lambda: store.modify_pending_order_items(
        order["order_id"], [item["item_id"]], [alternative(db, item)], method_id), "non-pending order")


def test_modify_items_refusals(store: DemoStore, db: Db) -> None:
    def fits(o: dict[str, Any]) -> bool:
        i = o["items"][0]
        return (len({j["item_id"] for j in o["items"]}) == len(o["items"]) and alternative(db, i) is not None
                and unavailable(db, i) is not None and other_method(db, o, "gift_card") is not None
                and alternative(db, i, lambda v: v["price"] - i["price"] > db["users"][o["user_id"]]["payment_methods"][
                    other_method(db, o, "gift_card")]["balance"]) is not None)

    order = pick_order(db, "pending", fits)
    oid, item = order["order_id"], order["items"][0]
    old, new = item["item_id"], alternative(db, item)
    method_id = order["payment_history"][0]["payment_method_id"]
    card_id = other_method(db, order, "gift_card")
    balance = db["users"][order["user_id"]]["payment_methods"][card_id]["balance"]
    dear = alternative(db, item, lambda v: v["price"] - item["price"] > balance)
    cases = [
        (["0000000000"], [new], method_id, "0000000000 not found"),
        ([old, old], [new, new], method_id, f"{old} not found"),
        ([old], [new, new], method_id, "number of items"),
        ([old], [], method_id, "number of items"),
        ([old], [old], method_id, "should be different"),
        ([old], [foreign_item(db, order)], method_id, "not found or available"),
        ([old], [unavailable(db, item)], method_id, "not found or available"),
        ([old], [new], "paypal_0000000", "payment method not found"),
        ([old], [dear], card_id, "insufficient gift card balance"),
        (old, [new], method_id, "item_ids must be a list"),
    ]
    for item_ids, new_item_ids, method, match in cases:
        assert_refused(store, lambda a=item_ids, b=new_item_ids, m=method: store.modify_pending_order_items(
            oid, a, b, m), match)
    assert_refused(store, lambda: store.modify_pending_order_items("#W0000000", [old], [new], method_id),
                   "order not found")


# -- return delivered order items ----------------------------------------------------------------------------


def test_return_records_sorted_items_and_the_refund_method_without_moving_money(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "delivered", lambda o: len({i["item_id"] for i in o["items"]}) >= 3)
    ids = [i["item_id"] for i in order["items"]]
    asked = sorted(ids, reverse=True)[:3]
    method_id = order["payment_history"][0]["payment_method_id"]
    result = store.return_delivered_order_items(order["order_id"], asked, method_id)
    after = store.get_order_details(order["order_id"])
    assert result == after
    assert after == {**order, "status": "return requested", "return_items": sorted(asked),
                     "return_payment_method_id": method_id}
    assert store.get_user_details(order["user_id"]) == db["users"][order["user_id"]]


def test_return_may_go_to_any_gift_card_of_the_user(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "delivered", lambda o: not paid_with(db, "gift_card")(o)
                       and other_method(db, o, "gift_card") is not None)
    card_id = other_method(db, order, "gift_card")
    after = store.return_delivered_order_items(order["order_id"], [order["items"][0]["item_id"]], card_id)
    assert after["return_payment_method_id"] == card_id
    assert store.get_user_details(order["user_id"]) == db["users"][order["user_id"]]


def test_return_of_a_doubled_item_lists_it_twice(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "delivered", lambda o: len({i["item_id"] for i in o["items"]}) < len(o["items"]))
    ids = [i["item_id"] for i in order["items"]]
    doubled = next(i for i in ids if ids.count(i) == 2)
    after = store.return_delivered_order_items(order["order_id"], [doubled, doubled],
                                               order["payment_history"][0]["payment_method_id"])
    assert after["return_items"] == [doubled, doubled]


@pytest.mark.parametrize("status", ["pending", "processed", "cancelled"])
def test_return_is_refused_unless_delivered(store: DemoStore, db: Db, status: str) -> None:
    order = pick_order(db, status)
    assert_refused(store, lambda: store.return_delivered_order_items(
        order["order_id"], [order["items"][0]["item_id"]], order["payment_history"][0]["payment_method_id"]),
        "non-delivered order cannot be returned")


def test_return_refusals(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "delivered", lambda o: len({i["item_id"] for i in o["items"]}) == len(o["items"])
                       and any(m["source"] != "gift_card" and k != o["payment_history"][0]["payment_method_id"]
                               for k, m in db["users"][o["user_id"]]["payment_methods"].items()))
    oid, item_id = order["order_id"], order["items"][0]["item_id"]
    method_id = order["payment_history"][0]["payment_method_id"]
    other = next(k for k, m in db["users"][order["user_id"]]["payment_methods"].items()
                 if m["source"] != "gift_card" and k != method_id)
    for item_ids, method, match in (
        ([item_id], other, "original payment method"),
        ([item_id], "gift_card_0000000", "payment method not found"),
        (["0000000000"], method_id, "some item not found"),
        ([item_id, item_id], method_id, "some item not found"),
    ):
        assert_refused(store, lambda a=item_ids, m=method: store.return_delivered_order_items(oid, a, m), match)


# -- exchange delivered order items --------------------------------------------------------------------------


def test_exchange_records_sorted_items_and_the_rounded_difference_without_moving_money(store: DemoStore,
                                                                                        db: Db) -> None:
    order = pick_order(db, "delivered", lambda o: len(o["items"]) >= 2 and all(alternative(db, i) for i in o["items"]))
    old = [i["item_id"] for i in order["items"][:2]][::-1]
    items = order["items"][:2][::-1]
    new = [alternative(db, i) for i in items]
    method_id = order["payment_history"][0]["payment_method_id"]
    result = store.exchange_delivered_order_items(order["order_id"], old, new, method_id)
    after = store.get_order_details(order["order_id"])
    assert result == after
    difference = round(sum(variant(db, n)["price"] - i["price"] for n, i in zip(new, items, strict=True)), 2)
    assert after == {**order, "status": "exchange requested", "exchange_items": sorted(old),
                     "exchange_new_items": sorted(new), "exchange_payment_method_id": method_id,
                     "exchange_price_difference": difference}
    assert is_two_decimals(after["exchange_price_difference"])
    assert store.get_user_details(order["user_id"]) == db["users"][order["user_id"]]


def test_exchange_by_gift_card_that_covers_the_difference_leaves_its_balance(store: DemoStore, db: Db) -> None:
    def fits(o: dict[str, Any]) -> bool:
        card = other_method(db, o, "gift_card") or (o["payment_history"][0]["payment_method_id"]
                                                    if paid_with(db, "gift_card")(o) else None)
        if card is None:
            return False
        balance = db["users"][o["user_id"]]["payment_methods"][card]["balance"]
        return alternative(db, o["items"][0], lambda v: 0 < v["price"] - o["items"][0]["price"] <= balance) is not None

    order = pick_order(db, "delivered", fits)
    card_id = other_method(db, order, "gift_card") or order["payment_history"][0]["payment_method_id"]
    balance = db["users"][order["user_id"]]["payment_methods"][card_id]["balance"]
    item = order["items"][0]
    new_id = alternative(db, item, lambda v: 0 < v["price"] - item["price"] <= balance)
    after = store.exchange_delivered_order_items(order["order_id"], [item["item_id"]], [new_id], card_id)
    assert after["exchange_price_difference"] == round(variant(db, new_id)["price"] - item["price"], 2)
    assert store.get_user_details(order["user_id"])["payment_methods"][card_id]["balance"] == balance


def test_exchange_for_the_same_variant_is_allowed(store: DemoStore, db: Db) -> None:
    """SEMANTICS.md (like the benchmark) asks a new id to differ from the old only when modifying a pending order."""
    order = pick_order(db, "delivered", lambda o: variant(db, o["items"][0]["item_id"])["available"])
    item_id = order["items"][0]["item_id"]
    after = store.exchange_delivered_order_items(order["order_id"], [item_id], [item_id],
                                                 order["payment_history"][0]["payment_method_id"])
    assert after["exchange_items"] == after["exchange_new_items"] == [item_id]


@pytest.mark.parametrize("status", ["pending", "processed", "cancelled"])
def test_exchange_is_refused_unless_delivered(store: DemoStore, db: Db, status: str) -> None:
    order = pick_order(db, status, lambda o: alternative(db, o["items"][0]) is not None)
    item, method_id = order["items"][0], order["payment_history"][0]["payment_method_id"]
    assert_refused(store, lambda: store.exchange_delivered_order_items(
        order["order_id"], [item["item_id"]], [alternative(db, item)], method_id), "non-delivered order")


def test_exchange_refusals(store: DemoStore, db: Db) -> None:
    def fits(o: dict[str, Any]) -> bool:
        i = o["items"][0]
        card = other_method(db, o, "gift_card")
        return (len({j["item_id"] for j in o["items"]}) == len(o["items"]) and alternative(db, i) is not None
                and unavailable(db, i) is not None and card is not None
                and alternative(db, i, lambda v: v["price"] - i["price"] >
                                db["users"][o["user_id"]]["payment_methods"][card]["balance"]) is not None)

    order = pick_order(db, "delivered", fits)
    oid, item = order["order_id"], order["items"][0]
    old, new = item["item_id"], alternative(db, item)
    method_id = order["payment_history"][0]["payment_method_id"]
    card_id = other_method(db, order, "gift_card")
    balance = db["users"][order["user_id"]]["payment_methods"][card_id]["balance"]
    dear = alternative(db, item, lambda v: v["price"] - item["price"] > balance)
    for item_ids, new_item_ids, method, match in (
        (["0000000000"], [new], method_id, "number of 0000000000 not found"),
        ([old, old], [new, new], method_id, f"number of {old} not found"),
        ([old], [new, new], method_id, "number of items"),
        ([old], [foreign_item(db, order)], method_id, "not found or available"),
        ([old], [unavailable(db, item)], method_id, "not found or available"),
        ([old], [new], "paypal_0000000", "payment method not found"),
        ([old], [dear], card_id, "insufficient gift card balance"),
    ):
        assert_refused(store, lambda a=item_ids, b=new_item_ids, m=method: store.exchange_delivered_order_items(
            oid, a, b, m), match)


def test_an_order_is_returned_or_exchanged_once(store: DemoStore, db: Db) -> None:
    order = pick_order(db, "delivered", lambda o: alternative(db, o["items"][0]) is not None)
    item = order["items"][0]
    method_id = order["payment_history"][0]["payment_method_id"]
    store.exchange_delivered_order_items(order["order_id"], [item["item_id"]], [alternative(db, item)], method_id)
    assert_refused(store, lambda: store.return_delivered_order_items(order["order_id"], [item["item_id"]], method_id),
                   "non-delivered")
    assert_refused(store, lambda: store.exchange_delivered_order_items(
        order["order_id"], [item["item_id"]], [alternative(db, item)], method_id), "non-delivered")
    assert_refused(store, lambda: store.cancel_pending_order(order["order_id"], "no longer needed"), "non-pending")


# -- modify user default address -----------------------------------------------------------------------------


def test_modify_user_address_replaces_the_six_fields_and_the_zip_finds_the_user(store: DemoStore, db: Db) -> None:
    user = db["users"]["yusuf_rossi_9620"]
    result = store.modify_user_address("yusuf_rossi_9620", **ADDRESS)
    after = store.get_user_details("yusuf_rossi_9620")
    assert result == after == {**user, "address": ADDRESS}
    assert store.find_user_id_by_name_zip("Yusuf", "Rossi", ADDRESS["zip"]) == "yusuf_rossi_9620"
    with pytest.raises(CommerceError):
        store.find_user_id_by_name_zip("Yusuf", "Rossi", user["address"]["zip"])
    for order_id in user["orders"]:  # an order keeps the address it ships to
        assert store.get_order_details(order_id)["address"] == db["orders"][order_id]["address"]


def test_modify_user_address_is_refused_for_an_unknown_user(store: DemoStore) -> None:
    assert_refused(store, lambda: store.modify_user_address("nobody_1", **ADDRESS), "user not found")
