"""Locale packs on every reply, through the whole hub (POST /webchat/api/messages and the WebSocket):
the four locales, switching language, the choice order, health disclaimers, and LLM answers checked,
polished or regenerated with the pack."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.formatting import Formats
from core.locale import pick_locale, text_locales
from tests.conftest import hub_client, make_config, say
from tests.support.fake_llm import FakeLlm
from tests.support.locale_checks import SCRIPT, assert_clean, pack_of

LOCALES = ("zh-CN", "en", "ja", "ar")


GREETING = {"zh-CN": "你好", "en": "hello", "ja": "こんにちは", "ar": "مرحبا"}


@pytest.mark.parametrize("locale", LOCALES)
async def test_each_locale_end_to_end(web_hub: tuple[TestClient, Hub], locale: str) -> None:
    client, hub = web_hub
    user = "james_li_5688"
    hello = await say(client, user, GREETING[locale], locale=locale)
    assert hello["route"] == "skill"
    assert pack_of(hub, locale).bot_name in hello["replies"][0]["text"] or locale == "en"
    orders = await say(client, user, "#W2611340", locale=locale)
    order = orders["replies"][0]["text"]
    assert "#W2611340" in order and "357962501027" in order
    assert Formats(locale).money(Decimal("536.65"), "USD") in order, "the total in the shop's currency"
    fallback = await say(client, user, "xyzzy 42", locale=locale)
    assert fallback["route"] == "fallback"
    for body in (hello, orders, fallback):
        assert_clean(hub, locale, body)
        assert re.search(SCRIPT[locale], body["replies"][0]["text"]), body


async def test_a_shopper_switches_language_and_the_choice_sticks(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    switched = await say(client, "ann", "English please", locale="zh-CN")
    assert switched["route"] == "skill"
    assert switched["replies"][0]["text"] == "Of course. From now on I'll answer you in English."
    after = await say(client, "ann", "你好", locale="zh-CN")  # the browser still says zh-CN: the setting wins
    assert after["replies"][0]["text"].startswith("Hello!")
    session = await hub.store.load("web:ann")
    assert session.locale == "en" and session.slots["locale_chosen"] is True

    ja = await say(client, "ann", "日本語でお願いします", locale="zh-CN")
    assert ja["replies"][0]["text"] == "かしこまりました。これからは日本語でご案内いたします。"
    hello = await say(client, "ann", "hello")
    assert "ケフ" in hello["replies"][0]["text"]
    assert_clean(hub, "ja", hello)

    ar = await say(client, "ann", "بالعربية")
    assert ar["replies"][0]["text"].startswith("بكل سرور")
    zh = await say(client, "ann", "用中文")
    assert zh["replies"][0]["text"] == "好的，接下来我会用中文为您服务。"


async def test_without_a_hint_the_text_decides_then_the_conversation_keeps_it(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    en = await say(client, "bob", "where is my order please")  # no locale: the text is English
    assert "email address" in en["replies"][0]["text"]
    more = await say(client, "bob", "nobody@example.com")  # says nothing about the language: the session's
    assert "couldn't find an account" in more["replies"][0]["text"]
    zh = await say(client, "cy", "Nike Air")  # brand names are not English: the shop's default
    assert zh["route"] == "fallback" and "抱歉" in zh["replies"][0]["text"]


def test_the_locale_choice_order() -> None:
    supported, default = LOCALES, "zh-CN"

    def pick(**kw: Any) -> tuple[str, str]:
        args: dict[str, Any] = {"hint": None, "session_locale": None, "chosen": False, "text": "",
                                "supported": supported, "default": default, **kw}
        choice = pick_locale(**args)
        return choice.locale, choice.source

    assert pick() == ("zh-CN", "default")
    assert pick(session_locale="ja") == ("ja", "session")
    assert pick(session_locale="ja", text="where is my order") == ("en", "text")
    assert pick(session_locale="ja", text="注文") == ("ja", "text"), "kanji-only text keeps a ja conversation"
    assert pick(text="注文") == ("zh-CN", "text")
    assert pick(hint="ar-SA", text="where is my order") == ("ar", "hint")
    assert pick(hint="en-US", session_locale="ja", chosen=True) == ("ja", "setting")
    assert pick(hint="xx", session_locale="ja", chosen=True, text="hello there you") == ("ja", "setting")
    assert text_locales("iPhone 15 Pro Max") == ()
    assert text_locales("مرحبا") == ("ar",) and text_locales("こんにちは") == ("ja",)


@pytest.mark.parametrize(("locale", "question"), [
    ("en", "Do you have vitamin C gummies?"), ("zh-CN", "有没有益生菌"), ("ja", "コラーゲンのサプリを探しています"),
    ("ar", "هل لديكم مكملات فيتامين د؟"),
])
async def test_a_health_question_gets_the_disclaimer(tmp_path: Path, locale: str, question: str) -> None:
    async with hub_client(make_config(tmp_path)) as (client, hub):
        body = await say(client, "ann", question, locale=locale)
        disclaimer = pack_of(hub, locale).health_disclaimer
        assert body["replies"][-1]["text"].endswith(disclaimer)
        assert_clean(hub, locale, body)
        plain = await say(client, "ann", "xyzzy 42", locale=locale)
        assert disclaimer not in plain["replies"][-1]["text"]


async def test_the_persona_api_gives_the_widget_its_bot_and_direction(tmp_path: Path) -> None:
    async with hub_client(make_config(tmp_path)) as (client, _):
        ar = await (await client.get("/webchat/api/persona?locale=ar-SA")).json()
        assert ar == {"locale": "ar", "bot_name": "المساعد كيفو", "avatar": "robot", "avatar_kind": "robot",
                      "direction": "rtl"}
        en = await (await client.get("/webchat/api/persona?locale=en-GB")).json()
        assert (en["locale"], en["direction"], en["bot_name"]) == ("en", "ltr", "Kefu")
        default = await (await client.get("/webchat/api/persona")).json()
        assert default["locale"] == "zh-CN"
        assert (await client.get("/webchat/api/persona?locale=%3Cx%3E")).status == 400


# ---------------------------------------------------------------- the LLM through the pack


def llm_config(tmp_path: Path, llm: FakeLlm) -> Any:
    return make_config(tmp_path, llm={"base_url": llm.base_url, "api_key": "sk-test", "max_retries": 0,
                                      "timeout_s": 2})


JA_QUESTION = "このクリームは敏感肌でも大丈夫ですか"


async def test_ja_llm_prompt_carries_the_pack_and_a_casual_answer_is_polished(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script("わかりました。敏感肌の方にもお使いいただける処方があります。")
        async with hub_client(llm_config(tmp_path, llm)) as (client, hub):
            body = await say(client, "ann", JA_QUESTION, locale="ja")
            assert body["route"] == "llm"
            assert body["replies"][0]["text"] == "かしこまりました。敏感肌の方にもお使いいただける処方がございます。"
            assert_clean(hub, "ja", body)
            (request,) = llm.requests
            assert request.body["stream"] is False, "ja answers are checked whole before they are sent"
            system = request.body["messages"][0]["content"]
            assert "ケフ" in system and "です・ます" in system and "お問い合わせ" in system


async def test_ja_llm_answer_a_rewrite_cannot_fix_is_regenerated_once(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script("敏感肌でも使えると思う。")
        llm.script("敏感肌の方にもお使いいただけます。", usage=(20, 8))
        async with hub_client(llm_config(tmp_path, llm)) as (client, hub):
            body = await say(client, "ann", JA_QUESTION, locale="ja")
            assert body["replies"][0]["text"] == "敏感肌の方にもお使いいただけます。"
            _, second = llm.requests
            retry = second.body["messages"]
            assert retry[-2] == {"role": "assistant", "content": "敏感肌でも使えると思う。"}
            assert retry[-1]["role"] == "system" and "plain_form" in retry[-1]["content"]
            assert "です・ます" in retry[-1]["content"]
            assert (await hub.store.load("web:ann")).slots["llm_tokens"] == 15 + 28
            assert 'kefu_errors_total{kind="llm_regenerated"} 1.0' in hub.metrics.render().decode()


async def test_ja_llm_answer_flagged_twice_is_never_sent(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script("使えると思う。")
        llm.script("たぶん大丈夫だと思う。")
        async with hub_client(llm_config(tmp_path, llm)) as (client, hub):
            body = await say(client, "ann", JA_QUESTION, locale="ja")
            text = body["replies"][0]["text"]
            assert "思う" not in text and text.startswith("申し訳ございません")
            assert_clean(hub, "ja", body)
            assert len(llm.requests) == 2


async def test_streamed_llm_answer_is_shaped_on_the_way(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script("This vitamin is the cheapest one we carry, and no miracle.")
        async with hub_client(llm_config(tmp_path, llm)) as (client, hub):
            frames: list[dict[str, Any]] = []
            async with client.ws_connect("/webchat/ws?user_id=ann&locale=en") as ws:
                await ws.send_json({"type": "message", "text": "tell me about your vitamin gummies"})
                while not frames or frames[-1]["type"] not in ("turn_end", "error"):
                    frames.append(await ws.receive_json(timeout=10))
            deltas = [f["text"] for f in frames if f["type"] == "delta"]
            assert len(deltas) > 3, "still streamed"
            assert not any("cheapest" in d or "miracle" in d for d in deltas)
            end = next(f for f in frames if f["type"] == "reply_end")
            disclaimer = pack_of(hub, "en").health_disclaimer
            assert end["text"] == ("This vitamin is the best-value one we carry, and no remarkable.\n\n" + disclaimer)
            assert "".join(deltas) == end["text"]
            system = llm.requests[0].body["messages"][0]["content"]
            assert "You are Kefu" in system and "cheapest" in system, "the rules name the words never to use"
