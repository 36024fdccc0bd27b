"""Web chat: a JSON API for scripts, a WebSocket that streams reply tokens, and the widget page.

HTTP  POST /webchat/api/messages  {"user_id", "text", "locale"?, "message_id"?, "location"?: {"lat", "lon"}}
      (a location the shopper chose to share, from the browser's geolocation; "text" may then be empty)
      -> 200 {"replies": [{"text", "buttons": [{"title", "payload"}], "image"?, "card"?}], "route"}
HTTP  POST /webchat/api/events  {"user_id", "kind": "browse" | "favourite" | "cart", "product_id"}
      (what the shopper does on the web shop's pages, kept for recommendations) -> 200 {"route": "event"}
HTTP  GET  /webchat/api/messages?user_id=...&since=...   (since: epoch seconds, default 0)
      -> 200 {"messages": [{"from": "agent", "text", "at"}]}: a human agent's messages after `since`, for a
      client that was not connected when they were sent
HTTP  GET  /webchat/api/persona?locale=...
      -> 200 {"locale", "bot_name", "avatar", "avatar_kind", "direction": "ltr" | "rtl"} (from the locale pack)
WS    GET  /webchat/ws?user_id=...&locale=...&since=...  (since: agent messages after it are sent on connect)
      client: {"type": "message", "text", "message_id"?, "locale"?}
      server: {"type": "reply", "id", "from": "bot", "text", "buttons", ...}
              {"type": "reply_start", "id"} {"type": "delta", "id", "text"} {"type": "reply_end", "id", ...}
              {"type": "turn_end", "route"}  {"type": "error", "code", "message"}
              {"type": "push", "id", "from": "bot" | "agent", "text", "at", ...}  outside a turn: a proactive
              message, or a human agent's reply while they hold the conversation (also those missed
              while disconnected, sent on connect when `since` is given)
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from core.config import WebChannelConfig
from core.http_errors import json_error
from core.message import (
    BadMessage,
    Capabilities,
    ChannelUser,
    Chat,
    ChatKind,
    EventKind,
    Location,
    Message,
    Reply,
    TurnHandler,
    TurnUnavailable,
)

log = logging.getLogger("kefu.web")

STATIC_DIR = Path(__file__).parent / "static"
_USER_ID = re.compile(r"^[A-Za-z0-9_.@:+\-]{1,128}$")
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_PRODUCT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
SHOP_EVENT_KINDS = {k.value: k for k in (EventKind.BROWSE, EventKind.FAVOURITE, EventKind.CART)}
# (user_id, since) -> [{"from": "agent", "text", "at"}]: what an agent wrote after `since` (core.desk, via core/app.py)
MissedMessages = Callable[[str, float], Awaitable[list[dict[str, Any]]]]


class InvalidInput(ValueError):
    """A request field is missing or wrong; the message says which and how."""


@dataclass(frozen=True, slots=True)
class WebInput:
    user_id: str
    text: str
    locale: str | None
    message_id: str | None
    location: Location | None = None


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the body is not valid UTF-8") from None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidInput("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return data


def _since(value: str | None) -> float:
    """A `since` query parameter: epoch seconds, default 0 (everything kept)."""
    if value is None or value == "":
        return 0.0
    try:
        since = float(value)
    except ValueError:
        raise InvalidInput("'since' must be a number of seconds since the epoch") from None
    if not math.isfinite(since) or since < 0:
        raise InvalidInput("'since' must be a number of seconds since the epoch")
    return since


def _optional(data: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidInput(f"'{key}' is malformed")
    return value


def validate_user_id(value: Any) -> str:
    if not isinstance(value, str) or not _USER_ID.match(value):
        raise InvalidInput("'user_id' must be 1-128 characters of letters, digits and _.@:+-")
    return value


def read_input(data: dict[str, Any], user_id: str | None, max_chars: int) -> WebInput:
    user = validate_user_id(data.get("user_id", user_id))
    location = read_location(data.get("location"))
    text = data.get("text", "" if location else None)
    if not isinstance(text, str) or not (text.strip() or location):
        raise InvalidInput("'text' must be a non-empty string")
    if len(text) > max_chars:
        raise InvalidInput(f"'text' is {len(text)} characters; the limit is {max_chars}")
    return WebInput(user, text, _optional(data, "locale", _LOCALE), _optional(data, "message_id", _MESSAGE_ID),
                    location)


def read_location(value: Any) -> Location | None:
    if value is None:
        return None
    lat, lon = (value.get("lat"), value.get("lon")) if isinstance(value, dict) else (None, None)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
        raise InvalidInput("'location' must be {\"lat\": number, \"lon\": number}")
    try:
        return Location(float(lat), float(lon))
    except ValueError as exc:
        raise InvalidInput(f"'location' {exc}") from None


def reply_json(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {
        "text": reply.final_text,
        "buttons": [{"title": b.title, "payload": b.payload} for b in reply.buttons],
    }
    if reply.image is not None:
        out["image"] = {"url": reply.image.url}
    if reply.card is not None:
        c = reply.card
        out["card"] = {"title": c.title, "product_id": c.product_id, "price": c.price, "image_url": c.image_url,
                       "url": c.url, "description": c.description}
    return out


class WebChatAdapter:
    name = "web"
    capabilities = Capabilities(buttons=True, images=True, cards=True, streaming=True)

    def __init__(
        self, engine: TurnHandler, config: WebChannelConfig, max_text_chars: int, max_frame_bytes: int,
        persona: Callable[[str | None], Mapping[str, str]] | None = None,
        missed: MissedMessages | None = None,
    ) -> None:
        self.engine = engine
        self.persona = persona  # locale tag -> the bot's name, avatar and text direction (the locale pack)
        self.missed = missed  # (user_id, since) -> an agent's messages after since, from the transcript
        self.config = config
        self.max_text_chars = max_text_chars
        self.max_frame_bytes = max_frame_bytes
        self._reply_ids = itertools.count(1)
        self._sockets: set[web.WebSocketResponse] = set()
        self._by_user: dict[str, set[web.WebSocketResponse]] = {}  # open sockets of each user, for pushes

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_static("/webchat/static", STATIC_DIR)
        app.router.add_post("/webchat/api/messages", self.post_message)
        app.router.add_get("/webchat/api/messages", self.get_missed)
        app.router.add_post("/webchat/api/events", self.post_event)
        app.router.add_get("/webchat/api/persona", self.get_persona)
        app.router.add_get("/webchat/ws", self.websocket)

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutdown")

    def message_for(self, item: WebInput) -> Message:
        store_user = item.user_id if self.config.trust_user_id_as_store_user else None
        return Message(
            user=ChannelUser("web", item.user_id, store_user_id=store_user),
            chat=Chat(ChatKind.DIRECT, item.user_id),
            text=item.text,
            platform_message_id=item.message_id,
            locale_hint=item.locale,
            location=item.location,
        )

    async def push(self, user_id: str, chat_id: str, reply: Reply, author: str = "bot") -> bool:
        """A proactive message (core.push), or a human agent's (core.desk, author "agent"), to the user's open
        chat sockets in this process: {"type": "push", "id", "from", "text", "buttons", ...}. False when none
        is open here."""
        sent = False
        for ws in list(self._by_user.get(user_id, ())):
            try:
                await ws.send_json({"type": "push", "id": f"p{next(self._reply_ids)}", "from": author,
                                    "at": time.time(), **reply_json(reply)})
                sent = True
            except (ConnectionError, RuntimeError):  # closing socket
                continue
        return sent

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def get_persona(self, request: web.Request) -> web.Response:
        try:
            locale = _optional(dict(request.query), "locale", _LOCALE)
        except InvalidInput as exc:
            return json_error(400, "invalid_request", str(exc))
        if self.persona is None:
            return json_error(404, "not_found", "no persona configured")
        return web.Response(body=orjson.dumps(dict(self.persona(locale))), content_type="application/json",
                            headers={"Cache-Control": "max-age=300"})

    async def get_missed(self, request: web.Request) -> web.Response:
        try:
            user_id = validate_user_id(request.query.get("user_id"))
            since = _since(request.query.get("since"))
        except InvalidInput as exc:
            return json_error(400, "invalid_request", str(exc))
        messages = await self.missed(user_id, since) if self.missed is not None else []
        return web.Response(body=orjson.dumps({"messages": messages}), content_type="application/json")

    async def post_message(self, request: web.Request) -> web.Response:
        try:
            item = read_input(parse_body(await request.read()), None, self.max_text_chars)
        except InvalidInput as exc:
            return json_error(400, "invalid_request", str(exc))
        replies: list[Reply] = []

        async def collect(reply: Reply) -> None:
            if reply.stream is not None:
                await reply.stream.collect()
            replies.append(reply)

        try:
            result = await self.engine.handle(self.message_for(item), collect, self.capabilities)
        except BadMessage as exc:
            return json_error(400, "invalid_request", str(exc))
        except TurnUnavailable as exc:
            return json_error(503, "temporarily_unavailable", exc.polite_text, headers={"Retry-After": "2"})
        body: dict[str, Any] = {"replies": [reply_json(r) for r in replies], "route": result.route}
        if result.route == "duplicate":
            body["duplicate"] = True
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def post_event(self, request: web.Request) -> web.Response:
        """A shop event (browse, favourite, cart): a turn without text that the engine keeps, with no reply."""
        try:
            data = parse_body(await request.read())
            user_id = validate_user_id(data.get("user_id"))
            kind = SHOP_EVENT_KINDS.get(str(data.get("kind")))
            if kind is None:
                raise InvalidInput(f"'kind' must be one of {', '.join(SHOP_EVENT_KINDS)}")
            product_id = _optional(data, "product_id", _PRODUCT_ID)
            if product_id is None:
                raise InvalidInput("'product_id' is required")
        except InvalidInput as exc:
            return json_error(400, "invalid_request", str(exc))
        store_user = user_id if self.config.trust_user_id_as_store_user else None
        message = Message(user=ChannelUser("web", user_id, store_user_id=store_user),
                          chat=Chat(ChatKind.DIRECT, user_id), event=kind, product_id=product_id)

        async def ignore(reply: Reply) -> None:
            return None

        try:
            result = await self.engine.handle(message, ignore, self.capabilities)
        except TurnUnavailable as exc:
            return json_error(503, "temporarily_unavailable", exc.polite_text, headers={"Retry-After": "2"})
        return web.Response(body=orjson.dumps({"route": result.route}), content_type="application/json")

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        try:
            user_id = validate_user_id(request.query.get("user_id"))
            locale = _optional(dict(request.query), "locale", _LOCALE)
            since = _since(request.query.get("since")) if "since" in request.query else None
        except InvalidInput as exc:
            return json_error(400, "invalid_request", str(exc))
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=self.max_frame_bytes)
        await ws.prepare(request)
        self._sockets.add(ws)
        self._by_user.setdefault(user_id, set()).add(ws)
        try:
            if since is not None and self.missed is not None:
                for missed in await self.missed(user_id, since):
                    await ws.send_json({"type": "push", "id": f"p{next(self._reply_ids)}", "buttons": [], **missed})
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    if frame.type == WSMsgType.BINARY:
                        await self._send_error(ws, "invalid_request", "send JSON text frames")
                    continue
                await self._on_frame(ws, frame.data, user_id, locale)
        finally:
            self._sockets.discard(ws)
            mine = self._by_user.get(user_id)
            if mine is not None:
                mine.discard(ws)
                if not mine:
                    del self._by_user[user_id]
        return ws

    async def _on_frame(self, ws: web.WebSocketResponse, raw: str, user_id: str, locale: str | None) -> None:
        try:
            data = parse_body(raw.encode("utf-8", "surrogatepass"))
            if data.get("type", "message") != "message":
                raise InvalidInput(f"unknown frame type {data.get('type')!r}")
            item = read_input({**data, "user_id": user_id, "locale": data.get("locale", locale)}, user_id,
                              self.max_text_chars)
        except InvalidInput as exc:
            await self._send_error(ws, "invalid_request", str(exc))
            return

        async def relay(reply: Reply) -> None:
            reply_id = f"r{next(self._reply_ids)}"
            if reply.stream is None:
                await ws.send_json({"type": "reply", "id": reply_id, "from": "bot", **reply_json(reply)})
                return
            await ws.send_json({"type": "reply_start", "id": reply_id, "from": "bot", "text": reply.text})
            async for delta in reply.stream:
                await ws.send_json({"type": "delta", "id": reply_id, "text": delta})
            await ws.send_json({"type": "reply_end", "id": reply_id, "from": "bot", **reply_json(reply)})

        try:
            result = await self.engine.handle(self.message_for(item), relay, self.capabilities)
        except BadMessage as exc:
            await self._send_error(ws, "invalid_request", str(exc))
            return
        except TurnUnavailable as exc:
            await self._send_error(ws, "temporarily_unavailable", exc.polite_text)
            return
        await ws.send_json({"type": "turn_end", "route": result.route})

    @staticmethod
    async def _send_error(ws: web.WebSocketResponse, code: str, message: str) -> None:
        await ws.send_json({"type": "error", "code": code, "message": message})
