"""WeChat Official Account and WeCom (企业微信) app callbacks.

GET  /wechat/callback   URL verification: OA answers `echostr` after checking `signature`; WeCom decrypts
                        `echostr` after checking `msg_signature`.
POST /wechat/callback   messages and events, in plaintext (OA), compatible or safe mode (OA: encrypt_type=aes)
                        or always encrypted (WeCom). Signature and timestamp (at most `max_clock_skew_s` off)
                        are checked before the body is decrypted or parsed; XML is parsed by defusedxml.

The reply deadline: WeChat waits 5 s for a passive reply and retries the same MsgId up to 3 times. The
turn runs as a task; if it ends within `reply_deadline_s` its replies are the passive reply (all text
joined, split under 2,048 bytes at sentence boundaries: the first part passively, the rest, and images
after the first part, through the customer-service API). Otherwise the callback is answered "success" at
once and the replies go through the customer-service API as they become ready. A retry reaches the
engine as a duplicate (the claim on (channel, MsgId) is shared by all hub processes in Redis) and is only
acknowledged, so exactly one answer reaches the shopper. A turn that could not run (session store down)
gets a 503, so WeChat retries it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from wechatpy.messages import BaseMessage
from wechatpy.replies import ImageReply, TextReply

from adapters.wechat_common import (
    SUCCESS,
    AesEnvelope,
    ApiError,
    ImagePart,
    Outcome,
    Part,
    Refused,
    TextPart,
    TurnRunner,
    WeChatApi,
    check_fresh,
    check_signature,
    describe,
    parse_xml,
    read_body,
    reply_parts,
    short_id,
    signed_params,
    to_message,
    wechatpy_message,
)
from core.config import WeChatConfig
from core.message import BadMessage, Capabilities, Message, Reply, TurnHandler, TurnUnavailable

log = logging.getLogger("kefu.wechat")

_XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def cdata_safe(text: str) -> str:
    """Text that can sit inside wechatpy's CDATA sections: no "]]>", no characters XML forbids."""
    return _XML_INVALID.sub("", text).replace("]]>", "]]]]><![CDATA[>")


@dataclass(frozen=True, slots=True)
class Callback:
    """A verified, parsed callback."""

    wx: BaseMessage  # wechatpy's message or event
    message: Message | None  # None: acknowledge only
    encrypted: bool
    nonce: str


