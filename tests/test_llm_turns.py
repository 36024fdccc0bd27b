"""Turns that go to the LLM: streamed to the web chat, tokens counted, failures answered honestly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import hub_client, make_config, say
from tests.support.fake_llm import FakeLlm


def llm_config(tmp_path: Path, llm: FakeLlm, **llm_extra: Any) -> Any:
    return make_config(tmp_path, llm={"base_url": llm.base_url, "api_key": "sk-test-123", "max_retries": 0,
                                      "timeout_s": 2, **llm_extra})


async def ws_turn(client: TestClient, user_id: str, text: str) -> list[dict[str, Any]]:
    """Send one message over the WebSocket; the frames up to turn_end."""
    frames: list[dict[str, Any]] = []
    async with client.ws_connect(f"/webchat/ws?user_id={user_id}&locale=en") as ws:
        await ws.send_json({"type": "message", "text": text})
        while True:
            frame = await ws.receive_json(timeout=10)
            frames.append(frame)
            if frame["type"] in ("turn_end", "error"):
                return frames


async def test_free_form_question_streams_from_the_llm_over_the_websocket(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script("Our shop opens at nine every morning.", usage=(42, 9))
        async with hub_client(llm_config(tmp_path, llm)) as (client, hub):
            frames = await ws_turn(client, "ann", "When do you open in the morning?")
            assert [f["type"] for f in frames][:2] == ["reply_start", "delta"]
            deltas = [f["text"] for f in frames if f["type"] == "delta"]
            assert len(deltas) > 3, "the reply arrives token by token"
            end = next(f for f in frames if f["type"] == "reply_end")
            assert end["text"] == "".join(deltas) == "Our shop opens at nine every morning."
            assert frames[-1] == {"type": "turn_end", "route": "llm"}

            request = llm.requests[0]
            assert request.headers["Authorization"] == "Bearer sk-test-123"
            assert request.body["model"] == "deepseek-chat" and request.body["stream"] is True
            assert request.body["messages"][0]["role"] == "system"
            assert request.body["messages"][-1] == {"role": "user", "content": "When do you open in the morning?"}

            session = await hub.store.load("web:ann")
            assert session.history[-1].text == "Our shop opens at nine every morning."
            assert session.slots["llm_tokens"] == 51
            metrics = hub.metrics.render().decode()
            assert 'kefu_llm_tokens_total{kind="prompt"} 42.0' in metrics
            assert 'kefu_llm_tokens_total{kind="completion"} 9.0' in metrics
            assert (await hub.store.list_unknown())[0]["text"] == "When do you open in the morning?"


async def test_confident_intents_never_wait_for_the_llm(tmp_path: Path) -> None:
    async with FakeLlm() as llm, hub_client(llm_config(tmp_path, llm)) as (client, _):
        body = await say(client, "james_li_5688", "where is my order", locale="en")
        assert body["route"] == "skill"
        assert llm.requests == []


async def test_llm_stalling_midway_ends_with_an_apology_and_the_turn_is_kept(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script("Let me think about that question for you", stall_after=3)
        async with hub_client(llm_config(tmp_path, llm, timeout_s=0.5)) as (client, hub):
            body = await say(client, "ann", "tell me something about your shop", locale="en")
            text = body["replies"][0]["text"]
            assert text.startswith("Let me")
            apology = "Sorry, I couldn't finish that answer. Please try again, or ask for a human colleague."
            assert text.endswith(apology)
            assert 'kefu_errors_total{kind="llm"} 1.0' in hub.metrics.render().decode()
            assert (await hub.store.load("web:ann")).history[-1].text == text


async def test_llm_down_before_answering_gives_the_apology(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.fail(500, times=1)
        async with hub_client(llm_config(tmp_path, llm)) as (client, _):
            body = await say(client, "ann", "what's your story", locale="en")
            assert body["route"] == "llm"
            assert body["replies"][0]["text"].startswith("Sorry, I couldn't finish that answer.")


async def test_truncated_llm_answer_is_marked(tmp_path: Path) -> None:
    async with FakeLlm() as llm:
        llm.script("A very long answer", finish_reason="length")
        async with hub_client(llm_config(tmp_path, llm)) as (client, _):
            body = await say(client, "ann", "explain everything", locale="en")
            assert body["replies"][0]["text"] == "A very long answer…"
