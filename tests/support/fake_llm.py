"""A local server speaking the chat-completions wire format, for tests.

    async with FakeLlm() as llm:
        client = LlmClient(LlmConfig(base_url=llm.base_url, api_key="test-key"))
        llm.script("Hello!")                                  # a reply: JSON, or SSE chunks if the request streams
        llm.script(tool_calls=[("get_order", {"order_id": "#W1"})])
        llm.replay(path)                                      # a recorded .bin SSE stream, byte for byte
        llm.fail(429, times=2)                                # HTTP 429 (with Retry-After: 0) twice
        llm.stall()                                           # no response headers until the server closes
        llm.script("Hello world", stall_after=2)              # streamed, silent after 2 SSE events
        llm.script("Hello world", interval=0.2)               # streamed, one SSE event every 0.2 s
        llm.raw(200, b"<html>", content_type="text/html")     # any other response
        ...
        llm.requests[0].body["messages"], llm.requests[0].headers["Authorization"]

Every request to `POST /chat/completions` or `/v1/chat/completions` takes the next queued
response, first in, first out. With nothing queued it answers HTTP 400 (which clients do not
retry), so a test that forgot a script fails loudly. `pending` is how many are still queued.

Scripted replies: text is streamed in 4-character deltas, tool-call arguments in 7-character
deltas after a first delta carrying id and name; tool-call ids are call_1, call_2, ... in the
order scripted on this server; finish_reason defaults to "tool_calls" when there are tool calls,
else "stop"; usage is (prompt_tokens, completion_tokens) and is sent as a final chunk with
empty `choices` only when the request asks for `stream_options.include_usage`, as real APIs do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["FakeLlm", "RecordedRequest"]

TEXT_PIECE = 4
ARGUMENT_PIECE = 7


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: CIMultiDictProxy[str]  # case-insensitive: headers["authorization"] works
    body: Any  # parsed JSON, or None if the body was not JSON


@dataclass(frozen=True)
class _Scripted:
    text: str
    tool_calls: list[tuple[str, str, str]]  # (id, name, arguments)
    finish_reason: str
    usage: tuple[int, int]
    stall_after: int | None
    interval: float = 0.0


@dataclass(frozen=True)
class _Replay:
    data: bytes
    stall_after: int | None


@dataclass(frozen=True)
class _Raw:
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Stall:
    seconds: float | None


_Response = _Scripted | _Replay | _Raw | _Stall


class FakeLlm:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._queue: deque[_Response] = deque()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._next_call_id = 1

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        for path in ("/chat/completions", "/v1/chat/completions"):
            app.router.add_post(path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self._closing.set()  # ends every stall at once
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- scripting ---------------------------------------------------------------------------

    def script(
        self,
        text: str = "",
        *,
        tool_calls: Sequence[tuple[str, str | Mapping[str, Any]]] = (),
        finish_reason: str | None = None,
        usage: tuple[int, int] = (10, 5),
        stall_after: int | None = None,
        interval: float = 0.0,
    ) -> None:
        """Queue one reply; `tool_calls` are (name, arguments as JSON text or a mapping); a streamed
        reply waits `interval` seconds after each SSE event."""
        calls = []
        for name, arguments in tool_calls:
            args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
            calls.append((f"call_{self._next_call_id}", name, args))
            self._next_call_id += 1
        reason = finish_reason or ("tool_calls" if calls else "stop")
        self._queue.append(_Scripted(text, calls, reason, usage, stall_after, interval))

    def replay(self, path: str | Path, *, stall_after: int | None = None) -> None:
        """Queue a recorded SSE stream, sent as `text/event-stream` exactly as recorded."""
        self._queue.append(_Replay(Path(path).read_bytes(), stall_after))

    def fail(self, status: int, times: int = 1, *, message: str | None = None) -> None:
        """Queue `times` error responses with an OpenAI-style error body."""
        body = {"error": {"message": message or f"fake_llm: HTTP {status}", "type": "fake_error", "code": None}}
        headers = {"Retry-After": "0"} if status == 429 else {}
        for _ in range(times):
            self.raw(status, json.dumps(body).encode(), headers=headers)

    def stall(self, seconds: float | None = None) -> None:
        """Queue a request that gets no response headers for `seconds` (None: until the server closes), then 503."""
        self._queue.append(_Stall(seconds))

    def raw(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._queue.append(_Raw(status, body, content_type, dict(headers or {})))

    # -- serving -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(request.path, CIMultiDictProxy(CIMultiDict(request.headers)), body))
        if not self._queue:
            error = {"error": {"message": "fake_llm: nothing scripted for this request", "type": "fake_error"}}
            return web.json_response(error, status=400)
        reply = self._queue.popleft()
        if isinstance(reply, _Raw):
            return web.Response(
                status=reply.status, body=reply.body, content_type=reply.content_type, headers=reply.headers
            )
        if isinstance(reply, _Stall):
            await self._wait(reply.seconds)
            return web.json_response({"error": {"message": "fake_llm: stalled", "type": "fake_error"}}, status=503)
        if isinstance(reply, _Replay):
            return await self._send_events(request, _split_events(reply.data), reply.stall_after)
        request_body = body if isinstance(body, dict) else {}
        model = str(request_body.get("model", "fake-model"))
        if not request_body.get("stream"):
            return web.json_response(_completion(reply, model))
        include_usage = bool((request_body.get("stream_options") or {}).get("include_usage"))
        events = [_sse(chunk) for chunk in _chunks(reply, model, include_usage)] + [b"data: [DONE]\n\n"]
        return await self._send_events(request, events, reply.stall_after, reply.interval)

    async def _send_events(
        self, request: web.Request, events: list[bytes], stall_after: int | None, interval: float = 0.0
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for number, event in enumerate(events):
            if number == stall_after:
                await self._wait(None)
                return response
            await response.write(event)
            if interval:
                await self._wait(interval)
        await response.write_eof()
        return response

    async def _wait(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)


def _split_events(data: bytes) -> list[bytes]:
    """Split SSE bytes after each blank line, keeping every byte."""
    events, start = [], 0
    while (end := data.find(b"\n\n", start)) != -1:
        events.append(data[start : end + 2])
        start = end + 2
    if start < len(data):
        events.append(data[start:])
    return events


def _sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


def _usage(reply: _Scripted) -> dict[str, int]:
    prompt, completion = reply.usage
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _envelope(model: str, kind: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": kind, "created": int(time.time()), "model": model}


def _completion(reply: _Scripted, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in reply.tool_calls
        ]
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
    return {**_envelope(model, "chat.completion"), "choices": [choice], "usage": _usage(reply)}


def _chunks(reply: _Scripted, model: str, include_usage: bool) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**_envelope(model, "chat.completion.chunk"), "choices": [choice]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    for start in range(0, len(reply.text), TEXT_PIECE):
        chunks.append(chunk({"content": reply.text[start : start + TEXT_PIECE]}))
    for index, (call_id, name, arguments) in enumerate(reply.tool_calls):
        first = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        chunks.append(chunk({"tool_calls": [first]}))
        for start in range(0, len(arguments), ARGUMENT_PIECE):
            piece = {"index": index, "function": {"arguments": arguments[start : start + ARGUMENT_PIECE]}}
            chunks.append(chunk({"tool_calls": [piece]}))
    chunks.append(chunk({}, reply.finish_reason))
    if include_usage:
        chunks.append({**_envelope(model, "chat.completion.chunk"), "choices": [], "usage": _usage(reply)})
    return chunks
