"""core.llm against a real local HTTP server (tests/support/fake_llm.py).

Recorded streams are checked against the openai SDK's own chunk accumulation
(`ChatCompletionStreamState`), fed the same bytes parsed here independently.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from core.config import LlmConfig
from core.llm import ChunkAccumulator, LlmClient, LlmResult, LlmStream, LlmUnavailable
from tests.support.fake_llm import FakeLlm

pytestmark = pytest.mark.asyncio

STREAMS = Path(__file__).resolve().parents[2] / "shared" / "data" / "llm-streams"
SSE_FILES = sorted((STREAMS / "sse").glob("*.bin"))
FEATURES = {Path(e["file"]).name: set(e["features"]) for e in json.loads((STREAMS / "index.json").read_text())}
LENGTH_FILE = STREAMS / "sse" / "4cc50a6135d254573a502310e6af1246f55edb6ad95fa24059f160996b68866d.bin"
TEXT_FILE = STREAMS / "sse" / "e2aad469b71d1d4894ff833ea147020a9d875eb7ce644a0ff355581690a4cbfd.bin"

KEY = "sk-test-7f3a9c-very-secret"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Where is my order #W2378156?"}]
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_order_details",
            "description": "Look up an order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
]

Connect = Callable[..., LlmClient]


@pytest_asyncio.fixture
async def llm() -> AsyncIterator[FakeLlm]:
    async with FakeLlm() as server:
        yield server


@pytest_asyncio.fixture
async def connect(llm: FakeLlm) -> AsyncIterator[Connect]:
    """connect(**LlmConfig fields) -> an LlmClient pointed at the fake server, closed after the test."""
    clients: list[LlmClient] = []

    def make(**overrides: Any) -> LlmClient:
        fields: dict[str, Any] = {"base_url": llm.base_url, "api_key": KEY, "timeout_s": 5.0, "max_retries": 2}
        client = LlmClient(LlmConfig(**{**fields, **overrides}))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def drain(stream: LlmStream) -> list[str]:
    return [delta async for delta in stream]


def sse_chunks(path: Path) -> list[ChatCompletionChunk]:
    """The recorded stream's chunks, parsed without going through core.llm or HTTP."""
    chunks = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunks.append(ChatCompletionChunk.model_validate(json.loads(line.removeprefix("data: "))))
    return chunks


def oracle(path: Path) -> dict[str, Any]:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in sse_chunks(path):
        state.handle_chunk(chunk)
    snapshot = state.current_completion_snapshot
    usage = snapshot.usage
    return {
        "model": snapshot.model,
        "usage": (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) if usage else None,
        "choices": [
            {
                "index": c.index,
                "text": c.message.content or "",
                "refusal": c.message.refusal,
                "finish_reason": c.finish_reason,
                "tool_calls": [(t.id, t.function.name, t.function.arguments) for t in c.message.tool_calls or []],
            }
            for c in snapshot.choices
        ],
    }


def summary(result: LlmResult) -> dict[str, Any]:
    usage = result.usage
    return {
        "model": result.model,
        "usage": (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) if usage else None,
        "choices": [
            {
                "index": c.index,
                "text": c.text,
                "refusal": c.refusal,
                "finish_reason": c.finish_reason,
                "tool_calls": [(t.id, t.name, t.arguments) for t in c.tool_calls],
            }
            for c in result.choices
        ],
    }


# -- recorded streams -------------------------------------------------------------------------


@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name[:8])
async def test_replayed_stream_matches_sdk_accumulation(llm: FakeLlm, connect: Connect, path: Path) -> None:
    llm.replay(path)
    stream = connect().stream(MESSAGES)
    deltas = await drain(stream)
    result = stream.result

    expected = oracle(path)
    assert summary(result) == expected
    assert "".join(deltas) == result.text == stream.text
    assert result.usage is not None  # from the final chunk whose `choices` is empty
    # The comparison above must not be vacuous: each file shows what index.json says it shows.
    features = FEATURES[path.name]
    assert all(c.finish_reason for c in result.choices)
    assert any(c.refusal for c in result.choices) == ("refusal" in features)
    assert any(c.tool_calls for c in result.choices) == ("tool_calls" in features)
    assert result.truncated == ("finish=length" in features)
    assert all(call.id and call.name and json.loads(call.arguments) is not None for call in result.tool_calls)


async def test_every_recorded_stream_is_covered() -> None:
    assert len(SSE_FILES) == len(FEATURES) == 12


async def test_finish_reason_length_is_reported_as_truncated(llm: FakeLlm, connect: Connect) -> None:
    llm.replay(LENGTH_FILE)
    stream = connect().stream(MESSAGES)
    assert "".join(await drain(stream)) == '{"'
    assert stream.result.finish_reason == "length"
    assert stream.result.truncated


