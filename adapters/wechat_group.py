"""WeChat groups: inbound through a WeCom intelligent robot (企业微信智能机器人), proactive messages
through the group robot webhook (消息推送, formerly 群机器人).

GET  /wechat/group/callback   URL verification: `echostr` decrypted after checking `msg_signature`.
POST /wechat/group/callback   {"encrypt": ...} with msg_signature/timestamp/nonce in the query; the plaintext
                              is JSON: msgid, aibotid, chatid, chattype ("group" | "single"), from.userid,
                              response_url, msgtype (text, mixed, image, voice, file, stream, event) ...

In a group the bot answers only a message that @-mentions it (any of `bot_names`) or contains one of the
`keywords`; the mention is stripped before the text reaches the engine, and the answer addresses the
asker ("@userid ..."). Everything else is acknowledged without a turn. One-to-one chats are always
answered.

Deadline: a turn done within `reply_deadline_s` is answered passively (an encrypted "stream" message that
is already finished); otherwise the callback is acknowledged with an empty body and the whole answer is
posted once to the message's `response_url` (markdown; WeCom accepts one post per response_url, for one
hour). Retries of the same msgid are duplicates for the engine (shared claim in Redis).

`GroupRobot` is the proactive path: text or markdown to the webhook, at most `robot_messages_per_minute`
in any 60 s window; extra messages wait (queued in order, never dropped).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from adapters.wechat_common import (
    AesEnvelope,
    ApiError,
    Outcome,
    Refused,
    TurnRunner,
    WeChatApi,
    check_fresh,
    parse_json,
    read_body,
    signed_params,
    split_text,
)
from core.config import WeChatGroupConfig
from core.message import (
    Attachment,
    AttachmentKind,
    BadMessage,
    Capabilities,
    ChannelUser,
    Chat,
    ChatKind,
    EventKind,
    Message,
    Reply,
    TurnHandler,
    TurnUnavailable,
)

log = logging.getLogger("kefu.wechat_group")

CHANNEL = "wechat_group"
REPLY_LIMIT_BYTES = 4096  # markdown through response_url / the webhook; the passive stream takes more
ROBOT_TEXT_LIMIT = 2048
ROBOT_MARKDOWN_LIMIT = 4096
_MSG_ID = re.compile(r"^[A-Za-z0-9_=+/\-]{1,128}$")
_USER_ID = re.compile(r"^[^\s<>&\"'@]{1,128}$")
_MENTION_END = r"(?=[\s\u2005\u00a0,，:：]|$)"  # WeChat puts a (four-per-em) space after a mention


@dataclass(frozen=True, slots=True)
class GroupCallback:
    data: dict[str, Any]
    message: Message | None  # None: acknowledge only
    nonce: str
    response_url: str | None
    addressee: str | None  # "@userid" to put before the answer in a group
    welcome: bool  # an enter_chat event: the passive reply is a text message


class Addressing:
    """Who the bot answers in a group: an @mention of one of its names, or a keyword."""

    def __init__(self, bot_names: Iterable[str], keywords: Iterable[str]) -> None:
        names = [re.escape(n.lstrip("@")) for n in bot_names if n.strip()]
        self._mention = re.compile(rf"@(?:{'|'.join(names)}){_MENTION_END}") if names else None
        self._keywords = [k.casefold() for k in keywords if k.strip()]

    def strip_mention(self, text: str) -> tuple[bool, str]:
        """(mentioned, the text without the mention)."""
        if self._mention is None or not self._mention.search(text):
            return False, text
        return True, self._mention.sub(" ", text).strip()

    def has_keyword(self, text: str) -> bool:
        folded = text.casefold()
        return any(k in folded for k in self._keywords)


class WeChatGroupAdapter:
    name = CHANNEL
    capabilities = Capabilities(buttons=False, images=False, cards=False, streaming=False)

    def __init__(self, engine: TurnHandler, config: WeChatGroupConfig, max_body_bytes: int = 64 * 1024,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.envelope = AesEnvelope(config.token, config.encoding_aes_key, "")  # the robot's receive id is ""
        self.addressing = Addressing(config.bot_names, config.keywords)
        self.api = WeChatApi("", "stable", "", "", timeout_s=config.api_timeout_s)  # response_url posts only
        self.runner = TurnRunner(engine, CHANNEL)
        self.robot = (GroupRobot(config.robot_webhook_url, config.robot_messages_per_minute,
                                 timeout_s=config.api_timeout_s) if config.robot_webhook_url else None)

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/wechat/group/callback", self.verify_url)
        app.router.add_post("/wechat/group/callback", self.callback)

    async def close(self) -> None:
        await self.runner.close()
        await self.api.close()
        if self.robot is not None:
            await self.robot.close()

    async def push_group(self, text: str) -> bool:
        """A proactive message (core.push: operator campaigns) to the group behind the robot webhook."""
        if self.robot is None:
            log.warning("%s: no robot_webhook_url configured; group message not sent", CHANNEL)
            return False
        return await self.robot.send_markdown(text)

    async def verify_url(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            echostr = query.get("echostr", "")
            if not echostr or len(echostr) > 2048:
                raise Refused(400, "missing or oversized echostr")
            signature, timestamp, nonce = signed_params(query, "msg_signature")
            check_fresh(timestamp, self.clock(), self.config.max_clock_skew_s)
            plain = self.envelope.open(echostr, signature, timestamp, nonce)
        except Refused as exc:
            return self.refuse(request, exc)
        log.info("%s: callback URL verified", CHANNEL)
        return web.Response(text=plain)

    def read_callback(self, query: Mapping[str, str], body: bytes) -> GroupCallback:
        """Verify, decrypt and parse one callback; decide whether it is for the bot."""
        signature, timestamp, nonce = signed_params(query, "msg_signature")
        check_fresh(timestamp, self.clock(), self.config.max_clock_skew_s)
        encrypt = parse_json(body).get("encrypt")
        data = parse_json(self.envelope.open(encrypt if isinstance(encrypt, str) else "", signature, timestamp,
                                             nonce))
        return self.interpret(data, nonce)

    def interpret(self, data: dict[str, Any], nonce: str) -> GroupCallback:
        msgtype = str(data.get("msgtype") or "")
        sender = _dict(data.get("from"))
        user_id = str(sender.get("userid") or "")
        group = data.get("chattype") == "group"
        chat_id = str(data.get("chatid") or user_id)
        response_url = data.get("response_url") if isinstance(data.get("response_url"), str) else None
        if response_url and not response_url.startswith(("https://", "http://")):
            raise Refused(400, "malformed response_url")
        ignore = GroupCallback(data, None, nonce, None, None, False)
        if msgtype in ("stream", "") or not user_id:
            return ignore  # stream refreshes: our streams finish in the first reply
        if not _USER_ID.match(user_id) or len(chat_id) > 128:
            raise Refused(400, "malformed from.userid or chatid")
        msg_id = str(data.get("msgid") or f"{user_id}:{data.get('create_time', '')}:{msgtype}")
        if not _MSG_ID.match(msg_id.replace(":", "_")):
            raise Refused(400, "malformed msgid")
        user = ChannelUser(CHANNEL, user_id)
        chat = Chat(ChatKind.GROUP if group else ChatKind.DIRECT, chat_id)
        base: dict[str, Any] = {"user": user, "chat": chat, "platform_message_id": msg_id}
        if msgtype == "event":
            if _dict(data.get("event")).get("eventtype") == "enter_chat":
                return GroupCallback(data, Message(event=EventKind.SUBSCRIBE, **base), nonce, None, None, True)
            return ignore
        text, attachments = _content(data, msgtype)
        addressee = None
        if group:
            mentioned, text = self.addressing.strip_mention(text)
            if not (mentioned or self.addressing.has_keyword(text)):
                return ignore
            addressee = f"@{user_id}"
        if not (text or attachments):
            return ignore
        return GroupCallback(data, Message(text=text, attachments=attachments, **base), nonce, response_url,
                             addressee, False)

    async def callback(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await read_body(request, self.max_body_bytes)
            callback = self.read_callback(request.query, body)
        except Refused as exc:
            return self.refuse(request, exc)
        message = callback.message
        if message is None:
            return web.Response(text="")

        async def deliver(_message: Message, replies: list[Reply]) -> None:
            await self.post_late(callback, replies)

        try:
            outcome = await self.runner.run(message, self.capabilities, self.config.reply_deadline_s, deliver,
                                            batch=True)
        except BadMessage as exc:
            return self.refuse(request, Refused(400, f"refused by the engine: {exc}"))
        except TurnUnavailable as exc:
            log.warning("%s: turn not run (%s); answering 503 so WeCom retries", CHANNEL, exc)
            return web.Response(status=503, text="temporarily unavailable", headers={"Retry-After": "1"})
        if outcome.kind is not Outcome.ANSWERED:
            return web.Response(text="")
        text = self.answer_text(callback, outcome.replies)
        if not text:
            return web.Response(text="")
        if callback.welcome:
            reply: dict[str, Any] = {"msgtype": "text", "text": {"content": text}}
        else:
            reply = {"msgtype": "stream", "stream": {"id": secrets.token_hex(8), "finish": True, "content": text}}
        return web.Response(body=self.seal(reply, callback.nonce), content_type="application/json")

    def answer_text(self, callback: GroupCallback, replies: list[Reply]) -> str:
        """All replies as one message (a response_url takes one post), addressed to the asker in a group."""
        lines = [r.final_text.strip() for r in replies]
        text = "\n\n".join(line for line in lines if line)
        if not text:
            return ""
        if callback.addressee:
            text = f"{callback.addressee} {text}"
        pieces = split_text(text, REPLY_LIMIT_BYTES - 4)
        return pieces[0] + (" …" if len(pieces) > 1 else "")

    def seal(self, reply: dict[str, Any], nonce: str) -> bytes:
        timestamp = str(int(self.clock()))
        encrypt, signature = self.envelope.seal(orjson.dumps(reply).decode(), timestamp, nonce)
        return orjson.dumps({"encrypt": encrypt, "msgsignature": signature, "timestamp": timestamp, "nonce": nonce})

    async def post_late(self, callback: GroupCallback, replies: list[Reply]) -> None:
        text = self.answer_text(callback, replies)
        if not text:
            return
        if not callback.response_url:
            log.warning("%s: a late answer has no response_url to go to; dropped", CHANNEL)
            return
        try:
            await self.api.request("POST", callback.response_url,
                                   body={"msgtype": "markdown", "markdown": {"content": text}})
        except ApiError as exc:
            log.warning("%s: late answer not delivered through response_url: %s (errcode %d)", CHANNEL,
                        exc.explanation, exc.errcode)

    def refuse(self, request: web.Request, exc: Refused) -> web.Response:
        log.warning("%s: %s %s refused with %d: %s", CHANNEL, request.method, request.path, exc.status, exc.reason)
        return web.Response(status=exc.status, text=exc.reason if exc.status != 403 else "forbidden")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _content(data: Mapping[str, Any], msgtype: str) -> tuple[str, tuple[Attachment, ...]]:
    """Text and attachments of a robot message (text, mixed text+images, image, voice, file)."""
    body = _dict(data.get(msgtype))
    if msgtype in ("text", "voice"):  # WeCom transcribes voice messages into voice.content
        return str(body.get("content") or "").strip(), ()
    if msgtype == "mixed":
        texts, images = [], []
        items = body.get("msg_item")
        for item in items if isinstance(items, list) else []:
            item = _dict(item)
            if item.get("msgtype") == "text":
                texts.append(str(_dict(item.get("text")).get("content") or "").strip())
            elif item.get("msgtype") == "image" and _dict(item.get("image")).get("url"):
                images.append(Attachment(AttachmentKind.IMAGE, url=str(item["image"]["url"])))
        return " ".join(t for t in texts if t), tuple(images)
    if msgtype in ("image", "file") and body.get("url"):
        kind = AttachmentKind.IMAGE if msgtype == "image" else AttachmentKind.FILE
        return "", (Attachment(kind, url=str(body["url"])),)
    return "", ()


class SlidingWindow:
    """At most `limit` acquisitions in any `window_s`; `acquire` waits (on the given clock) for a slot."""

    def __init__(self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()  # first come, first served

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                while self._stamps and self._stamps[0] <= now - self.window_s:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                await self.sleep(self._stamps[0] + self.window_s - now)

    def hold_off(self) -> None:
        """The server said we went too fast: count the window as full from now."""
        now = self.clock()
        self._stamps.extend([now] * max(0, self.limit - len(self._stamps)))


class GroupRobot:
    """Proactive messages to one group through its robot webhook (POST {"msgtype": "text" | "markdown"})."""

    RATE_LIMITED = 45009

    def __init__(self, webhook_url: str, per_minute: int = 20, timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.webhook_url = webhook_url
        self.window = SlidingWindow(per_minute, 60.0, clock, sleep)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._order = asyncio.Lock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send_text(self, content: str, mention_user_ids: Iterable[str] = ()) -> bool:
        mentioned = list(mention_user_ids)
        ok = True
        for piece in split_text(content, ROBOT_TEXT_LIMIT):
            body: dict[str, Any] = {"msgtype": "text", "text": {"content": piece}}
            if mentioned:
                body["text"]["mentioned_list"] = mentioned
                mentioned = []  # mention once, on the first piece
            ok = await self._post(body) and ok
        return ok

    async def send_markdown(self, content: str) -> bool:
        ok = True
        for piece in split_text(content, ROBOT_MARKDOWN_LIMIT):
            ok = await self._post({"msgtype": "markdown", "markdown": {"content": piece}}) and ok
        return ok

    async def _post(self, body: dict[str, Any]) -> bool:
        async with self._order:
            for attempt in (1, 2):
                await self.window.acquire()
                errcode, errmsg = await self._request(body)
                if errcode == 0:
                    return True
                if errcode == self.RATE_LIMITED and attempt == 1:
                    log.warning("%s: group robot rate limit hit (45009); waiting for the next window", CHANNEL)
                    self.window.hold_off()
                    continue
                log.warning("%s: group robot message not sent: errcode %d %s", CHANNEL, errcode, errmsg)
                return False
        return False

    async def _request(self, body: dict[str, Any]) -> tuple[int, str]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(self.webhook_url, data=orjson.dumps(body),
                                          headers={"Content-Type": "application/json"}) as response:
                answer = orjson.loads(await response.read()) if response.status == 200 else {}
                if response.status != 200:
                    return -1, f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            return -1, type(exc).__name__
        return int(answer.get("errcode") or 0), str(answer.get("errmsg", ""))
