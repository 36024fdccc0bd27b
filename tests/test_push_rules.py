"""Pushes end to end with a controllable clock: shoppers talk to the real hub over Telegram (python-telegram-bot
against the local Bot API server of tests/support/fake_telegram_api.py), a job runs, and what reaches
Telegram is checked. Consent, opt-out, caps, quiet hours and expiry all move with the injected clock."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.telegram import TelegramAdapter
from core.app import Hub, build_hub, create_app
from core.push.book import Contact
from core.push.config import ChannelRule, PushesConfig, TemplateRoute
from core.push.inbox import NEARBY_NO, NEARBY_YES
from core.push.report import RunReport
from core.push.rules import Channels, Route, Skip
from tests.conftest import REDIS_URL, make_config
from tests.support.fake_telegram_api import BOT_USERNAME, TOKEN, ApiCall, FakeTelegram, Updates

SECRET = "push-Secret_1"
FAST = {"per_chat_per_second": 50, "per_group_per_minute": 1000, "global_per_second": 200}
JINGAN = (31.2240, 121.4480)  # a few hundred metres from the Jing'an store
DUBAI_MALL = (25.1990, 55.2780)
SAMPLES = {"id": "samples", "kind": "sample_pickup", "cron": "0 11 * * *", "sample": "serum-5ml", "enabled": False}


def local(zone: str, *fields: int) -> float:
    return dt.datetime(*fields, tzinfo=ZoneInfo(zone)).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class PushHub:
    client: TestClient
    hub: Hub
    adapter: TelegramAdapter
    tg: FakeTelegram
    updates: Updates

    async def post(self, update: dict[str, Any]) -> None:
        response = await self.client.post("/telegram/webhook", data=json.dumps(update).encode(),
                                          headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert response.status == 200
        await self.settle()

    async def settle(self) -> None:
        assert await self.adapter.outbox.flush(5), "the outbound queue did not drain"

    async def say(self, user_id: int, text: str, lang: str = "en") -> str:
        before = len(self.tg.sent(user_id))
        await self.post(self.updates.text(user_id, text, language_code=lang))
        return "\n".join(c.text for c in self.tg.sent(user_id)[before:])

    async def share_location(self, user_id: int, where: tuple[float, float], lang: str = "en") -> ApiCall:
        await self.post(self.updates.message(user_id, language_code=lang,
                                             location={"latitude": where[0], "longitude": where[1]}))
        return self.tg.sent(user_id)[-1]

    async def press(self, user_id: int, payload: str, lang: str = "en") -> str:
        before = len(self.tg.sent(user_id))
        update = self.updates.callback(user_id, payload)
        update["callback_query"]["from"]["language_code"] = lang
        await self.post(update)
        return "\n".join(c.text for c in self.tg.sent(user_id)[before:])

    async def consent(self, user_id: int, where: tuple[float, float], lang: str = "en") -> None:
        asked = await self.share_location(user_id, where, lang)
        assert [b[0]["callback_data"] for b in asked.keyboard] == [NEARBY_YES, NEARBY_NO]
        await self.press(user_id, NEARBY_YES, lang)

    async def run(self, job: str) -> RunReport:
        assert self.hub.pushes is not None
        report = await self.hub.pushes.run(job)
        await self.settle()
        return report

    async def metrics(self) -> str:
        response = await self.client.get("/metrics")
        return await response.text()


@asynccontextmanager
async def push_hub(tmp_path: Path, clock: Clock, redis_prefix: str | None = None,
                   **pushes: Any) -> AsyncIterator[PushHub]:
    telegram = {"enabled": True, "token": TOKEN, "webhook_secret": SECRET, "bot_username": BOT_USERNAME, **FAST}
    sections: dict[str, Any] = {"pushes": {"jobs": [SAMPLES], **pushes}}
    if redis_prefix is not None:
        sections["redis"] = {"url": REDIS_URL}
    async with FakeTelegram(per_chat_per_second=50, per_group_per_minute=1000, global_per_second=200) as tg:
        telegram["api_base_url"] = tg.base_url
        config = make_config(tmp_path, channels={"telegram": telegram}, **sections)
        hub = await build_hub(config, store_prefix=redis_prefix or "kefu:", clock=clock)
        client = TestClient(TestServer(create_app(hub)))
        await client.start_server()
        try:
            adapter = next(a for a in hub.adapters if isinstance(a, TelegramAdapter))
            yield PushHub(client, hub, adapter, tg, Updates())
        finally:
            await client.close()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, redis_prefix: str) -> str | None:
    """None: the embedded stores; else the key prefix of this test on the suite's Redis."""
    return None if request.param == "memory" else redis_prefix


