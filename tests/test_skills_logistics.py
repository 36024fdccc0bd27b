"""Parcel tracking: the demo provider's events and problems are stable and plausible; the order status skill
shows them with what to do, in zh-CN and en; the logistics alert push says what the problem is."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.commerce.logistics import DemoLogistics, Problem, Step, Weather, alert_text
from core.config import ShopConfig
from core.locale import Catalogs, Translator
from tests.conftest import SHARED_DATA, hub_client, make_config, say

ORDERS = orjson.loads((SHARED_DATA / "retail" / "db.json").read_bytes())["orders"]
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC).timestamp()
CATALOGS = Catalogs.load(Path(__file__).resolve().parent.parent / "locales", ShopConfig().locales, "zh-CN")
# Problems of the demo store's shipped parcels at the default rate (sha256 of the tracking id).
WEATHER, STALLED, ADDRESS, RETURNING = "#W2768383", "#W3288665", "#W9549057", "#W3632959"


def test_the_demo_reports_every_kind_of_problem_stably() -> None:
    logistics = DemoLogistics()
    found = {a.order_id: a for a in logistics.anomalies(ORDERS.values())}
    assert found == {a.order_id: a for a in DemoLogistics().anomalies(ORDERS.values())}  # every run, every process
    assert {a.problem for a in found.values()} == set(Problem)
    assert all(ORDERS[oid]["status"] == "processed" for oid in found)
    assert 0.04 < len(found) / sum(o["status"] == "processed" for o in ORDERS.values()) < 0.15
    weather = found[WEATHER]
    assert (weather.problem, weather.weather, weather.days) == (Problem.WEATHER_DELAY, Weather.TYPHOON, 3)
    assert found[STALLED].problem == Problem.STALLED and found[ADDRESS].problem == Problem.ADDRESS_PROBLEM
    assert len(DemoLogistics(1.0).anomalies(ORDERS.values())) == sum(
        len(f["tracking_id"]) for o in ORDERS.values() if o["status"] == "processed" for f in o["fulfillments"])
    assert DemoLogistics(0.0).anomalies(ORDERS.values()) == []


def test_tracking_events_are_plausible_and_end_where_the_problem_happened() -> None:
    logistics = DemoLogistics()
    order = ORDERS["#W2611340"]  # shipped, no problem, to New York
    tracking = logistics.track(order["fulfillments"][0]["tracking_id"][0], order, NOW)
    assert tracking == logistics.track(tracking.tracking_id, order, NOW)
    assert tracking.anomaly is None
    times = [e.at for e in tracking.events]
    assert times == sorted(times) and times[-1] <= NOW and NOW - times[0] < 5 * 86400
    assert tracking.events[0].step == Step.PICKED_UP and tracking.latest is not None
    assert tracking.latest.place == "New York, NY" and tracking.latest.step != Step.DELIVERED

    weather = ORDERS[WEATHER]
    held = logistics.track(weather["fulfillments"][0]["tracking_id"][0], weather, NOW)
    assert held.latest is not None and held.latest.step == Step.WEATHER_HOLD
    stalled = ORDERS[STALLED]
    stuck = logistics.track(stalled["fulfillments"][0]["tracking_id"][0], stalled, NOW)
    assert stuck.latest is not None and stuck.latest.step == Step.SORTED
    assert 2 <= (NOW - stuck.latest.at) / 86400 <= 4  # "stuck for 3 days"

    delivered = ORDERS["#W4435622"]
    done = logistics.track(delivered["fulfillments"][0]["tracking_id"][0], delivered, NOW)
    assert done.latest is not None and done.latest.step == Step.DELIVERED and done.anomaly is None


def test_alert_texts_in_zh_and_en() -> None:
    anomaly = next(a for a in DemoLogistics().anomalies(ORDERS.values()) if a.order_id == WEATHER)
    assert alert_text(Translator(CATALOGS, "en"), anomaly) == "your parcel is delayed by a typhoon, about 3 days late"
    assert alert_text(Translator(CATALOGS, "zh-CN"), anomaly) == "您的包裹因台风延误，预计晚到约3天"


async def test_a_shipped_order_shows_its_latest_events_in_zh(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    body = await say(client, "james_li_5688", "订单W2611340到哪了")
    assert body["route"] == "skill"
    text = body["replies"][0]["text"]
    assert text.startswith("订单 #W2611340：已发货。")
    assert "包裹357962501027的最新物流：" in text
    assert "New York, NY：派送中" in text and text.count("\n· ") == 3
    assert "请注意" not in text


async def test_a_weather_delay_and_a_stall_with_what_to_do_in_en(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    weather = (await say(client, "emma_kim_1076", "where is my order #W2768383?", locale="en"))["replies"][0]
    assert "Held at the hub because of a typhoon" in weather["text"]
    assert ("Please note: your parcel is delayed by a typhoon, about 3 days late. Nothing to do on your side"
            in weather["text"])
    stalled = (await say(client, "mei_martin_4260", "track order #W3288665", locale="en"))["replies"][0]
    assert "stuck in transit for 3 days" in stalled["text"] and "send a replacement or refund you" in stalled["text"]


async def test_an_address_problem_offers_to_correct_it(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    reply = (await say(client, "mason_johansson_2485", "物流 #W9549057"))["replies"][0]
    assert "快递员无法核实收货地址" in reply["text"] and "请核对收货地址" in reply["text"]
    assert reply["buttons"] == [{"title": "更正地址", "payload": "转人工"}]
    en = (await say(client, "mason_johansson_2485", "where is #W9549057", locale="en"))["replies"][0]
    assert en["buttons"][0]["title"] == "Correct the address"
    handed = await say(client, "mason_johansson_2485", en["buttons"][0]["payload"])
    assert handed["route"] == "handoff"


async def test_the_logistics_alert_push_says_what_the_problem_is(tmp_path: Path) -> None:
    jobs = [{"id": "parcels", "kind": "logistics_alert", "interval_s": 1800, "enabled": False}]
    noon = dt.datetime(2026, 5, 6, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    async with hub_client(make_config(tmp_path, pushes={"jobs": jobs}), clock=lambda: noon) as (client, hub):
        assert hub.pushes is not None
        ws = await client.ws_connect("/webchat/ws?user_id=emma_kim_1076&locale=zh-CN")
        await ws.send_json({"type": "message", "text": "你好"})
        while (await ws.receive_json(timeout=5))["type"] != "turn_end":
            pass
        assert (await hub.pushes.run("parcels")).sent == 1
        while (frame := await ws.receive_json(timeout=5))["type"] != "push":
            pass
        assert frame["text"].startswith("您的订单 #W2768383 配送出现问题：您的包裹因台风延误，预计晚到约3天。")
        await ws.close()
