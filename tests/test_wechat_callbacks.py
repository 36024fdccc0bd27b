"""Official Account and WeCom callbacks through the whole hub: every shared payload, every signature
vector, and hostile input (forged or stale signatures, malformed XML, entities, oversized bodies)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from adapters.wechat_common import parse_xml
from core.app import Hub
from tests.conftest import REDIS_URL, SHARED_DATA, hub_client, make_config
from tests.support.fake_wechat_api import FakeWeChatApi, Platform

PAYLOADS = SHARED_DATA / "payloads" / "wechat"
INDEX = json.loads((PAYLOADS / "index.json").read_text())
VECTORS = json.loads((PAYLOADS / "signature_vectors.json").read_text())
WECOM_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
WECOM_CORP = "wx49f0ab532d5d035a"
OA_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
MENU = {"EVENTKEY": "我的订单到哪了"}
REPLIED = {"text", "image", "voice", "video", "location", "link"}


@asynccontextmanager
async def wechat_hub(tmp_path: Path, api: FakeWeChatApi, prefix: str = "kefu:", redis: bool = False,
                     **wechat: Any) -> AsyncIterator[tuple[TestClient, Hub]]:
    settings = {"enabled": True, "token": "tok", "app_id": "wx-app", "app_secret": "app-secret",
                "api_base_url": api.base_url, "menu": MENU, **wechat}
    sections: dict[str, Any] = {"channels": {"wechat": settings}}
    if redis:
        sections["redis"] = {"url": REDIS_URL}
    async with hub_client(make_config(tmp_path, **sections), prefix) as pair:
        yield pair


def expectation(entry: dict[str, Any]) -> str:
    """What the hub must do with a shared payload: reply, store (a location: no reply, kept with consent only),
    ack, or refuse."""
    if entry["file"].endswith("test_replies__test_reply_render.xml"):
        return "refuse"  # the file is a truncated "<xml>": malformed
    if entry["role"] == "encrypted":
        return "reply"
    event = (entry["event"] or "").lower()
    if entry["msg_type"] in REPLIED or event in ("subscribe", "click"):
        return "reply"
    if event in ("location", "location_select"):
        return "store"
    return "ack"


def plaintext_entries() -> list[dict[str, Any]]:
    return [e for e in INDEX if e["role"] != "encrypted" and "test_work_parser" not in e["file"]]


def work_entries() -> list[dict[str, Any]]:
    return [e for e in INDEX if "test_work_parser" in e["file"]]


def encrypted_entries() -> list[dict[str, Any]]:
    return [e for e in INDEX if e["role"] == "encrypted"]


def test_the_index_covers_all_80_payloads() -> None:
    assert len(INDEX) == 80 == len(list((PAYLOADS / "xml").glob("*.xml")))
    assert len(plaintext_entries()) + len(work_entries()) + len(encrypted_entries()) == 80


async def flush(prefix: str) -> None:
    """Forget every claim and session between payloads (many share a MsgId or a user and second)."""
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def check_outcome(hub: Hub, channel: str, xml: str, expected: str, status: int, body: str,
                        open_reply: Any = None) -> None:
    source = parse_xml(xml) if expected != "refuse" else {}
    name = f"{source.get('MsgType')}/{source.get('Event')}"
    if expected == "refuse":
        assert status == 400, body
        return
    assert status == 200, (name, body)
    if expected == "reply":
        reply = parse_xml(open_reply(body) if open_reply else body)
        assert reply["MsgType"] == "text" and reply["Content"], name
        assert reply["ToUserName"] == source["FromUserName"] and reply["FromUserName"] == source["ToUserName"]
        return
    assert body == "success", (name, body)
    if expected == "store":
        # A location report is acknowledged and kept only for a shopper who said yes to nearby offers
        # (core.push.inbox); these senders never did, so nothing is kept, in the session or the push book.
        customer = await hub.store.resolve(f"{channel}:{source['FromUserName']}")
        assert "location" not in (await hub.store.load(customer)).slots, name
        assert hub.pushes is not None
        assert customer not in {loc.customer_id for loc in await hub.pushes.book.locations(time.time())}, name


async def test_every_plaintext_payload_is_answered_stored_or_acknowledged(
    tmp_path: Path, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    platform = Platform("tok")
    async with FakeWeChatApi() as api, wechat_hub(tmp_path, api, redis_prefix, redis=True) as (client, hub):
        for entry in plaintext_entries():
            xml = (PAYLOADS / entry["file"]).read_text()
            response = await client.post("/wechat/callback", params=platform.plain_query(), data=xml.encode())
            await check_outcome(hub, "wechat", xml, expectation(entry), response.status, await response.text())
            await flush(redis_prefix)
        assert api.sent == []  # every answer went passively
    assert "malformed XML" in caplog.text


async def test_every_payload_in_safe_mode_gets_an_encrypted_passive_reply(tmp_path: Path, redis_prefix: str) -> None:
    platform = Platform("tok", OA_KEY, "wx-app")
    async with FakeWeChatApi() as api, wechat_hub(tmp_path, api, redis_prefix, redis=True,
                                                  encoding_aes_key=OA_KEY) as (client, hub):
        for entry in plaintext_entries():
            xml = (PAYLOADS / entry["file"]).read_text()
            query, body = platform.xml_envelope(xml)
            response = await client.post(f"/wechat/callback?{query}", data=body)
            await check_outcome(hub, "wechat", xml, expectation(entry), response.status, await response.text(),
                                platform.open_xml_reply)
            await flush(redis_prefix)


async def test_every_wecom_payload_through_a_wecom_app(tmp_path: Path, redis_prefix: str) -> None:
    platform = Platform("123456", WECOM_KEY, WECOM_CORP)
    wecom = {"kind": "wecom", "token": "123456", "encoding_aes_key": WECOM_KEY, "app_id": WECOM_CORP,
             "agent_id": "1", "app_secret": "corp-secret"}
    async with FakeWeChatApi() as api, wechat_hub(tmp_path, api, redis_prefix, redis=True, **wecom) as (client, hub):
        for entry in work_entries():
            xml = (PAYLOADS / entry["file"]).read_text()
            query, body = platform.xml_envelope(xml)
            response = await client.post(f"/wechat/callback?{query}", data=body)
            await check_outcome(hub, "wecom", xml, expectation(entry), response.status, await response.text(),
                                platform.open_xml_reply)
            await flush(redis_prefix)
        # The three encrypted payloads as WeCom sends them (re-signed with the vectors' token for a fresh timestamp).
        for entry in encrypted_entries():
            raw = (PAYLOADS / entry["file"]).read_bytes()
            encrypt = str(parse_xml(raw)["Encrypt"])
            response = await client.post("/wechat/callback", params=platform.encrypted_query(encrypt), data=raw)
            text = await response.text()
            assert response.status == 200, (entry["file"], text)
            reply = parse_xml(platform.open_xml_reply(text))
            inner = parse_xml(platform.decrypt(encrypt))
            assert reply["ToUserName"] == inner["FromUserName"] and reply["Content"]
            await flush(redis_prefix)


# -- the signature vectors -------------------------------------------------------------------------


def vector_settings(vector: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {"token": vector["token"], "max_clock_skew_s": 10**10}  # the vectors are from 2014
    if vector["channel"] == "wecom":
        settings.update(kind="wecom", encoding_aes_key=vector["encoding_aes_key"], app_id=vector["receive_id"],
                        agent_id="1")
    return settings


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
async def test_signature_vector(tmp_path: Path, vector: dict[str, Any]) -> None:
    async with FakeWeChatApi() as api, wechat_hub(tmp_path, api, **vector_settings(vector)) as (client, _hub):
        stamp = {"timestamp": vector["timestamp"], "nonce": vector["nonce"]}
        if vector["kind"] == "plain_signature":
            response = await client.get("/wechat/callback",
                                        params={"signature": vector["signature"], "echostr": "ping", **stamp})
            expected_body = "ping"
        elif vector["kind"] == "msg_signature_echostr":
            response = await client.get("/wechat/callback", params={
                "msg_signature": vector["msg_signature"], "echostr": vector["encrypt"], **stamp})
            expected_body = None
        else:
            body = f"<xml><ToUserName><![CDATA[{vector['receive_id']}]]></ToUserName>" \
                   f"<Encrypt><![CDATA[{vector['encrypt']}]]></Encrypt></xml>"
            response = await client.post("/wechat/callback", params={"msg_signature": vector["msg_signature"],
                                                                     **stamp}, data=body.encode())
            expected_body = None
        text = await response.text()
        if not vector["expect_valid"]:
            assert response.status == 403, text
            return
        assert response.status == 200, text
        if expected_body is not None:
            assert text == expected_body
        elif vector["kind"] == "msg_signature_echostr":
            assert text and "<" not in text  # the decrypted echo string
        else:
            platform = Platform(vector["token"], vector["encoding_aes_key"], vector["receive_id"])
            assert parse_xml(platform.open_xml_reply(text))["MsgType"] == "text"


async def test_the_vectors_are_refused_once_their_timestamp_is_older_than_five_minutes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vector = VECTORS[0]
    assert vector["kind"] == "plain_signature" and vector["expect_valid"]
    async with FakeWeChatApi() as api, wechat_hub(tmp_path, api, token=vector["token"]) as (client, _hub):
        response = await client.get("/wechat/callback", params={
            "signature": vector["signature"], "timestamp": vector["timestamp"], "nonce": vector["nonce"],
            "echostr": "ping"})
        assert response.status == 403
        assert "timestamp" in caplog.text


# -- hostile input ------------------------------------------------------------------------------

TEXT = (PAYLOADS / "xml" / "test_parser__test_parse_text_message.xml").read_text()
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<xml><ToUserName>a</ToUserName><FromUserName>evil</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol9;</Content><MsgId>1</MsgId></xml>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>a</ToUserName><FromUserName>evil</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&secret;</Content><MsgId>2</MsgId></xml>"""


