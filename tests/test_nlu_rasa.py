"""Routing with a real trained Rasa server: thresholds, entities, caches, an outage, the unknown queue."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
import yaml

from core.commerce.products import knowledge
from core.config import PROJECT_ROOT
from core.metrics import Metrics
from core.rasa_router import RasaRouter
from tests.conftest import REDIS_URL, RasaServer, hub_client, make_config, say
from tests.support.tcp_proxy import CountingProxy


def rasa_config(tmp_path: Path, rasa: RasaServer, url: str | None = None, **extra: object) -> object:
    return make_config(tmp_path, nlu={"rasa_urls": [url or rasa.url], "token": rasa.token}, **extra)


async def test_confident_intents_go_to_skills_and_the_rest_below_threshold(tmp_path: Path,
                                                                          rasa_server: RasaServer) -> None:
    async with hub_client(rasa_config(tmp_path, rasa_server)) as (client, hub):
        assert hub.router.name == "rasa"
        greeting = await say(client, "ann", "哈喽～在不在呀")
        assert greeting["route"] == "skill" and "您好" in greeting["replies"][0]["text"]
        orders = await say(client, "james_li_5688", "帮我查下订单 W 261 1340 发货没")
        assert orders["route"] == "skill" and "#W2611340" in orders["replies"][0]["text"]
        weather = await say(client, "ann", "明天北京会下雨吗")
        assert weather["route"] == "fallback"
        queued = (await hub.store.list_unknown())[0]
        assert queued["text"] == "明天北京会下雨吗"
        assert 1 <= len(queued["top"]) <= 3 and all("intent" in t for t in queued["top"])


async def test_a_return_of_two_items_named_in_zh_and_ar_keeps_both(tmp_path: Path, rasa_server: RasaServer) -> None:
    # Rasa marks one or both products; the rest are found in the text: neither may be lost.
    for text, locale in (("订单W5838674的台灯和挂钟我要退货", "zh-CN"),
                         ("أريد إرجاع مصباح المكتب وساعة الحائط من الطلب #W5838674", "ar")):
        async with hub_client(rasa_config(tmp_path / locale, rasa_server)) as (client, _):
            body = await say(client, "ivan_hernandez_6923", text, locale=locale)
            explained = body["replies"][0]["text"]
            named = [knowledge().local_name(name, locale) for name in ("Desk Lamp", "Wall Clock", "Espresso Machine")]
            assert named[0] in explained and named[1] in explained and named[2] not in explained, explained


ADDRESS_ANSWERS = {
    "zh-CN": ("修改订单#W5918442的收货地址", ["中山路88号", "无", "Springfield", "IL", "62704", "USA"], "好的"),
    "ja": ("注文#W5918442の配送先住所を変更したいです", ["中央通り88番地", "なし", "Springfield", "IL", "62704", "USA"],
           "はい"),
    "ar": ("أريد تغيير عنوان الطلب #W5918442", ["شارع الملك فهد 88", "لا يوجد", "Springfield", "IL", "62704", "USA"],
           "نعم"),
}


async def test_an_address_given_field_by_field_reaches_the_order(tmp_path: Path, rasa_server: RasaServer) -> None:
    # Each answer goes to the open question, though Rasa may read a street or a city as out of scope.
    for locale, (opening, answers, yes) in ADDRESS_ANSWERS.items():
        async with hub_client(rasa_config(tmp_path / locale, rasa_server)) as (client, hub):
            user = "sofia_rossi_8776"
            body = await say(client, user, opening, locale=locale)
            for answer in answers:
                assert body["route"] == "skill", (locale, answer, body)
                body = await say(client, user, answer, locale=locale)
            assert [b["payload"] for b in body["replies"][0]["buttons"]] == ["yes", "no"], (locale, body)
            await say(client, user, yes, locale=locale)
            address = hub.engine.commerce.get_order_details("#W5918442")["address"]
            assert (address["address1"], address["city"], address["zip"]) == (answers[0], "Springfield", "62704")


FOLLOW_UPS = {
    "zh-CN": ("T恤穿什么码", ["175", "70"]),
    "ja": ("Tシャツのサイズを相談したいです", ["175センチ", "70キロ"]),
    "ar": ("أبغى أعرف مقاس التي شيرت المناسب لي", ["175", "70"]),
}


async def test_bare_measures_and_a_payment_message_answer_the_question_asked(tmp_path: Path,
                                                                             rasa_server: RasaServer) -> None:
    # "175" alone means nothing to the NLU; after "your height and weight?" it is the answer.
    for locale, (opening, answers) in FOLLOW_UPS.items():
        async with hub_client(rasa_config(tmp_path / locale, rasa_server)) as (client, _):
            body = await say(client, "james_li_5688", opening, locale=locale)
            for answer in answers:
                assert body["route"] == "skill", (locale, answer, body)
                body = await say(client, "james_li_5688", answer, locale=locale)
            assert body["route"] == "skill" and re.search(r"(?<![A-Z])(?:XS|S|M|L|XL|XXL)(?![A-Z])",
                                                          body["replies"][0]["text"])
    async with hub_client(rasa_config(tmp_path / "pay", rasa_server)) as (client, _):
        asked = await say(client, "james_li_5688", "الدفع ما يمشي", locale="ar")
        answered = await say(client, "james_li_5688", "رصيد غير كاف", locale="ar")
        assert (asked["route"], answered["route"]) == ("skill", "skill")
        assert answered["replies"][0]["text"] != asked["replies"][0]["text"], "a diagnosis, not the question again"


async def test_operator_parse_endpoint_reports_the_decision(tmp_path: Path, rasa_server: RasaServer) -> None:
    config = rasa_config(tmp_path, rasa_server, admin={"token": "op-secret"})
    async with hub_client(config) as (client, _):
        denied = await client.post("/api/nlu/parse", json={"text": "你好"})
        assert denied.status == 401
        response = await client.post("/api/nlu/parse", json={"text": "订单#W2611340到哪了", "locale": "zh"},
                                     headers={"Authorization": "Bearer op-secret"})
        body = await response.json()
        assert body["intent"] == "order_status" and body["route"] == "skill" and body["source"] == "rasa"
        assert {"entity": "order_id", "value": "#W2611340"} in body["entities"]
        assert len(body["top"]) == 3 and body["top"][0]["intent"] == "order_status"
        human = await client.post("/api/nlu/parse", json={"text": "转人工"},
                                  headers={"Authorization": "Bearer op-secret"})
        assert (await human.json())["route"] == "handoff"


async def test_a_request_to_another_business_goes_to_the_llm_not_a_skill(tmp_path: Path,
                                                                       rasa_server: RasaServer) -> None:
    # nlu/kefu_scope.py: the same words about our own order stay with the skill, and so does a wallet named after
    # another business; a person asked for stays a person.
    async with hub_client(rasa_config(tmp_path, rasa_server)) as (client, _):
        async def decision(text: str) -> dict:
            return await (await client.post("/api/nlu/parse", json={"text": text})).json()

        for text in ("我在淘宝买的东西到哪了", "has my Amazon order shipped yet?", "楽天で買った商品がまだ届かない",
                     "وين طلبي من كارفور", "话费充值失败了怎么办", "في كوبون خصم أوبر؟"):
            body = await decision(text)
            assert body["intent"] in ("out_of_scope", None) and body["route"] == "fallback", (text, body)
            assert all(e["entity"] != "other_business" for e in body["entities"]), body
        ours = await decision("我买的东西到哪了")
        assert ours["intent"] == "order_status" and ours["route"] == "skill"
        for wallet in ("楽天ペイ使える？", "أقدر أدفع بفودافون كاش؟"):  # a way to pay us, named after another business
            body = await decision(wallet)
            assert body["intent"] == "payment_issue" and body["route"] == "skill", (wallet, body)
        person = await decision("转人工，你们比京东慢多了")
        assert person["intent"] == "human_agent" and person["route"] == "handoff"


async def test_entities_are_normalized(rasa_server: RasaServer) -> None:
    router = RasaRouter([rasa_server.url], rasa_server.token, Metrics())
    try:
        result = await router.parse("订单号 w 261 1340，我手机尾号 5688，邮箱 James.Li@Example.com", "zh-CN")
        assert result.entity("order_id") == "#W2611340"
        assert result.entity("phone_tail") == "5688"
        assert (result.entity("email") or "").lower() == "james.li@example.com"
    finally:
        await router.close()


async def test_an_order_id_span_starts_at_the_id_not_at_the_space_before_it(rasa_server: RasaServer) -> None:
    async with aiohttp.ClientSession() as http:
        for text, span in (("رقم الطلب W4817420 لو سمحت", "W4817420"), ("订单号 w 261 1340 发货没", "w 261 1340"),
                           ("order # W2611340 please", "# W2611340")):
            async with http.post(f"{rasa_server.url}/model/parse", params={"token": rasa_server.token},
                                 json={"text": text}) as response:
                entities = (await response.json())["entities"]
            assert [text[e["start"]:e["end"]] for e in entities if e["entity"] == "order_id"] == [span]


async def test_cache_in_memory_and_shared_through_redis(rasa_server: RasaServer, redis_prefix: str) -> None:
    redis = aioredis.Redis.from_url(REDIS_URL)
    first = RasaRouter([rasa_server.url], rasa_server.token, Metrics(), redis=redis, redis_prefix=redis_prefix)
    second = RasaRouter([rasa_server.url], rasa_server.token, Metrics(), redis=redis, redis_prefix=redis_prefix)
    try:
        await first.ping()
        await second.ping()
        text = "我想退货，衣服太小了"
        fresh = await first.parse(text, "zh-CN")
        again = await first.parse("  我想退货，衣服太小了 ", "zh-CN")
        assert (again.intent, again.entities) == (fresh.intent, fresh.entities)
        assert 'kefu_nlu_parses_total{source="memory"} 1.0' in first.metrics.render().decode()
        shared = await second.parse(text, "zh-CN")
        assert shared.intent == fresh.intent
        second_metrics = second.metrics.render().decode()
        assert 'kefu_nlu_parses_total{source="redis"} 1.0' in second_metrics
        assert 'source="rasa"' not in second_metrics, "the second process never asked Rasa"
    finally:
        await first.close()
        await second.close()
        await redis.aclose()


async def test_rasa_outage_degrades_to_keywords_and_recovers(tmp_path: Path, rasa_server: RasaServer) -> None:
    async with CountingProxy(rasa_server.port) as line:
        config = rasa_config(tmp_path, rasa_server, url=f"http://127.0.0.1:{line.port}")
        async with hub_client(config) as (client, hub):
            assert (await say(client, "ann", "你好呀"))["route"] == "skill"
            line.cut_after(0)  # the Rasa server is gone
            during = await say(client, "ann", "我的订单到哪了")
            assert during["route"] == "skill", "the keyword router still answers common requests"
            health = await (await client.get("/healthz")).json()
            assert health["status"] == "degraded" and health["backends"]["nlu"]["degraded"] is True
            metrics = await (await client.get("/metrics")).text()
            assert "kefu_nlu_degraded 1.0" in metrics and 'kefu_nlu_parses_total{source="degraded"}' in metrics
            line.restore()
            health = await (await client.get("/healthz")).json()
            assert health["status"] == "ok"
            assert (await say(client, "ann", "谢谢啦 拜拜"))["route"] == "skill"
            assert hub.router.degraded is False


async def test_several_servers_share_the_load_and_one_down_is_skipped(tmp_path: Path,
                                                                      rasa_server: RasaServer) -> None:
    async with CountingProxy(rasa_server.port) as first, CountingProxy(rasa_server.port) as second:
        urls = [f"http://127.0.0.1:{first.port}", f"http://127.0.0.1:{second.port}"]
        config = make_config(tmp_path, nlu={"rasa_urls": urls, "token": rasa_server.token})
        async with hub_client(config) as (client, hub):
            assert (await (await client.get("/healthz")).json())["backends"]["nlu"]["servers"] == {"up": 2, "of": 2}
            before = first.requests, second.requests
            for n in range(6):
                await hub.router.parse(f"我的订单到哪了 {n}", "zh-CN")
            assert first.requests - before[0] == 3 and second.requests - before[1] == 3, "round robin"
            second.cut_after(0)
            for n in range(6):
                result = await hub.router.parse(f"我想退货 {n}", "zh-CN")
                assert result.source == "rasa", "the server still up answers; no keyword fallback"
            health = (await (await client.get("/healthz")).json())
            assert health["status"] == "ok" and health["backends"]["nlu"]["servers"] == {"up": 1, "of": 2}
            second.restore()
            health = (await (await client.get("/healthz")).json())
            assert health["backends"]["nlu"]["servers"] == {"up": 2, "of": 2}


def test_export_unknown_writes_a_rasa_training_draft(tmp_path: Path) -> None:
    items = tmp_path / "unknown.jsonl"
    items.write_text(
        '{"text": "你们周末发货吗", "locale": "zh-CN", "top": [{"intent": "order_status", "confidence": 0.61}]}\n'
        '{"text": "你们周末发货吗", "locale": "zh-CN", "top": [{"intent": "order_status", "confidence": 0.6}]}\n'
        '{"text": "do you ship on sundays", "locale": "en", "top": []}\n'
    )
    out = tmp_path / "draft.yml"
    result = subprocess.run([sys.executable, "scripts/export_unknown.py", "--from-file", str(items), str(out)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    draft = yaml.safe_load(out.read_text())
    assert draft["version"] == "3.1"
    by_intent = {entry["intent"]: entry["examples"] for entry in draft["nlu"]}
    assert by_intent["order_status"].count("你们周末发货吗") == 1, "duplicates collapse"
    assert "do you ship on sundays" in by_intent["unlabelled"]


def npy_header(raw: bytes) -> dict[str, object]:
    """The header of a .npy array (format 1.0 or 2.0): dtype, shape, order."""
    assert raw[:6] == b"\x93NUMPY"
    width = 2 if raw[6] == 1 else 4  # bytes of the header length
    size, start = int.from_bytes(raw[8:8 + width], "little"), 8 + width
    return dict(ast.literal_eval(raw[start:start + size].decode("latin1")))


def test_the_model_carries_the_linear_ensembles_as_plain_arrays(rasa_server: RasaServer) -> None:
    """nlu/kefu_ensemble.py stores its logistic regressions as arrays over every intent, never a pickle."""
    model = subprocess.run([str(PROJECT_ROOT / "scripts" / "nlu_train.sh")], capture_output=True, text=True,
                           check=True).stdout.strip().splitlines()[-1]
    intents = set(yaml.safe_load((PROJECT_ROOT / "nlu" / "domain.yml").read_text())["intents"])
    with tarfile.open(model) as tar:
        saved = [zipfile.ZipFile(io.BytesIO(tar.extractfile(m).read()))  # type: ignore[union-attr]
                 for m in tar.getmembers() if m.name.endswith("linear_intents.npz")]
    assert len(saved) == 2, "one on DIET's features, one on the whole text's characters"
    for arrays in saved:
        headers = {name: npy_header(arrays.read(name)) for name in arrays.namelist()}
        assert {"weights.npy", "bias.npy", "intents.npy"} <= set(headers) <= {
            "weights.npy", "bias.npy", "intents.npy", "vocabulary.npy"}
        assert all("O" not in str(h["descr"]) for h in headers.values()), "no object arrays: nothing to unpickle"
        (n_intents,) = headers["intents.npy"]["shape"]  # type: ignore[misc]
        assert n_intents == len(intents) and headers["bias.npy"]["shape"] == (n_intents,)
        assert headers["weights.npy"]["shape"][1] == n_intents  # type: ignore[index]
        if "vocabulary.npy" in headers:
            assert headers["vocabulary.npy"]["shape"] == (headers["weights.npy"]["shape"][0],)  # type: ignore[index]


async def test_a_new_question_naming_a_product_is_not_the_email_asked_for(tmp_path: Path,
                                                                         rasa_server: RasaServer) -> None:
    async with hub_client(rasa_config(tmp_path, rasa_server)) as (client, _):
        asked = await say(client, "guest-sun", "我的订单到哪了")
        assert "邮箱" in asked["replies"][0]["text"]
        sunscreen = await say(client, "guest-sun", "防晒霜多久补涂一次")  # a product entity, and no email
        assert "每2小时" in sunscreen["replies"][0]["text"] and "邮箱" not in sunscreen["replies"][0]["text"]
        signed = await say(client, "guest-sun", "mei.martin4637@example.com")  # the order question still waits
        assert [b["payload"] for b in signed["replies"][0]["buttons"]] == ["#W5564375", "#W3288665", "#W7017301"]
