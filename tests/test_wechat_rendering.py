"""Rendering for WeChat: text split at sentence boundaries under 2,048 UTF-8 bytes, replies as WeChat
messages, XML-safe text, and who a group message addresses."""

from __future__ import annotations

import pytest

from adapters.wechat import cdata_safe
from adapters.wechat_common import CardPart, ImagePart, TextPart, parse_xml, reply_parts, split_text
from adapters.wechat_group import Addressing
from core.message import Attachment, AttachmentKind, Button, ProductCard, Reply


def test_short_text_is_one_piece() -> None:
    assert split_text("  你好！  ") == ["你好！"]
    assert split_text("") == []


def test_cjk_sentences_are_packed_under_the_limit_and_cut_only_after_a_sentence() -> None:
    text = "".join(f"第{i}句：满三百减五十，可与会员折扣叠加！" for i in range(200))
    pieces = split_text(text)
    assert len(pieces) > 1 and "".join(pieces) == text
    assert all(len(p.encode()) <= 2048 for p in pieces)
    assert all(p.endswith("！") for p in pieces)
    assert all(len(p.encode()) > 2048 - 80 for p in pieces[:-1]), "packed, not one sentence per message"


def test_english_sentences_split_after_the_full_stop() -> None:
    text = " ".join(f"Sentence number {i} explains the return window." for i in range(100))
    pieces = split_text(text, 300)
    assert all(len(p.encode()) <= 300 and p.endswith(".") for p in pieces)
    assert " ".join(pieces) == text


def test_closing_quotes_stay_with_their_sentence() -> None:
    text = "他说：“好的！”然后走了。" * 3
    pieces = split_text(text, 40)
    assert all(not p.startswith("”") for p in pieces)
    assert "".join(pieces) == text


@pytest.mark.parametrize("char", ["好", "😀", "é", "a"])
def test_a_sentence_longer_than_the_limit_is_cut_at_a_character_boundary(char: str) -> None:
    text = char * 3000
    pieces = split_text(text)
    assert "".join(pieces) == text
    width = len(char.encode())
    assert all(2048 - width < len(p.encode()) <= 2048 for p in pieces[:-1])


def test_a_long_run_between_sentences_keeps_the_order() -> None:
    text = "开头一句。" + "长" * 1000 + "。结尾一句。"
    pieces = split_text(text)
    assert "".join(pieces) == text and all(len(p.encode()) <= 2048 for p in pieces)
    assert pieces[-1].endswith("结尾一句。")


def test_replies_become_wechat_messages_in_order() -> None:
    card = ProductCard("保湿面霜", "p-1", price="¥129", url="https://shop/p/1")
    replies = [
        Reply(text="您好"),
        Reply(text="选一个：", buttons=(Button("A", "a"), Button("B", "b"))),
        Reply(text="图片", image=Attachment(AttachmentKind.IMAGE, media_id="m-1")),
        Reply(text="链接图", image=Attachment(AttachmentKind.IMAGE, url="https://cdn/x.jpg")),
        Reply(card=card),
    ]
    assert reply_parts(replies) == [
        TextPart("您好\n\n选一个：\n1. A\n2. B\n\n图片"),
        ImagePart("m-1"),
        TextPart("链接图\nhttps://cdn/x.jpg\n\n保湿面霜 ¥129 https://shop/p/1"),
    ]
    assert reply_parts([Reply(card=card)], cards=True) == [CardPart(card)]
    assert reply_parts([Reply(text="  ")]) == []


def test_text_that_would_break_the_xml_is_made_safe() -> None:
    nasty = "价格]]><Content>0</Content>\x00\x07 ok"
    xml = f"<xml><Content><![CDATA[{cdata_safe(nasty)}]]></Content></xml>"
    assert parse_xml(xml)["Content"] == "价格]]><Content>0</Content> ok"


def test_group_addressing() -> None:
    addressing = Addressing(["客服", "@Shop Bot"], ["退货", "Refund"])
    assert addressing.strip_mention("@客服 你好") == (True, "你好")
    assert addressing.strip_mention("你好 @客服") == (True, "你好")
    assert addressing.strip_mention("@Shop Bot\u2005where is my order") == (True, "where is my order")
    assert addressing.strip_mention("@客服人员 你好") == (False, "@客服人员 你好")
    assert addressing.strip_mention("客服你好") == (False, "客服你好")
    assert addressing.has_keyword("我要退货") and addressing.has_keyword("REFUND please")
    assert not addressing.has_keyword("你好")
    assert Addressing([], []).strip_mention("@客服 hi") == (False, "@客服 hi")


def test_an_image_with_a_media_id_is_a_passive_image_reply() -> None:
    from adapters.wechat import Callback, WeChatAdapter
    from adapters.wechat_common import wechatpy_message
    from core.config import WeChatConfig
    from tests.support.fake_wechat_api import Platform

    key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
    adapter = WeChatAdapter(None, WeChatConfig(enabled=True, token="tok", app_id="wx-app",  # type: ignore[arg-type]
                                               encoding_aes_key=key))
    wx = wechatpy_message({"ToUserName": "gh_shop", "FromUserName": "o-1", "MsgType": "text", "Content": "图"})
    xml = adapter.passive_xml(Callback(wx, None, True, "nonce1"), ImagePart("media-9"))
    reply = parse_xml(Platform("tok", key, "wx-app").open_xml_reply(xml))
    assert reply["MsgType"] == "image" and reply["Image"] == {"MediaId": "media-9"}
    assert (reply["ToUserName"], reply["FromUserName"]) == ("o-1", "gh_shop")
