"""The LLM client: DeepSeek (or any chat-completions API) through the openai SDK.

`LlmClient.complete()` returns one `LlmResult`; `LlmClient.stream()` yields text deltas and
rebuilds the same `LlmResult` from the chunks. Every failure (offline, timeout, connection,
auth, retries exhausted, bad response) surfaces as `LlmUnavailable`, whose message never
contains the API key. The SDK's client is built without the OPENAI_* environment variables it
would otherwise read (organization, project, extra headers), so nothing but our key goes out.

Retries of 408/409/429/5xx/timeouts are the SDK's own, bounded by `LlmConfig.max_retries`;
`LlmConfig.timeout_s` bounds connecting and each read, so a stream that goes silent for that
long fails too, and `LlmConfig.answer_deadline_s` bounds one whole answer, so a stream that
keeps trickling does as well. A caller may pass an earlier deadline (a turn's, in loop time)
that the answer must also meet.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self, cast

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage

from core.config import LlmConfig

__all__ = [
    "Choice",
    "ChunkAccumulator",
    "LlmClient",
    "LlmResult",
    "LlmStream",
    "LlmUnavailable",
    "ToolCall",
    "Usage",
]

_DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it; may be invalid JSON


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    text: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    refusal: str | None


@dataclass(frozen=True, slots=True)
class LlmResult:
    choices: list[Choice]
    usage: Usage | None
    model: str | None

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.choices[0].tool_calls if self.choices else []

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    def assistant_message(self) -> dict[str, Any]:
        """Choice 0 as an assistant message, to append to the history before sending tool results."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


class LlmUnavailable(Exception):
    """No usable answer from the LLM; `kind` is one of the words the message starts with."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def _usage(raw: CompletionUsage | None) -> Usage | None:
    if raw is None:
        return None
    return Usage(raw.prompt_tokens, raw.completion_tokens, raw.total_tokens)


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _ChoiceParts:
    text: list[str] = field(default_factory=list)
    refusal: list[str] | None = None
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    finish_reason: str | None = None


class ChunkAccumulator:
    """Rebuilds an `LlmResult` from `ChatCompletionChunk`s, per choice index."""

    def __init__(self) -> None:
        self._choices: dict[int, _ChoiceParts] = {}
        self._usage: Usage | None = None
        self._model: str | None = None

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Fold one chunk in; return the new content text of choice 0 ("" if none)."""
        self._model = self._model or chunk.model or None
        if chunk.usage is not None:  # normally a final chunk with empty `choices`
            self._usage = _usage(chunk.usage)
        new_text = ""
        for choice in chunk.choices or ():
            parts = self._choices.setdefault(choice.index, _ChoiceParts())
            delta = choice.delta
            if delta.content:
                parts.text.append(delta.content)
                if choice.index == 0:
                    new_text += delta.content
            if delta.refusal is not None:
                if parts.refusal is None:
                    parts.refusal = []
                parts.refusal.append(delta.refusal)
            for tc in delta.tool_calls or ():
                call = parts.tool_calls.setdefault(tc.index, _ToolCallParts())
                # id and name come whole in the first delta of a call; some servers repeat them.
                call.id = tc.id or call.id
                if tc.function is not None:
                    call.name = tc.function.name or call.name
                    if tc.function.arguments:
                        call.arguments.append(tc.function.arguments)
            if choice.finish_reason:
                parts.finish_reason = choice.finish_reason
        return new_text

    @property
    def text(self) -> str:
        parts = self._choices.get(0)
        return "".join(parts.text) if parts else ""

    def result(self) -> LlmResult:
        choices = [
            Choice(
                index=index,
                text="".join(parts.text),
                tool_calls=[
                    ToolCall(call.id, call.name, "".join(call.arguments))
                    for _, call in sorted(parts.tool_calls.items())
                ],
                finish_reason=parts.finish_reason,
                refusal="".join(parts.refusal) if parts.refusal is not None else None,
            )
            for index, parts in sorted(self._choices.items())
        ]
        return LlmResult(choices=choices, usage=self._usage, model=self._model)