async def test_a_nearby_sample_is_offered_once_in_the_shoppers_language(tmp_path: Path,
                                                                        backend: str | None) -> None:
    clock = Clock(local("Asia/Shanghai", 2026, 5, 6, 11, 0))
    async with push_hub(tmp_path, clock, backend) as ph:
        asked = await ph.share_location(42, JINGAN, "ja")
        assert "無料サンプル" in asked.text and len(asked.keyboard) == 2
        assert "ありがとうございます" in await ph.press(42, NEARBY_YES, "ja")

        report = await ph.run("samples")
        assert (report.candidates, report.chosen, report.sent, dict(report.skipped)) == (1, 1, 1, {})
        offer = ph.tg.sent(42)[-1].text
        assert "静安嘉里センター店" in offer and "10:00-22:00" in offer and "配信停止" in offer
        assert "美容液サンプル" in offer and "m）" in offer
        code = offer.split("「")[1].split("」")[0]
        assert len(code) == 6 and code.isalnum()

        # Offered once: the next run (same week) skips the shopper and says why.
        again = await ph.run("samples")
        assert (again.sent, dict(again.skipped)) == (0, {Skip.ALREADY_SENT: 1})
        assert len(ph.tg.sent(42)) == 3  # the question, the thanks, one offer
        metrics = await ph.metrics()
        assert 'kefu_push_recipients_total{job="samples",stage="sent"} 1.0' in metrics
        assert 'kefu_push_skipped_total{job="samples",reason="already_sent"} 1.0' in metrics
        assert 'kefu_push_runs_total{job="samples",outcome="ran"} 2.0' in metrics
        runs = await ph.hub.pushes.recent_runs()  # type: ignore[union-attr]
        assert [r["sent"] for r in runs] == [0, 1]


async def test_a_location_is_kept_only_with_consent(tmp_path: Path) -> None:
    clock = Clock(local("Asia/Shanghai", 2026, 5, 6, 11, 0))
    async with push_hub(tmp_path, clock) as ph:
        await ph.share_location(7, JINGAN)
        assert "haven't kept your location" in await ph.press(7, NEARBY_NO)
        assert (await ph.run("samples")).candidates == 0

        # A live location moving (Telegram reports it by itself): dropped silently without consent.
        live = ph.updates.message(7, location={"latitude": JINGAN[0], "longitude": JINGAN[1], "live_period": 600})
        live["edited_message"] = live.pop("message")
        before = len(ph.tg.sent(7))
        await ph.post(live)
        assert len(ph.tg.sent(7)) == before
        assert (await ph.run("samples")).candidates == 0

        # A yes after the question timed out grants consent, but the old location is gone ...
        await ph.share_location(7, JINGAN)
        clock.advance(601)
        await ph.press(7, NEARBY_YES)
        assert (await ph.run("samples")).candidates == 0
        # ... and the next location is kept at once, with a thank-you and no question.
        noted = await ph.share_location(7, JINGAN)
        assert noted.text == "Thanks, I've noted your location." and noted.keyboard == []
        assert (await ph.run("samples")).sent == 1


async def test_consent_and_locations_expire(tmp_path: Path, redis_prefix: str) -> None:
    clock = Clock(local("Asia/Shanghai", 2026, 5, 6, 11, 0))
    async with push_hub(tmp_path, clock, redis_prefix, location={"consent_days": 10, "keep_hours": 24}) as ph:
        await ph.consent(5, JINGAN)
        assert (await ph.run("samples")).candidates == 1
        clock.advance(24 * 3600 + 1)  # the location is a day old: no longer used
        assert (await ph.run("samples")).candidates == 0
        assert (await ph.share_location(5, JINGAN)).keyboard == []  # consent still there: kept, no question
        assert (await ph.run("samples")).candidates == 1
        clock.advance(9 * 86400 + 1)  # past the consent's ten days: the location goes with it
        assert (await ph.run("samples")).candidates == 0
        asked = await ph.share_location(5, JINGAN)
        assert len(asked.keyboard) == 2  # asked again


@pytest.mark.parametrize(("word", "lang", "confirmation", "again", "welcome"), [
    ("退订", "zh-CN", "退订", "订阅", "订阅"),
    ("Stop!", "en", "unsubscribed", "subscribe", "subscribed again"),
    ("配信停止", "ja", "配信を停止", "配信再開", "再開"),
    ("إلغاء الاشتراك", "ar", "إلغاء", "اشتراك", "اشتراك"),
])
async def test_an_opt_out_is_honoured_at_once_and_confirmed(tmp_path: Path, word: str, lang: str,
                                                            confirmation: str, again: str, welcome: str) -> None:
    clock = Clock(local("Asia/Shanghai", 2026, 5, 6, 11, 0))
    async with push_hub(tmp_path, clock) as ph:
        await ph.consent(9, JINGAN, lang)
        answer = await ph.say(9, word, lang)
        assert confirmation in answer
        report = await ph.run("samples")
        assert (report.candidates, report.sent) == (0, 0)  # the location went with the opt-out
        # Shared again while opted out: not kept, and the shopper is told so.
        refused = await ph.share_location(9, JINGAN, lang)
        assert refused.keyboard == []
        assert (await ph.run("samples")).candidates == 0
        assert welcome in await ph.say(9, again, lang)
        await ph.consent(9, JINGAN, lang)
        assert (await ph.run("samples")).sent == 1