class WeChatAdapter:
    capabilities = Capabilities(buttons=False, images=True, cards=False, streaming=False)

    def __init__(self, engine: TurnHandler, config: WeChatConfig, max_body_bytes: int = 64 * 1024,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.work = config.kind == "wecom"
        self.name = self.channel = "wecom" if self.work else "wechat"
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.envelope = (AesEnvelope(config.token, config.encoding_aes_key, config.app_id)
                         if config.encoding_aes_key else None)
        self.api = WeChatApi(config.api_base, "wecom" if self.work else "stable", config.app_id,
                             config.app_secret, timeout_s=config.api_timeout_s)
        self.runner = TurnRunner(engine, self.channel)

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/wechat/callback", self.verify_url)
        app.router.add_post("/wechat/callback", self.callback)

    async def close(self) -> None:
        await self.runner.close()
        await self.api.close()

    # -- inbound --------------------------------------------------------------------------------

    async def verify_url(self, request: web.Request) -> web.Response:
        """The console's URL check."""
        query = request.query
        try:
            echostr = query.get("echostr", "")
            if not echostr or len(echostr) > 2048:
                raise Refused(400, "missing or oversized echostr")
            if self.work:
                signature, timestamp, nonce = signed_params(query, "msg_signature")
                check_fresh(timestamp, self.clock(), self.config.max_clock_skew_s)
                assert self.envelope is not None  # WeCom always has a key (config check)
                echostr = self.envelope.open(echostr, signature, timestamp, nonce)
            else:
                signature, timestamp, nonce = signed_params(query, "signature")
                check_fresh(timestamp, self.clock(), self.config.max_clock_skew_s)
                check_signature(signature, self.config.token, timestamp, nonce)
        except Refused as exc:
            return self.refuse(request, exc)
        log.info("%s: callback URL verified", self.channel)
        return web.Response(text=echostr)

    def read_callback(self, query: Mapping[str, str], body: bytes) -> Callback:
        """Verify and parse one callback (no I/O): signature and freshness first, then decrypt, then parse."""
        encrypted = self.work or query.get("encrypt_type") == "aes"
        if encrypted:
            if self.envelope is None:
                raise Refused(403, "encrypted callback, but no encoding_aes_key is configured")
            signature, timestamp, nonce = signed_params(query, "msg_signature")
            check_fresh(timestamp, self.clock(), self.config.max_clock_skew_s)
            outer = parse_xml(body)
            data = parse_xml(self.envelope.open(str(outer.get("Encrypt") or ""), signature, timestamp, nonce))
        else:
            if self.envelope is not None:
                raise Refused(403, "plaintext callback refused: this account is configured for AES mode")
            signature, timestamp, nonce = signed_params(query, "signature")
            check_fresh(timestamp, self.clock(), self.config.max_clock_skew_s)
            check_signature(signature, self.config.token, timestamp, nonce)
            data = parse_xml(body)
        wx = wechatpy_message(data, work=self.work)
        return Callback(wx, to_message(wx, data, self.channel, self.config.menu), encrypted, nonce)

    async def callback(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await read_body(request, self.max_body_bytes)
            callback = self.read_callback(request.query, body)
        except Refused as exc:
            return self.refuse(request, exc)
        message = callback.message
        if message is None:
            log.debug("%s: %s acknowledged", self.channel, describe(callback.wx))
            return web.Response(text=SUCCESS)
        try:
            outcome = await self.runner.run(message, self.capabilities, self.config.reply_deadline_s, self.deliver)
        except BadMessage as exc:
            return self.refuse(request, Refused(400, f"refused by the engine: {exc}"))
        except TurnUnavailable as exc:
            log.warning("%s: turn not run (%s); answering 503 so WeChat retries", self.channel, exc)
            return web.Response(status=503, text="temporarily unavailable", headers={"Retry-After": "1"})
        if outcome.kind is not Outcome.ANSWERED:
            log.debug("%s: %s %s", self.channel, describe(callback.wx), outcome.kind)
            return web.Response(text=SUCCESS)
        parts = reply_parts(outcome.replies)
        if not parts:
            return web.Response(text=SUCCESS)
        response = web.Response(text=self.passive_xml(callback, parts[0]), content_type="application/xml")
        if len(parts) > 1:
            # The passive reply first (flushed to WeChat), then the rest through the customer-service API.
            await response.prepare(request)
            await response.write_eof()
            self.runner.spawn(self.send_parts(message.user.user_id, parts[1:]))
        return response

    def passive_xml(self, callback: Callback, part: Part) -> str:
        wx = callback.wx
        source, target = cdata_safe(str(wx.target or "")), cdata_safe(str(wx.source or ""))
        if isinstance(part, ImagePart):
            xml = ImageReply(source=source, target=target, media_id=cdata_safe(part.media_id)).render()
        else:
            assert isinstance(part, TextPart)
            xml = TextReply(source=source, target=target, content=cdata_safe(part.text)).render()
        if callback.encrypted:
            assert self.envelope is not None
            xml = self.envelope.seal_xml(xml, str(int(self.clock())), callback.nonce)
        return str(xml)

    def refuse(self, request: web.Request, exc: Refused) -> web.Response:
        log.warning("%s: %s %s refused with %d: %s", self.channel, request.method, request.path, exc.status,
                    exc.reason)
        return web.Response(status=exc.status, text=exc.reason if exc.status != 403 else "forbidden")

    # -- outbound: the customer-service message API ----------------------------------------------

    async def deliver(self, message: Message, replies: list[Reply]) -> None:
        await self.send_parts(message.user.user_id, reply_parts(replies))

    async def push(self, user_id: str, _chat_id: str, reply: Reply) -> bool:
        """A proactive message (core.push) through the customer-service API (within the 48-hour window)."""
        parts = reply_parts([reply])
        for part in parts:
            if not await self.send_part(user_id, part):
                return False
        return bool(parts)

    async def push_template(self, user_id: str, template_id: str, data: Mapping[str, str], page: str) -> bool:
        """An Official Account template message (allowed outside the window); WeCom apps have none."""
        if self.work or not self.config.app_secret:
            return False
        body: dict[str, Any] = {"touser": user_id, "template_id": template_id,
                                "data": {name: {"value": value} for name, value in data.items()}}
        if page:
            body["url"] = page
        try:
            await self.api.call("/cgi-bin/message/template/send", body)
        except ApiError as exc:
            log.warning("%s: template message to %s not delivered: %s (errcode %d)", self.channel,
                        short_id(user_id), exc.explanation, exc.errcode)
            return False
        return True

    async def send_parts(self, user_id: str, parts: list[Part]) -> None:
        for part in parts:
            if not await self.send_part(user_id, part):
                return  # after a refusal (window closed, quota) the rest would be refused too

    async def send_part(self, user_id: str, part: Part) -> bool:
        if not self.config.app_secret:
            log.warning("%s: a reply to %s missed the passive deadline, but no app_secret is configured to send "
                        "it through the customer-service API; dropped", self.channel, short_id(user_id))
            return False
        if isinstance(part, ImagePart):
            content: dict[str, Any] = {"msgtype": "image", "image": {"media_id": part.media_id}}
        else:
            assert isinstance(part, TextPart)
            content = {"msgtype": "text", "text": {"content": part.text}}
        if self.work:
            agent = self.config.agent_id
            path, body = "/cgi-bin/message/send", {"touser": user_id, "agentid": int(agent) if agent.isdigit()
                                                   else agent, **content}
        else:
            path, body = "/cgi-bin/message/custom/send", {"touser": user_id, **content}
        try:
            await self.api.call(path, body)
        except ApiError as exc:
            log.warning("%s: reply to %s not delivered: %s (errcode %d)", self.channel, short_id(user_id),
                        exc.explanation, exc.errcode)
            return False
        log.debug("%s: %s sent to %s through the API", self.channel, content["msgtype"], short_id(user_id))
        return True