def _from_completion(completion: ChatCompletion) -> LlmResult:
    choices = []
    for choice in completion.choices:
        message = choice.message
        calls = [
            ToolCall(c.id, c.function.name, c.function.arguments)
            for c in message.tool_calls or ()
            if c.type == "function"
        ]
        choices.append(Choice(choice.index, message.content or "", calls, choice.finish_reason, message.refusal))
    choices.sort(key=lambda c: c.index)
    return LlmResult(choices=choices, usage=_usage(completion.usage), model=completion.model or None)


class _Translator:
    """Turns SDK and parsing errors into `LlmUnavailable` without leaking the key."""

    def __init__(self, config: LlmConfig) -> None:
        self._config = config

    def _clean(self, text: str) -> str:
        text = " ".join(text.split())[:_DETAIL_CHARS]
        return text.replace(self._config.api_key, "***") if self._config.api_key else text

    def __call__(self, exc: Exception, *, midway: bool = False) -> LlmUnavailable:
        attempts = self._config.max_retries + 1
        where = " midway through the stream" if midway else ""
        tries = "" if midway else f" after {attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(exc, openai.APITimeoutError):
            return LlmUnavailable("timeout", f"no data for {self._config.timeout_s:g}s{where}{tries}")
        if isinstance(exc, openai.APIConnectionError):
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection failed"
            return LlmUnavailable("connection error", f"{cause}{where}{tries}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = self._clean(_error_message(exc))
            if status in (401, 403):
                return LlmUnavailable("auth error", f"HTTP {status}, check the API key")
            if status in (408, 409, 429) or status >= 500:
                kind = "rate limited" if status == 429 else "server error"
                return LlmUnavailable(kind, f"HTTP {status}{tries}, retries exhausted: {message}")
            return LlmUnavailable("request rejected", f"HTTP {status}: {message}")
        if isinstance(exc, openai.APIError):  # an error event inside the stream, or an invalid body
            return LlmUnavailable("bad response", f"{self._clean(exc.message)}{where}")
        return LlmUnavailable("bad response", f"{type(exc).__name__}: {self._clean(str(exc))}{where}")


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return cast(str, inner["message"])
    return exc.response.text if not isinstance(body, str) else body


# SDK errors, plus what malformed data the SDK passes through unvalidated raises (bad JSON, missing fields).
_FAILURES = (openai.OpenAIError, ValueError, AttributeError)


class LlmStream:
    """Async iterator of choice-0 text deltas; `.result` once exhausted, `.text` at any time.

    The request is sent on the first `__anext__`. On failure it raises `LlmUnavailable` and
    `.text` keeps whatever arrived before the failure.
    """

    def __init__(self, client: LlmClient, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                 deadline: float | None = None) -> None:
        self._client = client
        self._messages = messages
        self._tools = tools
        self._acc = ChunkAccumulator()
        self._sdk_stream: openai.AsyncStream[ChatCompletionChunk] | None = None
        self._chunks: AsyncIterator[ChatCompletionChunk] | None = None
        self._result: LlmResult | None = None
        self._failed = False
        self._turn_deadline = deadline
        self._deadline: float | None = None  # loop time, set when the request is sent
        self._by_turn = False  # the turn's deadline, not the answer's own, is the one that applies

    @property
    def text(self) -> str:
        """Choice-0 text received so far (all of it once the stream is done)."""
        return self._acc.text

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> LlmResult:
        if self._result is None:
            raise RuntimeError("LlmStream.result is available only after the stream is exhausted")
        return self._result

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        if self._result is not None or self._failed:
            raise StopAsyncIteration
        if self._deadline is None:
            self._deadline, self._by_turn = self._client.deadline_from_now(self._turn_deadline)
        if self._chunks is None:
            try:
                async with asyncio.timeout_at(self._deadline):
                    self._sdk_stream = await self._client._create(self._messages, self._tools, stream=True)
            except TimeoutError:
                self._failed = True
                raise self._client._past_deadline(self._by_turn) from None
            except _FAILURES as exc:
                self._failed = True
                raise self._client._translate(exc) from _cause(exc)
            self._chunks = aiter(self._sdk_stream)
        try:
            async with asyncio.timeout_at(self._deadline):
                while True:
                    try:
                        chunk = await anext(self._chunks)
                    except StopAsyncIteration:
                        break
                    delta = self._acc.add(chunk)
                    if delta:
                        return delta
        except TimeoutError:
            self._failed = True
            await self.aclose()
            raise self._client._past_deadline(self._by_turn, midway=True) from None
        except _FAILURES as exc:
            self._failed = True
            await self.aclose()
            raise self._client._translate(exc, midway=True) from _cause(exc)
        result = self._acc.result()
        if not result.choices or any(c.finish_reason is None for c in result.choices):
            # The connection ended cleanly but the model never said it was done.
            self._failed = True
            raise LlmUnavailable("bad response", "stream ended before a finish_reason")
        self._result = result
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Release the connection; needed only when stopping before the end."""
        if self._sdk_stream is not None:
            await self._sdk_stream.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _cause(exc: Exception) -> Exception | None:
    # An error body is the server's text, which may echo the key: keep it out of tracebacks.
    return None if isinstance(exc, openai.APIError) and exc.body is not None else exc


# Read by the SDK when a client is built, and meant for OpenAI's own API (perhaps another program's on
# the same host): OPENAI_CUSTOM_HEADERS can even replace the Authorization header. None of them may
# reach the configured API, so the client is built without them.
_SDK_ENVIRONMENT = ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
                    "OPENAI_CUSTOM_HEADERS", "OPENAI_BASE_URL", "OPENAI_WEBHOOK_SECRET")


@contextmanager
def _without_sdk_environment() -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in _SDK_ENVIRONMENT if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


class LlmClient:
    """One per process; `complete()` and `stream()` may run concurrently."""

    def __init__(self, config: LlmConfig) -> None:
        self._config = config
        self._translate = _Translator(config)
        self._sdk: openai.AsyncOpenAI | None = None
        if config.enabled:
            with _without_sdk_environment():
                self._sdk = openai.AsyncOpenAI(
                    api_key=config.api_key,
                    base_url=config.base_url,
                    timeout=config.timeout_s,
                    max_retries=config.max_retries,
                )

    @property
    def enabled(self) -> bool:
        return self._sdk is not None

    def deadline_from_now(self, turn_deadline: float | None = None) -> tuple[float, bool]:
        """Loop time by which an answer started now must end (its own limit, or the turn's if
        sooner), and whether the turn's is the one that applies."""
        own = asyncio.get_running_loop().time() + self._config.answer_deadline_s
        if turn_deadline is not None and turn_deadline < own:
            return turn_deadline, True
        return own, False

    def _past_deadline(self, by_turn: bool, *, midway: bool = False) -> LlmUnavailable:
        limit = "the turn's deadline" if by_turn else f"{self._config.answer_deadline_s:g}s"
        where = " (the stream was still arriving)" if midway else ""
        return LlmUnavailable("timeout", f"no whole answer within {limit}{where}")

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                       deadline: float | None = None) -> LlmResult:
        """One answer; `deadline` (loop time), when given, ends it sooner than its own limit."""
        until, by_turn = self.deadline_from_now(deadline)
        try:
            async with asyncio.timeout_at(until):
                completion = await self._create(messages, tools, stream=False)
            if not isinstance(completion, ChatCompletion) or not completion.choices:
                raise LlmUnavailable("bad response", "no choices in the completion")
            return _from_completion(completion)
        except TimeoutError:
            raise self._past_deadline(by_turn) from None
        except _FAILURES as exc:
            raise self._translate(exc) from _cause(exc)

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
               deadline: float | None = None) -> LlmStream:
        """Streamed answer; `deadline` (loop time), when given, ends it sooner than its own limit."""
        if self._sdk is None:
            raise LlmUnavailable("offline", "no LLM API key configured")
        return LlmStream(self, messages, tools, deadline)

    async def _create(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, *, stream: bool) -> Any:
        if self._sdk is None:
            raise LlmUnavailable("offline", "no LLM API key configured")
        extra: dict[str, Any] = {"tools": tools} if tools else {}
        if tools and self._config.parallel_tool_calls_flag:
            extra["parallel_tool_calls"] = False  # the hub runs one tool call at a time (core.agent)
        if stream:
            extra["stream_options"] = {"include_usage": True}
        return await self._sdk.chat.completions.create(
            model=self._config.model,
            messages=cast(Any, messages),
            max_tokens=self._config.max_tokens,
            temperature=self._config.temperature,
            stream=stream,
            **extra,
        )

    async def aclose(self) -> None:
        if self._sdk is not None:
            await self._sdk.close()