async def test_scripted_truncation_in_json_completion(llm: FakeLlm, connect: Connect) -> None:
    llm.script("Our return window is", finish_reason="length")
    result = await connect().complete(MESSAGES)
    assert result.truncated and result.text == "Our return window is"


# -- scripted replies ---------------------------------------------------------------------------


async def test_json_completion_rebuilds_exactly(llm: FakeLlm, connect: Connect) -> None:
    llm.script("您的订单已发货，预计明天送达。", usage=(31, 12))
    result = await connect(model="deepseek-chat", max_tokens=123, temperature=0.5).complete(MESSAGES)

    assert result.text == "您的订单已发货，预计明天送达。"
    assert result.finish_reason == "stop" and not result.truncated
    assert result.tool_calls == []
    assert result.choices[0].refusal is None
    assert result.usage is not None and (result.usage.prompt_tokens, result.usage.total_tokens) == (31, 43)
    assert result.model == "deepseek-chat"
    [request] = llm.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "deepseek-chat"
    assert request.body["messages"] == MESSAGES
    assert (request.body["max_tokens"], request.body["temperature"]) == (123, 0.5)
    assert not request.body.get("stream")
    assert "tools" not in request.body


async def test_json_tool_call_rebuilds_exactly(llm: FakeLlm, connect: Connect) -> None:
    llm.script(tool_calls=[("get_order_details", {"order_id": "#W2378156"})])
    result = await connect().complete(MESSAGES, tools=TOOLS)

    [call] = result.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_1", "get_order_details", '{"order_id": "#W2378156"}')
    assert result.finish_reason == "tool_calls"
    assert result.text == ""
    assert llm.requests[0].body["tools"] == TOOLS
    assert result.assistant_message() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_order_details", "arguments": '{"order_id": "#W2378156"}'},
            }
        ],
    }


async def test_streamed_tool_calls_rebuild_exactly(llm: FakeLlm, connect: Connect) -> None:
    first = '{"order_id": "#W2378156", "note": "送到前台"}'
    second = {"email": "mia.garcia2723@example.com"}
    llm.script("Let me check.", tool_calls=[("get_order_details", first), ("find_user", second)], usage=(50, 20))
    stream = connect().stream(MESSAGES, tools=TOOLS)
    deltas = await drain(stream)
    result = stream.result

    assert len(deltas) > 1 and "".join(deltas) == "Let me check." == result.text
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("call_1", "get_order_details", first),
        ("call_2", "find_user", '{"email": "mia.garcia2723@example.com"}'),
    ]
    assert result.finish_reason == "tool_calls"
    assert result.usage is not None and (result.usage.completion_tokens, result.usage.total_tokens) == (20, 70)
    body = llm.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["tools"] == TOOLS


def sse(*choices: dict[str, Any]) -> bytes:
    """A hand-made stream: one chunk per choice delta, then [DONE]."""
    chunks = [
        {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [c]} for c in choices
    ]
    return "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks).encode() + b"data: [DONE]\n\n"