@pytest.mark.parametrize(("case", "status", "logged"), [
    ("forged signature", 403, "signature mismatch"),
    ("no signature", 403, "no signature"),
    ("stale timestamp", 403, "timestamp"),
    ("future timestamp", 403, "timestamp"),
    ("malformed xml", 400, "malformed XML"),
    ("billion laughs", 400, "DTD"),
    ("external entity", 400, "DTD"),
    ("not xml root", 400, "root"),
    ("oversized body", 413, "limit"),
    ("text without sender", 400, "FromUserName"),
])
async def test_hostile_callbacks_get_a_4xx_a_log_line_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, status: int, logged: str
) -> None:
    platform = Platform("tok")
    query, body = platform.plain_query(), TEXT.encode()
    if case == "forged signature":
        query["signature"] = Platform("not-the-token").plain_query(int(query["timestamp"]), query["nonce"])["signature"]
    elif case == "no signature":
        del query["signature"]
    elif case == "stale timestamp":
        query = platform.plain_query(timestamp=int(query["timestamp"]) - 301)
    elif case == "future timestamp":
        query = platform.plain_query(timestamp=int(query["timestamp"]) + 400)
    elif case == "malformed xml":
        body = b"<xml><ToUserName>a</ToUserName><MsgType>text"
    elif case == "billion laughs":
        body = BILLION_LAUGHS.encode()
    elif case == "external entity":
        body = EXTERNAL_ENTITY.encode()
    elif case == "not xml root":
        body = TEXT.replace("<xml>", "<html>").replace("</xml>", "</html>").encode()
    elif case == "oversized body":
        body = TEXT.replace("this is a test", "x" * 70_000).encode()
    elif case == "text without sender":
        body = TEXT.replace("<FromUserName><![CDATA[fromUser]]></FromUserName>", "").encode()
    caplog.set_level(logging.INFO)
    async with FakeWeChatApi() as api, wechat_hub(tmp_path, api) as (client, hub):
        response = await client.post("/wechat/callback", params=query, data=body)
        assert response.status == status, await response.text()
        assert logged in caplog.text
        assert "lol" not in await response.text() and "root:" not in await response.text()
        assert api.requests == []  # nothing sent
        assert (await hub.store.load("wechat:fromUser")).history == []  # no turn ran


