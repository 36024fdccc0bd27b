"""Compensation: coupon amount rules, the daily cap (kept in the session, on the memory store and on Redis),
the audit log, and `compensate` as other skills call it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.config import CompensationConfig, ConfigError, load_config, parse_config
from core.locale import Translator
from core.message import ChannelUser, Chat, ChatKind, Message
from core.nlu import NluResult
from core.redis_store import RedisStore
from core.sessions import MemoryStore, Session, SessionStore
from core.skills.base import SkillContext
from core.skills.compensation import (
    AMOUNT_CAP,
    COUNT_CAP,
    JsonlAudit,
    compensate,
    compensation_text,
    coupon_amount,
    grant_compensation,
)
from tests.conftest import REDIS_URL, hub_client, make_config

RULES = CompensationConfig()  # the defaults, as in bot_config.yaml
D = Decimal
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


@pytest.mark.parametrize(("value", "tier", "amount"), [
    ("0", "guest", 5),  # band 0 -> 5
    ("49.99", "regular", 5),  # still band 0
    ("50", "regular", 10),  # band 50 -> 10
    ("250", "regular", 20),  # band 200 -> 20
    ("600", "regular", 30),  # band 500 -> 30
    ("600", "vip", 45),  # 30 x 1.5
    ("250", "vip", 30),  # 20 x 1.5
    ("30", "unknown-tier", 5),  # unknown tiers count x 1
])
def test_coupon_amount_from_order_value_and_tier(value: str, tier: str, amount: int) -> None:
    assert coupon_amount(RULES, D(value), tier) == amount


def test_coupon_amount_stays_within_5_and_50() -> None:
    generous = RULES.model_copy(update={"tier_multipliers": {"vip": 3.0}})
    assert coupon_amount(generous, D(600), "vip") == 50  # 30 x 3 = 90, capped at 50
    stingy = RULES.model_copy(update={"tier_multipliers": {"guest": 0.1}})
    assert coupon_amount(stingy, D(0), "guest") == 5  # 5 x 0.1 = 0.5, raised to 5


def test_daily_caps_and_the_audit_log(tmp_path: Path) -> None:
    audit = JsonlAudit(tmp_path / "audit.jsonl")
    session = Session(customer_id="c1")

    def grant(value: str, tier: str = "regular", now: float = NOON) -> tuple[bool, Decimal, str | None]:
        g = grant_compensation(RULES, session, audit, order_value=D(value), tier=tier, reason="late", now=now)
        return g.granted, g.amount, g.refused

    # Caps: 2 coupons and 60 CNY a day.
    assert grant("600", "vip") == (True, 45, None)  # 45 of 60 used
    assert grant("600") == (True, 15, None)  # 30 asked, 15 left of today's 60
    assert grant("10") == (False, 0, COUNT_CAP)  # third coupon today
    assert grant("10", now=NOON + 13 * 3600) == (True, 5, None)  # 01:00 the next day in Shanghai: a new day
    entries = audit.entries()
    assert [e["granted"] for e in entries] == [True, True, False, True]
    assert entries[2]["refused"] == COUNT_CAP and entries[0]["amount"] == "45" and entries[0]["currency"] == "CNY"
    assert entries[0]["coupon_code"].startswith("KF") and entries[0]["customer_id"] == "c1"

    more = RULES.model_copy(update={"daily_count_cap": 5})
    other = Session(customer_id="c2")
    g1 = grant_compensation(more, other, audit, order_value=D(600), tier="vip", reason="late", now=NOON)
    g2 = grant_compensation(more, other, audit, order_value=D(600), tier="vip", reason="late", now=NOON)
    g3 = grant_compensation(more, other, audit, order_value=D(0), tier="guest", reason="late", now=NOON)
    assert (g1.amount, g2.amount, g3.refused) == (45, 15, AMOUNT_CAP)  # nothing left of the 60


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis = RedisStore.from_url(REDIS_URL, prefix=redis_prefix)
    yield redis
    await redis.close()


async def test_the_daily_cap_survives_turns_on_both_stores(store: SessionStore, tmp_path: Path) -> None:
    audit = JsonlAudit(tmp_path / "audit.jsonl")
    results = []
    for _ in range(3):  # three turns of one customer: each loads the session, grants, saves
        turn = await store.open_turn("web:cap-shopper", None)
        assert turn is not None
        grant = grant_compensation(RULES, turn.session, audit, order_value=D(100), tier="regular", reason="late",
                                   now=NOON)
        await store.close_turn(turn, turn.session)
        results.append(grant.granted)
    assert results == [True, True, False]


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Hub]]:
    async with hub_client(make_config(tmp_path)) as pair:
        yield pair


def skill_context(hub: Hub, user_id: str | None, locale: str) -> SkillContext:
    session = Session(customer_id=f"web:{user_id}")
    if user_id:
        session.slots["store_user_id"] = user_id
    who = user_id or "guest"
    message = Message(ChannelUser("web", who), Chat(ChatKind.DIRECT, who))
    engine = hub.engine
    return SkillContext(message, "", session, NluResult(None, 0.0), Translator(engine.catalogs, locale),
                        engine.commerce, hub.config.shop, NOON)


async def test_compensate_as_a_skill_calls_it(web: tuple[TestClient, Hub], tmp_path: Path) -> None:
    _, hub = web
    ctx = skill_context(hub, "james_li_5688", "en")
    grant = compensate(ctx, reason="late_delivery", order_id="#W2611340")  # 536.65 -> band 500 -> 30 CNY
    assert grant.granted and grant.amount == 30
    assert compensation_text(ctx, grant) == (
        f"As an apology, here is a coupon worth CN¥30.00 for your next order: {grant.coupon_code}.")
    # Another shopper's order counts as no order: the lowest band.
    assert compensate(ctx, reason="late_delivery", order_id="#W7678072").amount == 5  # value 0 -> band 0
    audit = JsonlAudit(tmp_path / "var" / "compensation_audit.jsonl").entries()
    assert [e["order_id"] for e in audit] == ["#W2611340", None]
    zh = skill_context(hub, None, "zh-CN")
    guest = compensate(zh, reason="late_delivery")
    assert guest.granted and guest.amount == 5  # a guest's own session: a fresh cap
    assert "优惠券" in compensation_text(zh, guest)
    assert compensation_text(zh, compensate(zh, reason="x")) != compensation_text(zh, compensate(zh, reason="x"))
    assert compensation_text(zh, compensate(zh, reason="x")) == "已将您的情况转交给我们的团队，关于补偿会尽快给您答复。"


def test_compensation_rules_are_checked_when_the_config_is_read() -> None:
    for bad, key in (({"timezone": "Mars/Base"}, "timezone"), ({"min_amount": 10, "max_amount": 5}, "max_amount")):
        with pytest.raises(ConfigError, match=f"shop.compensation.{key}"):
            parse_config({"shop": {"compensation": bad}}, env={})
    assert load_config().shop.compensation == CompensationConfig()  # bot_config.yaml states the defaults