async def test_stream_without_usage_chunk_has_no_usage(llm: FakeLlm, connect: Connect) -> None:
    # A server that ignores include_usage: the result is complete, only without usage.
    llm.raw(
        200,
        sse(
            {"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None},
            {"index": 0, "delta": {}, "finish_reason": "stop"},
        ),
        content_type="text/event-stream",
    )
    stream = connect().stream(MESSAGES)
    assert await drain(stream) == ["Hi"]
    assert stream.result.usage is None and stream.result.finish_reason == "stop"


async def test_stream_that_ends_without_finish_reason_is_unavailable(llm: FakeLlm, connect: Connect) -> None:
    llm.raw(
        200, sse({"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}), content_type="text/event-stream"
    )
    stream = connect().stream(MESSAGES)
    with pytest.raises(LlmUnavailable, match="finish_reason") as caught:
        await drain(stream)
    assert caught.value.kind == "bad response"
    assert stream.text == "Hel"


async def test_accumulator_does_not_repeat_ids_and_names_sent_in_every_delta() -> None:
    # Some OpenAI-compatible servers repeat id and name in every tool-call delta.
    acc = ChunkAccumulator()
    for arguments in ('{"a"', ": 1}"):
        delta = {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": arguments}}]}
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        acc.add(ChatCompletionChunk.model_validate({**EMPTY_CHUNK, "choices": [choice]}))
    assert [(c.id, c.name, c.arguments) for c in acc.result().tool_calls] == [("c1", "f", '{"a": 1}')]


EMPTY_CHUNK: dict[str, Any] = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []}


# -- retries, timeouts, failures ---------------------------------------------------------------


async def test_429_then_success_is_retried(llm: FakeLlm, connect: Connect) -> None:
    llm.fail(429)
    llm.script("ok")
    result = await connect(max_retries=2).complete(MESSAGES)
    assert result.text == "ok"
    assert len(llm.requests) == 2


async def test_500_then_success_is_retried_before_a_stream_starts(llm: FakeLlm, connect: Connect) -> None:
    llm.fail(500)
    llm.script("streamed ok")
    stream = connect(max_retries=2).stream(MESSAGES)
    assert "".join(await drain(stream)) == "streamed ok"
    assert len(llm.requests) == 2
    assert llm.pending == 0


async def test_retries_exhausted_is_unavailable(llm: FakeLlm, connect: Connect) -> None:
    llm.fail(500, times=2)
    llm.script("never reached")
    with pytest.raises(LlmUnavailable) as caught:
        await connect(max_retries=1).complete(MESSAGES)
    assert caught.value.kind == "server error"
    assert "HTTP 500" in str(caught.value) and "retries exhausted" in str(caught.value)
    assert len(llm.requests) == 2 and llm.pending == 1


async def test_rate_limit_exhausted_says_so(llm: FakeLlm, connect: Connect) -> None:
    llm.fail(429)
    with pytest.raises(LlmUnavailable) as caught:
        await connect(max_retries=0).complete(MESSAGES)
    assert caught.value.kind == "rate limited"
    assert len(llm.requests) == 1


async def test_stall_before_headers_times_out_within_the_retry_budget(llm: FakeLlm, connect: Connect) -> None:
    timeout, retries = 0.3, 1
    llm.stall()
    llm.stall()
    client = connect(timeout_s=timeout, max_retries=retries)
    started = time.monotonic()
    with pytest.raises(LlmUnavailable) as caught:
        await client.complete(MESSAGES)
    elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert len(llm.requests) == retries + 1
    # Each attempt waits one timeout; the SDK's backoff between them is at most 0.5 s for one retry.
    assert timeout * (retries + 1) <= elapsed < timeout * (retries + 1) + 0.5 + 0.5


async def test_stall_before_stream_headers_is_unavailable(llm: FakeLlm, connect: Connect) -> None:
    llm.stall()
    stream = connect(timeout_s=0.3, max_retries=0).stream(MESSAGES)
    with pytest.raises(LlmUnavailable, match=r"^timeout"):
        await drain(stream)
    assert stream.text == "" and len(llm.requests) == 1


async def test_stall_midway_through_a_stream_keeps_the_partial_text(llm: FakeLlm, connect: Connect) -> None:
    # Events: role chunk, "Hell", "o th", then silence.
    llm.script("Hello there, your parcel is on its way.", stall_after=3)
    stream = connect(timeout_s=0.3, max_retries=1).stream(MESSAGES)
    received: list[str] = []
    started = time.monotonic()
    with pytest.raises(LlmUnavailable, match="midway") as caught:
        async for delta in stream:
            received.append(delta)
    assert time.monotonic() - started < 1.5
    assert caught.value.kind == "timeout"
    assert received == ["Hell", "o th"] and stream.text == "Hello th"
    assert not stream.done
    with pytest.raises(RuntimeError):
        _ = stream.result
    assert len(llm.requests) == 1  # a stream that has started is never re-sent


async def test_a_trickling_stream_ends_at_the_answer_deadline(llm: FakeLlm, connect: Connect) -> None:
    # One event every 0.15 s never trips the 5 s read timeout; the whole answer would take over 1.5 s.
    llm.script("Hello there, your parcel is on its way.", interval=0.15)
    stream = connect(answer_deadline_s=0.5).stream(MESSAGES)
    received: list[str] = []
    started = time.monotonic()
    with pytest.raises(LlmUnavailable, match=r"within 0\.5s") as caught:
        async for delta in stream:
            received.append(delta)
    assert 0.5 <= time.monotonic() - started < 1.0
    assert caught.value.kind == "timeout"
    assert received and stream.text == "".join(received) and not stream.done
    assert len(llm.requests) == 1


async def test_the_answer_deadline_bounds_retries_of_a_complete_call(llm: FakeLlm, connect: Connect) -> None:
    llm.stall(0.4)  # then 503, which the SDK retries
    llm.stall(0.4)
    started = time.monotonic()
    with pytest.raises(LlmUnavailable, match=r"^timeout: no whole answer within 0\.6s"):
        await connect(answer_deadline_s=0.6, max_retries=2).complete(MESSAGES)
    assert 0.6 <= time.monotonic() - started < 1.0


async def test_stall_midway_through_a_recorded_stream(llm: FakeLlm, connect: Connect) -> None:
    llm.replay(TEXT_FILE, stall_after=6)
    stream = connect(timeout_s=0.3, max_retries=0).stream(MESSAGES)
    with pytest.raises(LlmUnavailable):
        await drain(stream)
    before_stall = sse_chunks(TEXT_FILE)[:6]
    expected = "".join(c.delta.content or "" for chunk in before_stall for c in chunk.choices if c.index == 0)
    assert expected and stream.text == expected


async def test_connection_refused_is_unavailable(connect: Connect) -> None:
    async with FakeLlm() as gone:
        url = gone.base_url
    with pytest.raises(LlmUnavailable) as caught:
        await connect(base_url=url, max_retries=0).complete(MESSAGES)
    assert caught.value.kind == "connection error"


async def test_non_json_body_is_a_bad_response(llm: FakeLlm, connect: Connect) -> None:
    llm.raw(200, b"<html>gateway says hi</html>", content_type="text/html")
    with pytest.raises(LlmUnavailable) as caught:
        await connect().complete(MESSAGES)
    assert caught.value.kind == "bad response"


async def test_garbage_inside_a_stream_is_a_bad_response(llm: FakeLlm, connect: Connect) -> None:
    good = sse({"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}).removesuffix(b"data: [DONE]\n\n")
    llm.raw(200, good + b"data: {not json\n\n", content_type="text/event-stream")
    stream = connect().stream(MESSAGES)
    with pytest.raises(LlmUnavailable) as caught:
        await drain(stream)
    assert caught.value.kind == "bad response" and stream.text == "Hi"


# -- offline and the API key --------------------------------------------------------------------


async def test_offline_client_refuses_and_sends_nothing(llm: FakeLlm, connect: Connect) -> None:
    llm.script("should not be fetched")
    client = connect(api_key="")
    assert not client.enabled
    with pytest.raises(LlmUnavailable, match=r"^offline") as caught:
        await client.complete(MESSAGES)
    assert caught.value.kind == "offline"
    with pytest.raises(LlmUnavailable, match=r"^offline"):
        client.stream(MESSAGES)
    assert llm.requests == [] and llm.pending == 1


async def test_authorization_header_carries_the_key(llm: FakeLlm, connect: Connect) -> None:
    llm.script("ok")
    await connect().complete(MESSAGES)
    assert llm.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_openai_environment_variables_never_reach_the_llm_api(
    llm: FakeLlm, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Meant for OpenAI's own API, perhaps by another program on the host; the SDK reads them by default.
    monkeypatch.setenv("OPENAI_ORG_ID", "org-elsewhere")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-elsewhere")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Elsewhere: yes\nAuthorization: Bearer sk-elsewhere")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-elsewhere")
    llm.script("Hi!")
    await connect().complete(MESSAGES)
    headers = llm.requests[0].headers
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert not {"OpenAI-Organization", "OpenAI-Project", "X-Elsewhere"} & set(headers)
    assert "elsewhere" not in str(dict(headers))
    assert os.environ["OPENAI_ORG_ID"] == "org-elsewhere", "the environment itself is left as it was"


@pytest.mark.parametrize("status", [401, 400, 500])
async def test_key_never_appears_in_errors_even_if_the_server_echoes_it(
    llm: FakeLlm, connect: Connect, status: int
) -> None:
    llm.fail(status, message=f"Incorrect API key provided: {KEY}")
    with pytest.raises(LlmUnavailable) as caught:
        await connect(max_retries=0).complete(MESSAGES)
    error = caught.value
    assert error.kind == {401: "auth error", 400: "request rejected", 500: "server error"}[status]
    assert f"HTTP {status}" in str(error)
    chain: BaseException | None = error
    while chain is not None:  # nor in anything a traceback would print
        assert KEY not in str(chain) and KEY not in repr(chain.args)
        chain = chain.__cause__ or (None if chain.__suppress_context__ else chain.__context__)


async def test_key_never_appears_in_timeout_or_stream_errors(llm: FakeLlm, connect: Connect) -> None:
    llm.stall()
    llm.script("partial answer", stall_after=2)
    client = connect(timeout_s=0.3, max_retries=0)
    with pytest.raises(LlmUnavailable) as before_headers:
        await client.complete(MESSAGES)
    with pytest.raises(LlmUnavailable) as midway:
        await drain(client.stream(MESSAGES))
    for error in (before_headers.value, midway.value):
        assert KEY not in str(error)
