"""A local Telegram Bot API server, for tests and the benchmark. python-telegram-bot reaches it through
its own `base_url` (`Bot(token, base_url=fake.base_url)`), so every request goes over real HTTP.

    async with FakeTelegram() as tg:
        tg.base_url                      # http://127.0.0.1:PORT/bot  (the token is appended by PTB)
        tg.push_update({...})            # served by getUpdates (offset, timeout and limit as Telegram does)
        tg.fail("sendMessage", 502)      # the next sendMessage answers 502 (times=, description=, parameters=)
        tg.disconnect("getUpdates")      # the next getUpdates closes the connection without an answer
        tg.block(42)                     # chat 42 blocked the bot: 403
        tg.migrate(-5, -1005)            # group -5 became supergroup -1005: 400 with migrate_to_chat_id
        tg.sent(chat_id)                 # accepted sendMessage/sendPhoto calls, in arrival order
        tg.calls                         # every request: method, params, HTTP status
        tg.too_many                      # how many 429s it answered, and tg.limit_hits says which limit

Methods: getMe, sendMessage, sendPhoto, answerCallbackQuery, answerPreCheckoutQuery, answerShippingQuery,
getUpdates, setWebhook, deleteWebhook, getWebhookInfo (case-insensitive, as Telegram's); anything else is
404. Requests are validated the way Telegram does what these tests rely on: text 1-4,096 and captions up
to 1,024 UTF-16 units, inline keyboards (callback_data 1-64 bytes, http(s)/tg URLs), a known token (401).

Flood limits, checked on arrival of each sendMessage/sendPhoto, over accepted messages only:
one message per `1/per_chat_per_second` seconds in a chat, `per_group_per_minute` in any 60 s in a group
(negative chat id), `global_per_second` in any second overall. Breaking one answers 429 with
`parameters.retry_after`. `request_delay` / `response_delay` add random network-like delays before the
limits are checked (the request "arrives" late) and before the answer leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

__all__ = ["TOKEN", "ApiCall", "FakeTelegram", "Updates"]

TOKEN = "123456:TEST-token_for-kefu"
BOT_ID = 123456
BOT_USERNAME = "kefu_test_bot"
SEND_METHODS = frozenset({"sendMessage", "sendPhoto"})
_METHODS = ("getMe", "sendMessage", "sendPhoto", "answerCallbackQuery", "answerPreCheckoutQuery",
            "answerShippingQuery", "getUpdates", "setWebhook", "deleteWebhook", "getWebhookInfo")
_BY_LOWER = {m.lower(): m for m in _METHODS}
_JSON_PARAMS = ("reply_markup", "reply_parameters", "allowed_updates", "link_preview_options", "shipping_options")


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    status: int = 0
    at: float = 0.0  # monotonic time the request "arrived" (after request_delay)

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None and str(value).lstrip("-").isdigit() else None

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

    @property
    def keyboard(self) -> list[list[dict[str, Any]]]:
        markup = self.params.get("reply_markup") or {}
        return list(markup.get("inline_keyboard", []))


@dataclass
class _Failure:
    status: int
    description: str
    parameters: dict[str, Any] | None = None
    disconnect: bool = False


@dataclass
class _Limits:
    per_chat_period: float
    per_group_per_minute: int
    global_per_second: int
    last_in_chat: dict[int, float] = field(default_factory=dict)
    in_group: dict[int, deque[float]] = field(default_factory=dict)
    overall: deque[float] = field(default_factory=deque)

    def check(self, chat_id: int, now: float) -> tuple[str, int] | None:
        """None if a message to `chat_id` may arrive now, else (which limit, retry_after seconds)."""
        while self.overall and self.overall[0] <= now - 1.0:
            self.overall.popleft()
        if len(self.overall) >= self.global_per_second:
            return "global", max(1, math.ceil(self.overall[0] + 1.0 - now))
        last = self.last_in_chat.get(chat_id)
        if last is not None and now - last < self.per_chat_period:
            return "chat", max(1, math.ceil(last + self.per_chat_period - now))
        if chat_id < 0:
            group = self.in_group.setdefault(chat_id, deque())
            while group and group[0] <= now - 60.0:
                group.popleft()
            if len(group) >= self.per_group_per_minute:
                return "group", max(1, math.ceil(group[0] + 60.0 - now))
        return None

    def accept(self, chat_id: int, now: float) -> None:
        self.overall.append(now)
        self.last_in_chat[chat_id] = now
        if chat_id < 0:
            self.in_group.setdefault(chat_id, deque()).append(now)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def chat_type(chat_id: int) -> str:
    if chat_id > 0:
        return "private"
    return "supergroup" if str(chat_id).startswith("-100") else "group"


class FakeTelegram:
    def __init__(
        self,
        token: str = TOKEN,
        *,
        username: str = BOT_USERNAME,
        per_chat_per_second: float = 1.0,
        per_group_per_minute: int = 20,
        global_per_second: int = 30,
        enforce_limits: bool = True,
        request_delay: tuple[float, float] = (0.0, 0.0),
        response_delay: tuple[float, float] = (0.0, 0.0),
        seed: int = 7,
    ) -> None:
        self.token = token
        self.bot_id = int(token.partition(":")[0])
        self.username = username
        self.enforce_limits = enforce_limits
        self._limits = _Limits(1.0 / per_chat_per_second, per_group_per_minute, global_per_second)
        self.request_delay = request_delay
        self.response_delay = response_delay
        self._random = random.Random(seed)
        self.calls: list[ApiCall] = []
        self.too_many = 0
        self.limit_hits: Counter[str] = Counter()
        self.offsets: list[int | None] = []  # the offset of each getUpdates call
        self.webhook: dict[str, Any] | None = None
        self._updates: list[dict[str, Any]] = []
        self._new_update = asyncio.Event()
        self._failures: dict[str, deque[_Failure]] = {}
        self._blocked: set[int] = set()
        self._migrated: dict[int, int] = {}
        self._message_ids = 1000
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self._closing.set()
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
        return f"http://127.0.0.1:{self._port}/bot"

    # -- scripting ---------------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> None:
        self._updates.append(update)
        self._new_update.set()

    def fail(self, method: str, status: int, *, description: str | None = None, times: int = 1,
             parameters: dict[str, Any] | None = None) -> None:
        text = description or {400: "Bad Request", 403: "Forbidden", 409: "Conflict", 429: "Too Many Requests",
                               500: "Internal Server Error", 502: "Bad Gateway"}.get(status, "Error")
        for _ in range(times):
            self._failures.setdefault(method, deque()).append(_Failure(status, text, parameters))

    def disconnect(self, method: str, times: int = 1) -> None:
        for _ in range(times):
            self._failures.setdefault(method, deque()).append(_Failure(0, "", disconnect=True))

    def block(self, chat_id: int) -> None:
        self._blocked.add(chat_id)

    def migrate(self, old: int, new: int) -> None:
        self._migrated[old] = new

    # -- what happened -----------------------------------------------------------------------

    def accepted(self, method: str | None = None) -> list[ApiCall]:
        return [c for c in self.calls if c.status == 200 and (method is None or c.method == method)]

    def sent(self, chat_id: int | None = None) -> list[ApiCall]:
        return [c for c in self.calls if c.status == 200 and c.method in SEND_METHODS
                and (chat_id is None or c.chat_id == chat_id)]

    def observed(self) -> dict[str, float]:
        """Over accepted messages: the most in any 1 s overall, in any 60 s per group, the least gap per chat."""
        stamps = sorted(c.at for c in self.sent())
        most_per_second = _most_within(stamps, 1.0)
        by_chat: dict[int, list[float]] = {}
        for call in self.sent():
            by_chat.setdefault(call.chat_id or 0, []).append(call.at)
        gaps = [b - a for times in by_chat.values() for a, b in itertools.pairwise(sorted(times))]
        groups = [_most_within(sorted(times), 60.0) for chat, times in by_chat.items() if chat < 0]
        return {"max_per_second": most_per_second, "max_per_group_minute": max(groups, default=0),
                "min_gap_in_chat_s": min(gaps, default=math.inf)}

    async def wait_for(self, predicate: Any, within_s: float = 5.0) -> None:
        """Poll `predicate()` until it is true; AssertionError after `within_s` seconds."""
        deadline = time.monotonic() + within_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within_s} s; calls: "
                                     f"{[(c.method, c.status) for c in self.calls][-10:]}")
            await asyncio.sleep(0.01)

    # -- serving -----------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            params.update(body if isinstance(body, dict) else {})
        elif request.body_exists:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in _JSON_PARAMS:
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    async def _delay(self, bounds: tuple[float, float]) -> None:
        if bounds[1] > 0:
            await asyncio.sleep(self._random.uniform(*bounds))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        method = _BY_LOWER.get(request.match_info["method"].lower(), request.match_info["method"])
        await self._delay(self.request_delay)
        call = ApiCall(method, params, at=time.monotonic())
        self.calls.append(call)
        if request.match_info["token"] != self.token:
            return self._answer(call, 401, description="Unauthorized")
        failures = self._failures.get(method)
        if failures:
            failure = failures.popleft()
            if failure.disconnect:
                call.status = -1
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            return self._answer(call, failure.status, description=failure.description,
                                parameters=failure.parameters)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._answer(call, 404, description="Not Found")
        response = await handler(call)
        await self._delay(self.response_delay)
        return response

    def _answer(self, call: ApiCall, status: int, result: Any = None, *, description: str = "",
                parameters: dict[str, Any] | None = None) -> web.Response:
        call.status = status
        if status == 200:
            return web.json_response({"ok": True, "result": result})
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "kefu", "username": self.username}

    async def _m_getMe(self, call: ApiCall) -> web.Response:
        return self._answer(call, 200, self._bot_user())

    def _refuse_send(self, call: ApiCall) -> web.Response | None:
        chat_id = call.chat_id
        if chat_id is None:
            return self._answer(call, 400, description="Bad Request: chat not found")
        if chat_id in self._migrated:
            return self._answer(call, 400, description="Bad Request: group chat was upgraded to a supergroup chat",
                                parameters={"migrate_to_chat_id": self._migrated[chat_id]})
        if chat_id in self._blocked:
            return self._answer(call, 403, description="Forbidden: bot was blocked by the user")
        for row in call.keyboard:
            for button in row:
                if not button.get("text"):
                    return self._answer(call, 400, description="Bad Request: BUTTON_TEXT_INVALID")
                data, url = button.get("callback_data"), button.get("url")
                if (data is None) == (url is None):
                    return self._answer(call, 400, description="Bad Request: can't parse inline keyboard button")
                if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                    return self._answer(call, 400, description="Bad Request: BUTTON_DATA_INVALID")
                if url is not None and not str(url).startswith(("https://", "http://", "tg://")):
                    return self._answer(call, 400, description="Bad Request: BUTTON_URL_INVALID")
        if self.enforce_limits:
            hit = self._limits.check(chat_id, call.at)
            if hit is not None:
                which, retry_after = hit
                self.too_many += 1
                self.limit_hits[which] += 1
                return self._answer(call, 429, description=f"Too Many Requests: retry after {retry_after}",
                                    parameters={"retry_after": retry_after})
        return None

    def _message(self, chat_id: int, **content: Any) -> dict[str, Any]:
        self._message_ids += 1
        return {"message_id": self._message_ids, "date": int(time.time()), "from": self._bot_user(),
                "chat": {"id": chat_id, "type": chat_type(chat_id), "title": "group"} if chat_id < 0
                else {"id": chat_id, "type": "private", "first_name": "Shopper"}, **content}

    async def _m_sendMessage(self, call: ApiCall) -> web.Response:
        text = str(call.params.get("text", ""))
        if not text.strip():
            return self._answer(call, 400, description="Bad Request: message text is empty")
        if _utf16_len(text) > 4096:
            return self._answer(call, 400, description="Bad Request: message is too long")
        refused = self._refuse_send(call)
        if refused is not None:
            return refused
        assert call.chat_id is not None
        self._limits.accept(call.chat_id, call.at)
        return self._answer(call, 200, self._message(call.chat_id, text=text))

    async def _m_sendPhoto(self, call: ApiCall) -> web.Response:
        photo = call.params.get("photo")
        if not photo:
            return self._answer(call, 400, description="Bad Request: there is no photo in the request")
        caption = str(call.params.get("caption") or "")
        if _utf16_len(caption) > 1024:
            return self._answer(call, 400, description="Bad Request: message caption is too long")
        refused = self._refuse_send(call)
        if refused is not None:
            return refused
        assert call.chat_id is not None
        self._limits.accept(call.chat_id, call.at)
        size = {"file_id": f"photo-{self._message_ids}", "file_unique_id": f"u{self._message_ids}", "width": 320,
                "height": 320}
        content: dict[str, Any] = {"photo": [size]}
        if caption:
            content["caption"] = caption
        return self._answer(call, 200, self._message(call.chat_id, **content))

    async def _m_answerCallbackQuery(self, call: ApiCall) -> web.Response:
        if not call.params.get("callback_query_id"):
            return self._answer(call, 400, description="Bad Request: query is too old or query ID is invalid")
        return self._answer(call, 200, True)

    async def _m_answerPreCheckoutQuery(self, call: ApiCall) -> web.Response:
        ok = str(call.params.get("ok")).lower() == "true"
        if not ok and not call.params.get("error_message"):
            return self._answer(call, 400, description="Bad Request: error_message is required")
        return self._answer(call, 200, True)

    async def _m_answerShippingQuery(self, call: ApiCall) -> web.Response:
        return await self._m_answerPreCheckoutQuery(call)

    async def _m_setWebhook(self, call: ApiCall) -> web.Response:
        self.webhook = dict(call.params)
        return self._answer(call, 200, True)

    async def _m_deleteWebhook(self, call: ApiCall) -> web.Response:
        self.webhook = None
        return self._answer(call, 200, True)

    async def _m_getWebhookInfo(self, call: ApiCall) -> web.Response:
        return self._answer(call, 200, {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                                        "pending_update_count": len(self._updates)})

    async def _m_getUpdates(self, call: ApiCall) -> web.Response:
        if self.webhook is not None:
            return self._answer(call, 409, description="Conflict: can't use getUpdates method while webhook is "
                                                       "active; use deleteWebhook to delete the webhook first")
        offset = int(call.params["offset"]) if call.params.get("offset") is not None else None
        self.offsets.append(offset)
        if offset is not None:  # confirms every update before it
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = float(call.params.get("timeout") or 0)
        limit = int(call.params.get("limit") or 100)
        if not self._updates and timeout > 0:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                waiter = asyncio.ensure_future(self._new_update.wait())
                closing = asyncio.ensure_future(self._closing.wait())
                try:
                    await asyncio.wait({waiter, closing}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    closing.cancel()
        return self._answer(call, 200, self._updates[:limit])


def _most_within(stamps: list[float], period: float) -> int:
    most, start = 0, 0
    for end, at in enumerate(stamps):
        while stamps[start] <= at - period:
            start += 1
        most = max(most, end - start + 1)
    return most


class Updates:
    """Telegram Update objects as Telegram sends them, with fresh update and message ids."""

    def __init__(self, first_update_id: int = 500_000, bot_id: int = BOT_ID, bot_username: str = BOT_USERNAME) -> None:
        self._update_id = first_update_id
        self._message_id = 100
        self.bot_id = bot_id
        self.bot_username = bot_username

    def user(self, user_id: int, language_code: str = "en", **extra: Any) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"Shopper{user_id}", "language_code": language_code,
                **extra}

    def bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "kefu", "username": self.bot_username}

    def next_id(self) -> int:
        self._update_id += 1
        return self._update_id

    def message(self, user_id: int, *, chat_id: int | None = None, language_code: str = "en",
                **content: Any) -> dict[str, Any]:
        self._message_id += 1
        chat_id = user_id if chat_id is None else chat_id
        chat = ({"id": chat_id, "type": "private", "first_name": f"Shopper{user_id}"} if chat_id > 0
                else {"id": chat_id, "type": chat_type(chat_id), "title": "Shop fans"})
        return {"update_id": self.next_id(), "message": {
            "message_id": self._message_id, "from": self.user(user_id, language_code), "chat": chat,
            "date": int(time.time()), **content}}

    def text(self, user_id: int, text: str, **kwargs: Any) -> dict[str, Any]:
        return self.message(user_id, text=text, **kwargs)

    def mention(self, user_id: int, chat_id: int, text_after: str) -> dict[str, Any]:
        """"@bot <text_after>" in a group, with the mention entity Telegram adds."""
        mention = f"@{self.bot_username}"
        entity = {"type": "mention", "offset": 0, "length": len(mention.encode("utf-16-le")) // 2}
        return self.message(user_id, chat_id=chat_id, text=f"{mention} {text_after}", entities=[entity])

    def reply_to_bot(self, user_id: int, chat_id: int, text: str) -> dict[str, Any]:
        replied = {"message_id": 7, "from": self.bot_user(), "date": int(time.time()), "text": "Hello!",
                   "chat": {"id": chat_id, "type": chat_type(chat_id), "title": "Shop fans"}}
        return self.message(user_id, chat_id=chat_id, text=text, reply_to_message=replied)

    def contact(self, user_id: int, phone: str, contact_user_id: int | None) -> dict[str, Any]:
        contact: dict[str, Any] = {"phone_number": phone, "first_name": "Someone"}
        if contact_user_id is not None:
            contact["user_id"] = contact_user_id
        return self.message(user_id, contact=contact)

    def location(self, user_id: int, lat: float, lon: float) -> dict[str, Any]:
        return self.message(user_id, location={"latitude": lat, "longitude": lon})

    def photo(self, user_id: int, caption: str | None = None) -> dict[str, Any]:
        sizes = [{"file_id": f"AgAD{n}", "file_unique_id": f"u{n}", "width": 90 * n, "height": 60 * n}
                 for n in (1, 2, 3)]
        return self.message(user_id, photo=sizes, **({"caption": caption} if caption else {}))

    def voice(self, user_id: int) -> dict[str, Any]:
        return self.message(user_id, voice={"file_id": "AwAD", "file_unique_id": "v1", "duration": 2,
                                            "mime_type": "audio/ogg"})

    def callback(self, user_id: int, data: str, *, chat_id: int | None = None,
                 keyboard: list[list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        chat_id = user_id if chat_id is None else chat_id
        self._message_id += 1
        shown = {"message_id": self._message_id, "from": self.bot_user(), "date": int(time.time()),
                 "text": "Pick one", "chat": {"id": chat_id, "type": chat_type(chat_id), "first_name": "x"}}
        if keyboard is not None:
            shown["reply_markup"] = {"inline_keyboard": keyboard}
        return {"update_id": self.next_id(), "callback_query": {
            "id": f"cb{self._update_id}", "from": self.user(user_id), "chat_instance": "ci-1", "data": data,
            "message": shown}}