async def test_forged_and_undecryptable_encrypted_callbacks_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    platform = Platform("tok", OA_KEY, "wx-app")
    other_app = Platform("tok", OA_KEY, "wx-someone-else")
    async with FakeWeChatApi() as api, wechat_hub(tmp_path, api, encoding_aes_key=OA_KEY) as (client, _hub):
        # a plaintext callback to an account in safe mode
        response = await client.post("/wechat/callback", params=Platform("tok").plain_query(), data=TEXT.encode())
        assert response.status == 403
        # the right signature over ciphertext made for another app id
        query, body = other_app.xml_envelope(TEXT)
        assert (await client.post(f"/wechat/callback?{query}", data=body)).status == 403
        # a msg_signature that does not cover this ciphertext
        query, body = platform.xml_envelope(TEXT)
        tampered = body.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[AAAA")
        assert (await client.post(f"/wechat/callback?{query}", data=tampered)).status == 403
        # correctly signed garbage
        encrypt = "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0"
        garbage = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
        response = await client.post("/wechat/callback", params={**platform.encrypted_query(encrypt),
                                                                 "encrypt_type": "aes"}, data=garbage)
        assert response.status == 400
        assert api.requests == []
    assert "another app id" in caplog.text and "cannot decrypt" in caplog.text


async def test_url_verification(tmp_path: Path) -> None:
    platform = Platform("tok")
    async with FakeWeChatApi() as api, wechat_hub(tmp_path, api) as (client, _hub):
        ok = await client.get("/wechat/callback", params=platform.plain_query(echostr="1234567890"))
        assert ok.status == 200 and await ok.text() == "1234567890"
        forged = platform.plain_query(echostr="1234567890")
        forged["nonce"] = "other"
        assert (await client.get("/wechat/callback", params=forged)).status == 403
