"""The demo store's writes survive a restart, the shared file is never written, and hub processes sharing one
data folder see each other's writes (snapshot + journal, see core/commerce/journal.py)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.commerce.base import CommerceError
from core.commerce.demo_store import DemoStore
from core.config import PROJECT_ROOT
from tests.test_commerce_store import ADDRESS, SHARED_DB, alternative, other_method, paid_with, pick_order

Db = dict[str, Any]


@pytest.fixture(scope="module")
def db() -> Db:
    return orjson.loads(SHARED_DB.read_bytes())


def one_write_of_each_kind(store: DemoStore, db: Db) -> None:
    pending = [o for o in db["orders"].values() if o["status"] == "pending"]
    cancel, address, items = pending[0], pending[1], next(o for o in pending[2:] if alternative(db, o["items"][0]))
    payment = next(o for o in pending if o not in (cancel, address, items) and paid_with(db, "credit_card")(o)
                   and other_method(db, o, "paypal"))
    delivered = [o for o in db["orders"].values() if o["status"] == "delivered"]
    returned, exchanged = delivered[0], next(o for o in delivered[1:] if alternative(db, o["items"][0]))
    store.cancel_pending_order(cancel["order_id"], "no longer needed")
    store.modify_pending_order_address(address["order_id"], **ADDRESS)
    store.modify_pending_order_payment(payment["order_id"], other_method(db, payment, "paypal"))
    store.modify_pending_order_items(items["order_id"], [items["items"][0]["item_id"]],
                                     [alternative(db, items["items"][0])],
                                     items["payment_history"][0]["payment_method_id"])
    store.return_delivered_order_items(returned["order_id"], [returned["items"][0]["item_id"]],
                                       returned["payment_history"][0]["payment_method_id"])
    store.exchange_delivered_order_items(exchanged["order_id"], [exchanged["items"][0]["item_id"]],
                                         [alternative(db, exchanged["items"][0])],
                                         exchanged["payment_history"][0]["payment_method_id"])
    store.modify_user_address("noah_brown_6181", **ADDRESS)


def test_first_start_copies_the_shared_file_and_never_writes_it(tmp_path: Path, db: Db) -> None:
    digest = hashlib.sha256(SHARED_DB.read_bytes()).hexdigest()
    store = DemoStore.open(SHARED_DB, tmp_path / "var")
    assert (tmp_path / "var" / "demo_store.json").read_bytes() == SHARED_DB.read_bytes()
    one_write_of_each_kind(store, db)
    store.close()
    assert hashlib.sha256(SHARED_DB.read_bytes()).hexdigest() == digest
    assert (tmp_path / "var" / "demo_store.json").read_bytes() == SHARED_DB.read_bytes()  # writes go to the journal


@pytest.mark.parametrize("fsync", [False, True])
def test_writes_survive_reopening(tmp_path: Path, db: Db, fsync: bool) -> None:
    store = DemoStore.open(SHARED_DB, tmp_path / "var", fsync=fsync)
    one_write_of_each_kind(store, db)
    expected = store.export()
    assert expected != db
    store.close()
    reopened = DemoStore.open(SHARED_DB, tmp_path / "var")
    assert reopened.export() == expected
    assert reopened.find_user_id_by_name_zip("Noah", "Brown", ADDRESS["zip"]) == "noah_brown_6181"
    reopened.close()


def test_the_journal_is_an_audit_trail_of_the_writes(tmp_path: Path, db: Db) -> None:
    store = DemoStore.open(SHARED_DB, tmp_path / "var")
    order = pick_order(db, "pending", paid_with(db, "gift_card"))
    with pytest.raises(CommerceError):
        store.cancel_pending_order(order["order_id"], "too expensive")
    store.cancel_pending_order(order["order_id"], "ordered by mistake")
    store.modify_user_address(order["user_id"], **ADDRESS)
    lines = (tmp_path / "var" / "demo_store.journal").read_bytes().splitlines()
    entries = [orjson.loads(line) for line in lines]
    assert [(e["seq"], e["op"]) for e in entries] == [(1, "cancel_pending_order"), (2, "modify_user_address")]
    assert entries[0]["args"] == {"order_id": order["order_id"], "reason": "ordered by mistake"}
    assert entries[0]["orders"] == {order["order_id"]: store.get_order_details(order["order_id"])}
    assert list(entries[0]["users"]) == [order["user_id"]]  # its gift card's balance went up
    assert entries[1]["users"] == {order["user_id"]: store.get_user_details(order["user_id"])}
    assert entries[1]["orders"] == {}
    assert all(e["at"].endswith("+00:00") for e in entries)
    store.close()


def test_a_write_torn_by_a_crash_is_dropped_on_opening(tmp_path: Path, db: Db) -> None:
    store = DemoStore.open(SHARED_DB, tmp_path / "var")
    order = pick_order(db, "pending")
    store.modify_pending_order_address(order["order_id"], **ADDRESS)
    expected = store.export()
    store.close()
    journal = tmp_path / "var" / "demo_store.journal"
    good = journal.read_bytes()
    with open(journal, "ab") as f:
        f.write(b'{"seq": 2, "op": "cancel_pending_order", "orders": {"#W')
    reopened = DemoStore.open(SHARED_DB, tmp_path / "var")
    assert reopened.export() == expected
    assert journal.read_bytes() == good
    reopened.cancel_pending_order(order["order_id"], "no longer needed")
    reopened.close()
    again = DemoStore.open(SHARED_DB, tmp_path / "var")
    assert again.get_order_details(order["order_id"])["status"] == "cancelled"
    again.close()


def test_a_large_journal_is_compacted_on_opening_and_archived(tmp_path: Path, db: Db) -> None:
    var = tmp_path / "var"
    store = DemoStore.open(SHARED_DB, var)
    one_write_of_each_kind(store, db)
    expected = store.export()
    old_journal = (var / "demo_store.journal").read_bytes()
    store.close()
    compacted = DemoStore.open(SHARED_DB, var, compact_over_bytes=0)
    assert compacted.export() == expected
    assert orjson.loads((var / "demo_store.json").read_bytes()) == expected
    assert (var / "demo_store.journal.00000001-00000007").read_bytes() == old_journal
    header = orjson.loads((var / "demo_store.journal").read_bytes())
    assert (header["seq"], header["op"]) == (7, "compacted")
    compacted.modify_user_address("yusuf_rossi_9620", **ADDRESS)
    expected = compacted.export()
    compacted.close()
    reopened = DemoStore.open(SHARED_DB, var)
    assert reopened.export() == expected
    assert orjson.loads((var / "demo_store.journal").read_bytes().splitlines()[-1])["seq"] == 8
    reopened.close()


def test_two_stores_on_one_data_folder_see_each_others_writes(tmp_path: Path, db: Db) -> None:
    a = DemoStore.open(SHARED_DB, tmp_path / "var")
    b = DemoStore.open(SHARED_DB, tmp_path / "var")
    order = pick_order(db, "pending")
    a.cancel_pending_order(order["order_id"], "no longer needed")
    assert b.get_order_details(order["order_id"])["status"] == "cancelled"
    with pytest.raises(CommerceError, match="non-pending"):  # b checks against a's write, not its stale copy
        b.cancel_pending_order(order["order_id"], "no longer needed")
    b.modify_user_address(order["user_id"], **ADDRESS)
    assert a.get_user_details(order["user_id"])["address"] == ADDRESS
    a.close()
    b.close()


def test_a_write_by_another_process_is_seen_and_a_compaction_by_another_is_followed(tmp_path: Path, db: Db) -> None:
    var = tmp_path / "var"
    store = DemoStore.open(SHARED_DB, var)
    order = pick_order(db, "pending")
    other = [o for o in db["orders"].values() if o["status"] == "pending"][5]
    script = (
        "import sys; from pathlib import Path; from core.commerce.demo_store import DemoStore\n"
        "s = DemoStore.open(Path(sys.argv[1]), Path(sys.argv[2]), compact_over_bytes=int(sys.argv[4]))\n"
        "s.cancel_pending_order(sys.argv[3], 'ordered by mistake')\n"
    )
    run = [sys.executable, "-c", script, str(SHARED_DB), str(var)]
    subprocess.run([*run, order["order_id"], str(8 << 20)], cwd=PROJECT_ROOT, check=True)
    assert store.get_order_details(order["order_id"])["cancel_reason"] == "ordered by mistake"
    subprocess.run([*run, other["order_id"], "0"], cwd=PROJECT_ROOT, check=True)  # compacts on opening
    assert (var / "demo_store.journal.00000001-00000001").exists()
    assert store.get_order_details(other["order_id"])["status"] == "cancelled"
    store.modify_pending_order_address(pick_order(db, "pending", lambda o: o not in (order, other))["order_id"],
                                       **ADDRESS)
    expected = store.export()
    store.close()
    reopened = DemoStore.open(SHARED_DB, var)
    assert reopened.export() == expected
    reopened.close()
