"""Service pushes through the web chat: a signed-in shopper with the chat open gets payment reminders and
logistics alerts as "push" frames on the WebSocket; a shopper with no open chat is counted as not sent."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from core.app import build_hub, create_app
from core.push.jobs import balance_due
from core.push.rules import Skip
from tests.conftest import make_config

EMMA = "emma_ito_4529"  # demo store: #W8664580 pending, #W3780282 shipped (processed)
JOBS = [
    {"id": "reminders", "kind": "payment_reminder", "interval_s": 3600, "unpaid": "pending_status", "enabled": False},
    {"id": "strict_reminders", "kind": "payment_reminder", "interval_s": 3600, "enabled": False},
    {"id": "parcels", "kind": "logistics_alert", "interval_s": 1800, "enabled": False},
]


async def next_push(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        frame = await ws.receive_json(timeout=5)
        if frame["type"] == "push":
            return dict(frame)


async def test_reminders_and_alerts_reach_an_open_web_chat(tmp_path: Path) -> None:
    noon = dt.datetime(2026, 5, 6, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()
    config = make_config(tmp_path, pushes={"jobs": JOBS, "logistics": {"demo_anomaly_rate": 1.0}})
    hub = await build_hub(config, clock=lambda: noon)
    assert hub.pushes is not None
    client = TestClient(TestServer(create_app(hub)))
    await client.start_server()
    try:
        ws = await client.ws_connect(f"/webchat/ws?user_id={EMMA}&locale=ja")
        await ws.send_json({"type": "message", "text": "こんにちは"})
        while (await ws.receive_json(timeout=5))["type"] != "turn_end":
            pass

        report = await hub.pushes.run("reminders")
        assert (report.candidates, report.sent) == (1, 1)
        reminder = await next_push(ws)
        assert "#W8664580" in reminder["text"] and "お支払い" in reminder["text"] and "$" in reminder["text"]
        # Once per order within repeat_after_hours.
        assert dict((await hub.pushes.run("reminders")).skipped) == {}  # nothing due: not even a candidate

        alert = await hub.pushes.run("parcels")
        assert alert.sent == 1
        text = (await next_push(ws))["text"]
        assert "#W3780282" in text and "配送" in text

        # In the demo data every pending order is paid in full: with the balance rule nothing is due.
        assert (await hub.pushes.run("strict_reminders")).candidates == 0

        # Operators run a job by hand and read the reports (under /api/, so admin.token protects them).
        response = await client.post("/api/pushes/strict_reminders/run")
        assert response.status == 200 and (await response.json())["job"] == "strict_reminders"
        assert (await client.post("/api/pushes/nope/run")).status == 404
        runs = (await (await client.get("/api/pushes/runs?limit=2")).json())["runs"]
        assert [r["job"] for r in runs] == ["strict_reminders", "strict_reminders"]

        # The chat closed: the next alert cannot be delivered, and the report says so.
        await ws.close()
        await hub.pushes.book.unmark("parcels", next(iter(await hub.pushes.book.marked("parcels", noon))))
        closed = await hub.pushes.run("parcels")
        assert (closed.chosen, closed.sent, dict(closed.skipped)) == (1, 0, {Skip.SEND_FAILED: 1})
    finally:
        await client.close()


def test_the_balance_due_counts_payments_and_refunds() -> None:
    order = {"items": [{"price": 10.0}, {"price": 5.5}],
             "payment_history": [{"transaction_type": "payment", "amount": 20.0},
                                 {"transaction_type": "refund", "amount": 10.0}]}
    assert balance_due(order) == 5.5
    paid = {"items": [{"price": 3}], "payment_history": [{"transaction_type": "payment", "amount": 3}]}
    assert balance_due(paid) == 0