async def test_marketing_pushes_are_capped_per_local_day(tmp_path: Path) -> None:
    clock = Clock(local("Asia/Shanghai", 2026, 5, 6, 11, 0))
    frequent = {**SAMPLES, "repeat_after_days": 0.0001}  # so only the cap holds the offers back
    async with push_hub(tmp_path, clock, jobs=[frequent], marketing_per_day=3) as ph:
        await ph.consent(3, JINGAN)
        sent = []
        for _ in range(4):
            clock.advance(60)
            sent.append((await ph.run("samples")).sent)
        assert sent == [1, 1, 1, 0]
        capped = (await ph.hub.pushes.recent_runs(1))[0]  # type: ignore[union-attr]
        assert capped["skipped"] == {"daily_cap": 1}
        clock.advance(86400)  # the next day in Shanghai
        assert (await ph.run("samples")).sent == 1


async def test_quiet_hours_follow_the_shoppers_time_zone(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    # 21:30 in Shanghai is 17:30 in Dubai: the Shanghai shopper is in quiet hours, the Dubai shopper is not.
    clock = Clock(local("Asia/Shanghai", 2026, 5, 6, 21, 30))
    async with push_hub(tmp_path, clock) as ph:
        await ph.consent(1, JINGAN, "zh-CN")
        await ph.consent(2, DUBAI_MALL, "ar")
        with caplog.at_level(logging.INFO, logger="kefu.push"):
            report = await ph.run("samples")
        assert (report.candidates, report.chosen, report.sent) == (2, 1, 1)
        assert dict(report.skipped) == {Skip.QUIET_HOURS: 1}
        assert "دبي مول" in ph.tg.sent(2)[-1].text
        assert ("push run samples (sample_pickup) ran: candidates=2 chosen=1 sent=1 skipped: quiet_hours=1"
                in caplog.text)
        assert 'kefu_push_skipped_total{job="samples",reason="quiet_hours"} 1.0' in await ph.metrics()
        clock.advance(13 * 3600)  # 10:30 the next morning in Shanghai
        report = await ph.run("samples")
        assert report.sent == 1 and "静安嘉里中心店" in ph.tg.sent(1)[-1].text


async def test_a_failed_send_gives_back_the_cap_and_the_mark(tmp_path: Path) -> None:
    clock = Clock(local("Asia/Shanghai", 2026, 5, 6, 11, 0))
    async with push_hub(tmp_path, clock, marketing_per_day=1) as ph:
        await ph.consent(11, JINGAN)
        await ph.adapter.close()  # the channel is gone (shutting down): nothing can be sent
        report = await ph.run("samples")
        assert (report.chosen, report.sent, dict(report.skipped)) == (1, 0, {Skip.SEND_FAILED: 1})
        book = ph.hub.pushes.book  # type: ignore[union-attr]
        assert not any((await book.marketing_counts("2026-05-06")).values())
        assert await book.marked("samples", clock()) == set()


def test_the_wechat_window_needs_a_template_or_the_shopper_is_skipped() -> None:
    now = 1_000_000.0
    template = TemplateRoute(template_id="TPL-1", data={"first": "{text}"})
    config = PushesConfig(channels={"wechat": ChannelRule(window_hours=48, templates={"sample_pickup": template})})
    fresh = Contact("wechat", "oA1", "oA1", now - 47 * 3600, "zh-CN")
    stale = Contact("wechat", "oA1", "oA1", now - 49 * 3600, "zh-CN")
    telegram = Contact("telegram", "42", "42", now - 30 * 86400, "en")

    with_templates = Channels(config, {"wechat", "telegram"}, {"wechat"})
    assert with_templates.route([fresh], "sample_pickup", now) == Route(fresh)
    assert with_templates.route([stale], "sample_pickup", now) == Route(stale, template)
    assert with_templates.route([stale], "payment_reminder", now) == Skip.CHANNEL_WINDOW
    # Telegram has no window: an old Telegram chat beats a closed WeChat window.
    assert with_templates.route([stale, telegram], "payment_reminder", now) == Route(telegram)
    # No template path on this hub (the adapter is not there): skipped and counted.
    assert Channels(config, {"wechat"}, set()).route([stale], "sample_pickup", now) == Skip.CHANNEL_WINDOW
    assert Channels(config, {"telegram"}, set()).route([fresh], "sample_pickup", now) == Skip.NO_CHANNEL


def test_a_channel_user_linked_to_another_customer_is_messaged_once() -> None:
    from core.push.book import dedupe

    old = Contact("telegram", "42", "42", 100.0, "en")
    again = Contact("telegram", "42", "42", 200.0, "en")  # after a link merged telegram:42 into customer c-1
    web = Contact("web", "w-1", "w-1", 150.0, "en")
    merged = dedupe({"telegram:42": [old], "c-1": [again, web], "web:w-9": [Contact("web", "w-9", "w-9", 1.0, "en")]})
    assert merged == {"c-1": [again, web], "web:w-9": [Contact("web", "w-9", "w-9", 1.0, "en")]}
    untouched = {"a": [old], "b": [web]}
    assert dedupe(untouched) is untouched
