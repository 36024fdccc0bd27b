"""The confirmation step before every write (core.confirm): plain yes and no in four languages, a non-answer
asked about once, a pending write that lapses, a refusal explained; driven through the whole hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.confirm import CONFIRM_TTL_S, read_answer
from tests.conftest import hub_client, make_config, say


@pytest.mark.parametrize("text", ["yes", "Yes please!", "ok", "好的", "确认", "好的，谢谢", "はい",
                                  "はい、お願いします", "نعم"])
def test_plain_yes(text: str) -> None:
    assert read_answer(text) is True


@pytest.mark.parametrize("text", ["no", "No thanks", "不用了，谢谢", "算了", "いいえ", "لا"])
def test_plain_no(text: str) -> None:
    assert read_answer(text) is False


@pytest.mark.parametrize("text", ["yes but change the address", "hmm", "please", "no, yes", "是不是", ""])
def test_anything_else_is_no_answer(text: str) -> None:
    assert read_answer(text) is None


async def test_a_pending_write_lapses(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    async with hub_client(make_config(tmp_path), clock=lambda: now[0]) as (client, hub):
        user = "mia_moore_8366"
        await say(client, user, "cancel order #W3130288, ordered by mistake", locale="en")
        now[0] += CONFIRM_TTL_S + 1
        late = await say(client, user, "yes")
        assert late["replies"][0]["text"] == ("Sorry, that question has expired, so I haven't changed anything. "
                                              "Please ask me again.")
        assert hub.engine.commerce.get_order_details("#W3130288")["status"] == "pending"
        # Asked again in time, the yes writes.
        await say(client, user, "cancel order #W3130288, ordered by mistake")
        done = await say(client, user, "yes")
        assert done["replies"][0]["text"].startswith("Order #W3130288 is cancelled.")


async def test_a_non_answer_is_asked_about_once_then_dropped(tmp_path: Path) -> None:
    async with hub_client(make_config(tmp_path)) as (client, hub):
        user = "mia_moore_8366"
        await say(client, user, "取消订单W3130288，下错单了")
        again = await say(client, user, "嗯……让我想想")
        assert again["replies"][0]["text"] == "抱歉，这件事需要您明确回答“是”或“否”："
        assert again["replies"][1]["text"].startswith("取消订单#W3130288")
        done = await say(client, user, "是的")
        assert "订单#W3130288已取消" in done["replies"][0]["text"]

        await say(client, "amelia_wilson_4614", "change my default address to 12 Oak Lane, Portland, OR 97201",
                  locale="en")
        await say(client, "amelia_wilson_4614", "hmm")
        dropped = await say(client, "amelia_wilson_4614", "hmm")  # the second non-answer drops the write
        assert "Shall I go ahead" not in dropped["replies"][0]["text"]
        await say(client, "amelia_wilson_4614", "yes")
        assert hub.engine.commerce.get_user_details("amelia_wilson_4614")["address"]["city"] == "Dallas"


async def test_a_new_request_drops_the_pending_write(tmp_path: Path) -> None:
    async with hub_client(make_config(tmp_path)) as (client, hub):
        user = "mia_moore_8366"
        await say(client, user, "cancel order #W3130288, no longer needed", locale="en")
        moved_on = await say(client, user, "where is my order #W5544629")
        assert moved_on["replies"][0]["text"].startswith("Order #W5544629")
        await say(client, user, "yes")
        assert hub.engine.commerce.get_order_details("#W3130288")["status"] == "pending"


async def test_a_refusal_at_write_time_is_explained(tmp_path: Path) -> None:
    async with hub_client(make_config(tmp_path)) as (client, hub):
        user = "mia_moore_8366"
        await say(client, user, "cancel order #W3130288, no longer needed", locale="en")
        hub.engine.commerce.cancel_pending_order("#W3130288", "ordered by mistake")  # meanwhile, elsewhere
        refused = await say(client, user, "yes")
        assert refused["replies"][0]["text"] == ("Sorry, that could not be done: non-pending order cannot be "
                                                 "cancelled")
        assert hub.engine.commerce.get_order_details("#W3130288")["cancel_reason"] == "ordered by mistake"
