"""The LLM agent loop (core.agent) through the hub, against a local chat-completions server scripting tool calls.

Web chat user ids equal to a store user id are that shopper, signed in (the demo's trusted web chat);
sofia_rossi_8776 has pending orders, #W2611340 belongs to james_li_5688.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from core.app import Hub
from core.sessions import HandoffState
from tests.conftest import hub_client, make_config, say
from tests.support.fake_llm import FakeLlm

SOFIA, SOFIA_ORDER = "sofia_rossi_8776", "#W5918442"
SOFIA_EMAIL = "sofia.rossi2645@example.com"
JAMES_ORDER = "#W2611340"
QUESTION = "can you help me with my perfume please"  # no intent keyword: it goes to the LLM


def agent_config(tmp_path: Path, llm: FakeLlm, **llm_extra: Any) -> Any:
    return make_config(tmp_path, llm={"base_url": llm.base_url, "api_key": "sk-test-123", "max_retries": 0,
                                      "timeout_s": 2, **llm_extra})


def tool_messages(llm: FakeLlm, request: int) -> list[dict[str, Any]]:
    return [m for m in llm.requests[request].body["messages"] if m["role"] == "tool"]


def order_status(hub: Hub, order_id: str) -> str:
    return str(hub.engine.commerce.get_order_details(order_id)["status"])


async def test_a_read_tool_result_reaches_the_model_before_it_answers(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("get_order_details", {"order_id": SOFIA_ORDER})], usage=(30, 6))
        llm.script("Your order #W5918442 with the perfume is awaiting shipment.", usage=(50, 9))
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert body["route"] == "llm"
            assert body["replies"][0]["text"] == "Your order #W5918442 with the perfume is awaiting shipment."

            first = llm.requests[0].body
            names = {tool["function"]["name"] for tool in first["tools"]}
            assert {"get_order_details", "cancel_pending_order", "get_size_advice", "diagnose_payment_failure",
                    "get_best_promotion_plan", "transfer_to_human_agents"} <= names
            assert first["parallel_tool_calls"] is False
            system = first["messages"][0]["content"]
            assert "Retail agent policy" in system and "kefu demo shop" in system
            assert f"authenticated as user id {SOFIA}" in system

            second = llm.requests[1].body["messages"]
            assert second[-2]["role"] == "assistant"
            assert second[-2]["tool_calls"][0]["function"]["name"] == "get_order_details"
            assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == second[-2]["tool_calls"][0]["id"]
            order = json.loads(second[-1]["content"])
            assert order["order_id"] == SOFIA_ORDER and order["status"] == "pending"

            session = await hub.store.load(f"web:{SOFIA}")
            assert session.slots["llm_tokens"] == 36 + 59, "the tool step's tokens count too"


async def test_a_write_waits_for_yes_then_runs(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("cancel_pending_order", {"order_id": SOFIA_ORDER, "reason": "no longer needed"})])
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            body = await say(client, SOFIA, QUESTION, locale="en")
            reply = body["replies"][0]
            assert reply["text"].startswith("Cancel order #W5918442 (Perfume (oriental, 30ml, unisex)")
            assert "Reason: No longer needed." in reply["text"]
            assert reply["text"].endswith("Shall I go ahead? Please answer yes or no.")
            assert [b["payload"] for b in reply["buttons"]] == ["yes", "no"]
            assert len(llm.requests) == 1, "the turn ends with the question"
            assert order_status(hub, SOFIA_ORDER) == "pending", "nothing is written before the yes"

            body = await say(client, SOFIA, "yes", locale="en")
            assert body["route"] == "skill"
            assert order_status(hub, SOFIA_ORDER) == "cancelled"
            assert len(llm.requests) == 1


async def test_no_leaves_the_store_unchanged_and_the_model_sees_the_question(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("modify_pending_order_address", {
            "order_id": SOFIA_ORDER, "address1": "1 New Street", "address2": "", "city": "Austin", "state": "TX",
            "country": "USA", "zip": "73301"})])
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            before = hub.engine.commerce.get_order_details(SOFIA_ORDER)
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert "Change the shipping address of order #W5918442 to: 1 New Street, Austin, TX, 73301, USA." in (
                body["replies"][0]["text"])

            body = await say(client, SOFIA, "no", locale="en")
            assert body["replies"][0]["text"] == "All right, I haven't changed anything."
            assert hub.engine.commerce.get_order_details(SOFIA_ORDER) == before

            llm.script("Is there anything else I can do?")
            await say(client, SOFIA, "hmm, let me think about the perfume", locale="en")
            history = llm.requests[-1].body["messages"]
            asked = [m for m in history if m["role"] == "assistant" and "Shall I go ahead?" in (m["content"] or "")]
            assert asked and "1 New Street" in asked[0]["content"]


async def test_tool_errors_go_back_to_the_model(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("get_order_details", '{"order_id": ')])
        llm.script(tool_calls=[("get_order_details", {"order_id": "#W0000000"})])
        llm.script(tool_calls=[("get_order_details", {"order_id": SOFIA_ORDER, "verbose": True})])
        llm.script(tool_calls=[("cancel_pending_order", {"order_id": SOFIA_ORDER, "reason": "too expensive"})])
        llm.script("Sorry, I could not find that order.")
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert body["replies"][0]["text"] == "Sorry, I could not find that order."
            results = [m["content"] for m in tool_messages(llm, 4)]
            assert results == [
                "Error: the arguments of get_order_details are not valid JSON",
                "Error: order not found",
                "Error: get_order_details has no argument verbose",
                "Error: cancel_pending_order: reason must be one of no longer needed, ordered by mistake",
            ]
            assert (await hub.store.load(f"web:{SOFIA}")).pending is None


async def test_an_unknown_tool_is_answered_not_run(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("delete_all_orders", {"user_id": SOFIA})])
        llm.script("I can't do that.")
        async with hub_client(agent_config(tmp_path, llm)) as (client, _):
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert body["replies"][0]["text"] == "I can't do that."
            assert tool_messages(llm, 1)[0]["content"].startswith("Error: unknown tool 'delete_all_orders'")


async def test_only_the_first_of_several_tool_calls_runs(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("get_order_details", {"order_id": SOFIA_ORDER}),
                               ("cancel_pending_order", {"order_id": SOFIA_ORDER, "reason": "no longer needed"})])
        llm.script("Your order is pending.")
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert body["replies"][0]["text"] == "Your order is pending."
            run, skipped = tool_messages(llm, 1)
            assert json.loads(run["content"])["order_id"] == SOFIA_ORDER
            assert skipped["content"].startswith("Error: not run: make one tool call at a time")
            assert (await hub.store.load(f"web:{SOFIA}")).pending is None
            assert order_status(hub, SOFIA_ORDER) == "pending"


async def test_the_step_limit_ends_with_an_honest_answer_and_a_human(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        for _ in range(3):
            llm.script(tool_calls=[("list_all_product_types", {})])
        async with hub_client(agent_config(tmp_path, llm, max_tool_steps=2)) as (client, _):
            body = await say(client, SOFIA, QUESTION, locale="en")
            reply = body["replies"][0]
            assert reply["text"].startswith("Sorry, I couldn't finish that on my own.")
            assert [b["payload"] for b in reply["buttons"]] == ["human please"]
            assert len(llm.requests) == 3 and llm.pending == 0
            assert len(tool_messages(llm, 2)) == 2


async def test_another_shoppers_orders_are_refused(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("get_order_details", {"order_id": JAMES_ORDER})])
        llm.script(tool_calls=[("cancel_pending_order", {"order_id": "#W2974929", "reason": "no longer needed"})])
        llm.script(tool_calls=[("find_user_id_by_email", {"email": "james.li4495@example.com"})])
        llm.script(tool_calls=[("get_user_details", {"user_id": "james_li_5688"})])
        llm.script("I can only help you with your own account.")
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert body["replies"][0]["text"] == "I can only help you with your own account."
            results = [m["content"] for m in tool_messages(llm, 4)]
            assert all(r.startswith("Error: ") and "one shopper per conversation" in r for r in results), results
            assert "james" not in "".join(results[:2]), "nothing about the other shopper leaks"
            session = await hub.store.load(f"web:{SOFIA}")
            assert session.pending is None and session.slots["store_user_id"] == SOFIA
            assert order_status(hub, "#W2974929") == "pending"


async def test_finding_the_shopper_signs_them_in(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("get_order_details", {"order_id": SOFIA_ORDER})])
        llm.script(tool_calls=[("find_user_id_by_email", {"email": SOFIA_EMAIL.upper()})])
        llm.script(tool_calls=[("get_order_details", {"order_id": SOFIA_ORDER})])
        llm.script("Found it.")
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            await say(client, "ann", QUESTION, locale="en")
            assert "not authenticated yet" in llm.requests[0].body["messages"][0]["content"]
            refused, found, order = (m["content"] for m in tool_messages(llm, 3))
            assert refused.startswith("Error: the shopper is not authenticated yet")
            assert json.loads(found) == SOFIA
            assert json.loads(order)["order_id"] == SOFIA_ORDER
            assert (await hub.store.load("web:ann")).slots["store_user_id"] == SOFIA


async def test_llm_failure_midway_through_the_loop_gives_the_apology(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("get_order_details", {"order_id": SOFIA_ORDER})])
        llm.fail(500)
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert body["route"] == "llm"
            assert body["replies"][0]["text"] == ("Sorry, I couldn't finish that answer. Please try again, or ask "
                                                  "for a human colleague.")
            assert 'kefu_errors_total{kind="llm"} 1.0' in hub.metrics.render().decode()
            assert (await hub.store.load(f"web:{SOFIA}")).history[-1].text == body["replies"][0]["text"]


async def test_the_turn_deadline_ends_a_slow_answer_after_a_tool_step(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("get_order_details", {"order_id": SOFIA_ORDER})])
        # each event well inside the 2 s read timeout and the whole answer inside its own 5 s limit,
        # but about 2 s in all: past the turn's 0.8 s
        llm.script("Your order #W5918442 with the perfume is awaiting shipment, as the store says.", interval=0.1)
        config = agent_config(tmp_path, llm, answer_deadline_s=5, turn_deadline_s=0.8)
        async with hub_client(config) as (client, hub):
            started = time.monotonic()
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert time.monotonic() - started < 1.6
            assert body["route"] == "llm" and len(llm.requests) == 2
            assert "Sorry, I couldn't finish that answer." in body["replies"][-1]["text"]
            assert 'kefu_errors_total{kind="llm"} 1.0' in hub.metrics.render().decode()


async def test_skill_tools_answer_from_the_shops_rules(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("get_size_advice", {"kind": "clothes", "height_cm": 175, "weight_kg": 68})])
        llm.script(tool_calls=[("get_size_advice", {"kind": "shoes"})])
        llm.script(tool_calls=[("diagnose_payment_failure", {"description": "it said insufficient balance"})])
        llm.script(tool_calls=[("get_best_promotion_plan", {})])
        llm.script("Here is what I found.")
        async with hub_client(agent_config(tmp_path, llm)) as (client, _):
            await say(client, SOFIA, QUESTION, locale="en")
            size, shoes, payment, promotion = (m["content"] for m in tool_messages(llm, 4))
            assert json.loads(size)["size"]
            assert shoes == "Error: shoes sizes need foot_length_mm"
            assert json.loads(payment)["causes"][0]["cause"] == "insufficient_balance"
            plan = json.loads(promotion)
            assert plan["order_id"].startswith("#W") and "explanation" in plan


async def test_transfer_to_a_human_hands_the_conversation_over(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("transfer_to_human_agents", {"summary": "wants to talk about a warranty"})])
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert body["replies"][0]["text"]
            session = await hub.store.load(f"web:{SOFIA}")
            assert session.handoff.state == HandoffState.QUEUED


async def test_checked_delivery_runs_the_tools_then_checks_the_answer(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("get_order_details", {"order_id": SOFIA_ORDER})])
        llm.script("ご注文は発送準備中でございます。")
        async with hub_client(agent_config(tmp_path, llm)) as (client, _):
            body = await say(client, SOFIA, "香水について教えてください", locale="ja")
            assert body["route"] == "llm"
            assert body["replies"][0]["text"] == "ご注文は発送準備中でございます。"
            assert llm.requests[0].body["stream"] is False and llm.requests[0].body["tools"]
            assert json.loads(tool_messages(llm, 1)[0]["content"])["order_id"] == SOFIA_ORDER


async def test_tools_can_be_turned_off(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script("A plain answer.")
        async with hub_client(agent_config(tmp_path, llm, tools=False)) as (client, _):
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert body["replies"][0]["text"] == "A plain answer."
            assert "tools" not in llm.requests[0].body


async def test_parcel_tracking_and_product_facts_are_tools(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("track_order_parcels", {"order_id": "#W2611340"})])
        llm.script(tool_calls=[("get_product_facts", {"question": "what is in the vitamin C tablets"})])
        llm.script("One tablet has 500 mg, with rose-hip extract.")
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            body = await say(client, "james_li_5688", QUESTION, locale="en")
            tracking, facts = (json.loads(m["content"]) for m in tool_messages(llm, 2))
            assert tracking["parcels"][0]["tracking_id"] == "357962501027" and tracking["parcels"][0]["events"]
            assert facts["health"] is True and facts["facts"][0]["product"] == "Vitamin C Tablets"
            text = body["replies"][0]["text"]
            disclaimer = hub.engine.catalogs.packs.get("en").health_disclaimer
            assert text.startswith("One tablet has 500 mg") and text.endswith(disclaimer)
            assert text.count(disclaimer) == 1, "a health product's facts always carry the disclaimer, once"


async def test_the_confirmation_question_is_in_the_shoppers_language(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script(tool_calls=[("return_delivered_order_items", {
            "order_id": "#W8535951", "item_ids": ["1304426904"], "payment_method_id": "credit_card_5051208"})])
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            body = await say(client, SOFIA, "我想问一下香水的事", locale="zh-CN")
            text = body["replies"][0]["text"]
            assert text.startswith("退回订单 #W8535951 中的 吸尘器（canister")
            assert "3357" in text, "the card is named as the shopper knows it"
            pending = (await hub.store.load(f"web:{SOFIA}")).pending
            assert pending is not None and pending.action == "return_delivered_order_items"
            assert order_status(hub, "#W8535951") == "delivered"


async def test_a_tool_call_after_streamed_text_still_runs_within_the_answer(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script("Let me check.", tool_calls=[("get_order_details", {"order_id": SOFIA_ORDER})])
        llm.script("It is awaiting shipment.")
        llm.script("Sure.", tool_calls=[("cancel_pending_order", {"order_id": SOFIA_ORDER,
                                                                  "reason": "ordered by mistake"})])
        async with hub_client(agent_config(tmp_path, llm)) as (client, hub):
            body = await say(client, SOFIA, QUESTION, locale="en")
            assert body["replies"][0]["text"] == "Let me check.\nIt is awaiting shipment."
            assert json.loads(tool_messages(llm, 1)[0]["content"])["order_id"] == SOFIA_ORDER

            body = await say(client, SOFIA, "hmm, and the perfume then", locale="en")
            text = body["replies"][0]["text"]
            assert text.startswith("Sure.\nCancel order #W5918442") and text.endswith("Please answer yes or no.")
            assert order_status(hub, SOFIA_ORDER) == "pending"
            await say(client, SOFIA, "yes", locale="en")
            assert order_status(hub, SOFIA_ORDER) == "cancelled"
