"""The web chat WebSocket: replies as frames, bad frames answered with an error, the socket kept."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import hub_client, make_config


async def test_greeting_reply_frames_and_bad_frames(tmp_path: Path) -> None:
    async with (
        hub_client(make_config(tmp_path)) as (client, _),
        client.ws_connect("/webchat/ws?user_id=ann&locale=en") as ws,
    ):
        await ws.send_json({"type": "message", "text": "hello"})
        reply = await ws.receive_json(timeout=5)
        assert reply["type"] == "reply" and reply["from"] == "bot"
        assert reply["text"].startswith("Hello!")
        assert [b["title"] for b in reply["buttons"]] == ["Where is my order?", "Talk to a human"]
        assert await ws.receive_json(timeout=5) == {"type": "turn_end", "route": "skill"}

        for bad, fragment in (
            ("{oops", "not valid JSON"),
            ('{"type": "typing"}', "unknown frame type"),
            ('{"text": ""}', "'text'"),
            ('{"text": "' + "x" * 5000 + '"}', "limit is 4096"),
        ):
            await ws.send_str(bad)
            error = await ws.receive_json(timeout=5)
            assert error["type"] == "error" and fragment in error["message"]

        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive_json(timeout=5))["code"] == "invalid_request"

        # The socket still works after all that.
        await ws.send_json({"type": "message", "text": "thanks"})
        assert (await ws.receive_json(timeout=5))["text"] == "You're welcome! Come back any time."


async def test_socket_needs_a_valid_user_id(tmp_path: Path) -> None:
    async with hub_client(make_config(tmp_path)) as (client, _):
        for query in ("", "?user_id=", "?user_id=a%20b"):
            response = await client.get(f"/webchat/ws{query}")
            assert response.status == 400
            assert "'user_id'" in (await response.json())["error"]["message"]
