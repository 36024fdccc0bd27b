"""Mini-program customer-service messages (小程序客服消息).

GET  /miniprogram/callback    URL verification: `echostr` after checking `signature`.
POST /miniprogram/callback    message push in either data format the console offers, JSON or XML, in
                              plaintext or safe mode (encrypt_type=aes: msg_signature over the Encrypt
                              field, AES with the AppID as receive id). text, image, miniprogrampage and
                              the user_enter_tempsession event (a welcome) reach the engine.
POST /miniprogram/link-phone  {"js_code", "phone_code", "raw_data"?, "signature"?} from the mini-program:
                              the login code gives the openid (jscode2session), the phone code the phone
                              number WeChat verified (getuserphonenumber); the engine then links this
                              shopper to the customer who verified the same phone elsewhere (web shop,
                              Telegram), so they continue one conversation. raw_data/signature (wx.getUserInfo)
                              are checked as sha1(raw_data + session_key) and give the display name.

The mini-program has no passive replies: every reply goes through the customer-service send API (text,
image by media id, mini-program page card, link) as soon as the engine sends it. The callback waits up to
`reply_deadline_s` to learn whether the turn ran: a turn that could not run gets a 503 so WeChat retries
it; otherwise "success". Retries are duplicates for the engine (shared claim on the MsgId).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from adapters.wechat_common import (
    SUCCESS,
    AesEnvelope,
    ApiError,
    CardPart,
    ImagePart,
    Part,
    Refused,
    TextPart,
    TurnRunner,
    WeChatApi,
    check_fresh,
    check_signature,
    describe,
    parse_json,
    parse_xml,
    read_body,
    reply_parts,
    short_id,
    signed_params,
    to_message,
    wechatpy_message,
)
from core.config import MiniProgramConfig
from core.message import (
    BadMessage,
    Capabilities,
    ChannelUser,
    Chat,
    ChatKind,
    Message,
    ProductCard,
    Reply,
    TurnHandler,
    TurnUnavailable,
)

log = logging.getLogger("kefu.miniprogram")

CHANNEL = "miniprogram"
_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,256}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def wxa_signature_valid(raw_data: str, session_key: str, signature: str) -> bool:
    """The mini-program's user-data signature: sha1(raw_data + session_key), compared in constant time."""
    expected = hashlib.sha1((raw_data + session_key).encode()).hexdigest()
    return hmac.compare_digest(expected, signature.lower())


@dataclass(frozen=True, slots=True)
class MiniCallback:
    kind: str  # for logs: "text", "event:user_enter_tempsession" ...
    message: Message | None


class MiniProgramAdapter:
    name = CHANNEL
    capabilities = Capabilities(buttons=False, images=True, cards=True, streaming=False)

    def __init__(self, engine: TurnHandler, config: MiniProgramConfig, max_body_bytes: int = 64 * 1024,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.config = config
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.envelope = (AesEnvelope(config.token, config.encoding_aes_key, config.app_id)
                         if config.encoding_aes_key else None)
        self.api = WeChatApi(config.api_base_url, "stable", config.app_id, config.app_secret,
                             timeout_s=config.api_timeout_s)
        self.runner = TurnRunner(engine, CHANNEL)

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/miniprogram/callback", self.verify_url)
        app.router.add_post("/miniprogram/callback", self.callback)
        app.router.add_post("/miniprogram/link-phone", self.link_phone)

    async def close(self) -> None:
        await self.runner.close()
        await self.api.close()

    # -- callbacks ------------------------------------------------------------------------------

    async def verify_url(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            echostr = query.get("echostr", "")
            if not echostr or len(echostr) > 2048:
                raise Refused(400, "missing or oversized echostr")
            signature, timestamp, nonce = signed_params(query, "signature")
            check_fresh(timestamp, self.clock(), self.config.max_clock_skew_s)
            check_signature(signature, self.config.token, timestamp, nonce)
        except Refused as exc:
            return self.refuse(request, exc)
        log.info("%s: callback URL verified", CHANNEL)
        return web.Response(text=echostr)

    def read_callback(self, query: Mapping[str, str], body: bytes) -> MiniCallback:
        """Verify and parse one push (JSON or XML, plaintext or safe mode); no I/O."""
        is_json = body.lstrip()[:1] == b"{"
        parse = parse_json if is_json else parse_xml
        if query.get("encrypt_type") == "aes":
            if self.envelope is None:
                raise Refused(403, "encrypted push, but no encoding_aes_key is configured")
            signature, timestamp, nonce = signed_params(query, "msg_signature")
            check_fresh(timestamp, self.clock(), self.config.max_clock_skew_s)
            encrypt = parse(body).get("Encrypt")
            data = parse(self.envelope.open(encrypt if isinstance(encrypt, str) else "", signature, timestamp,
                                            nonce))
        else:
            if self.envelope is not None:
                raise Refused(403, "plaintext push refused: this mini-program is configured for safe mode")
            signature, timestamp, nonce = signed_params(query, "signature")
            check_fresh(timestamp, self.clock(), self.config.max_clock_skew_s)
            check_signature(signature, self.config.token, timestamp, nonce)
            data = parse(body)
        wx = wechatpy_message(data)
        return MiniCallback(describe(wx), to_message(wx, data, CHANNEL, {}))

    async def callback(self, request: web.Request) -> web.Response:
        try:
            body = await read_body(request, self.max_body_bytes)
            callback = self.read_callback(request.query, body)
        except Refused as exc:
            return self.refuse(request, exc)
        if callback.message is None:
            log.debug("%s: %s acknowledged", CHANNEL, callback.kind)
            return web.Response(text=SUCCESS)
        try:
            await self.runner.run(callback.message, self.capabilities, self.config.reply_deadline_s, self.deliver,
                                  passive=False)
        except BadMessage as exc:
            return self.refuse(request, Refused(400, f"refused by the engine: {exc}"))
        except TurnUnavailable as exc:
            log.warning("%s: turn not run (%s); answering 503 so WeChat retries", CHANNEL, exc)
            return web.Response(status=503, text="temporarily unavailable", headers={"Retry-After": "1"})
        return web.Response(text=SUCCESS)

    def refuse(self, request: web.Request, exc: Refused) -> web.Response:
        log.warning("%s: %s %s refused with %d: %s", CHANNEL, request.method, request.path, exc.status, exc.reason)
        return web.Response(status=exc.status, text=exc.reason if exc.status != 403 else "forbidden")

    # -- the send API ---------------------------------------------------------------------------

    async def deliver(self, message: Message, replies: list[Reply]) -> None:
        for part in reply_parts(replies, cards=True):
            if not await self.send_part(message.user.user_id, part):
                return

    async def push(self, user_id: str, _chat_id: str, reply: Reply) -> bool:
        """A proactive message (core.push) through the customer-service API (within the 48-hour window)."""
        parts = reply_parts([reply], cards=True)
        for part in parts:
            if not await self.send_part(user_id, part):
                return False
        return bool(parts)

    async def push_template(self, user_id: str, template_id: str, data: Mapping[str, str], page: str) -> bool:
        """A subscribe message: allowed outside the window once the user accepted that template."""
        body: dict[str, Any] = {"touser": user_id, "template_id": template_id,
                                "data": {name: {"value": value} for name, value in data.items()}}
        if page:
            body["page"] = page
        try:
            await self.api.call("/cgi-bin/message/subscribe/send", body)
        except ApiError as exc:
            log.warning("%s: subscribe message to %s not delivered: %s (errcode %d)", CHANNEL, short_id(user_id),
                        exc.explanation, exc.errcode)
            return False
        return True

    def message_body(self, part: Part) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"msgtype": "text", "text": {"content": part.text}}
        if isinstance(part, ImagePart):
            return {"msgtype": "image", "image": {"media_id": part.media_id}}
        assert isinstance(part, CardPart)
        return self.card_body(part.card)

    def card_body(self, card: ProductCard) -> dict[str, Any]:
        """A product card: a mini-program page card when a thumbnail is configured, else a link, else text."""
        title = card.title + (f" {card.price}" if card.price else "")
        if self.config.card_thumb_media_id:
            return {"msgtype": "miniprogrampage", "miniprogrampage": {
                "title": title, "pagepath": self.config.product_page_path.format(product_id=card.product_id),
                "thumb_media_id": self.config.card_thumb_media_id}}
        if card.url:
            return {"msgtype": "link", "link": {"title": title, "description": card.description or "",
                                                "url": card.url, "thumb_url": card.image_url or ""}}
        return {"msgtype": "text", "text": {"content": title}}

    async def send_part(self, user_id: str, part: Part) -> bool:
        content = self.message_body(part)
        try:
            await self.api.call("/cgi-bin/message/custom/send", {"touser": user_id, **content})
        except ApiError as exc:
            log.warning("%s: reply to %s not delivered: %s (errcode %d)", CHANNEL, short_id(user_id),
                        exc.explanation, exc.errcode)
            return False
        return True

    # -- linking a verified phone ---------------------------------------------------------------

    async def link_phone(self, request: web.Request) -> web.Response:
        try:
            data = parse_json(await read_body(request, 16 * 1024))
            js_code, phone_code = data.get("js_code"), data.get("phone_code")
            raw_data, signature = data.get("raw_data"), data.get("signature")
            if not (isinstance(js_code, str) and _CODE.match(js_code)):
                raise Refused(400, "'js_code' (from wx.login) is missing or malformed")
            if not (isinstance(phone_code, str) and _CODE.match(phone_code)):
                raise Refused(400, "'phone_code' (from the getPhoneNumber button) is missing or malformed")
            if raw_data is not None and not (isinstance(raw_data, str) and len(raw_data) <= 8192
                                             and isinstance(signature, str) and _HEX40.match(signature.lower())):
                raise Refused(400, "'raw_data' needs its 'signature' (both from wx.getUserInfo)")
        except Refused as exc:
            return self.refuse_json(request, exc)
        try:
            login = await self.api.request("GET", f"{self.api.base_url}/sns/jscode2session", params={
                "appid": self.config.app_id, "secret": self.config.app_secret, "js_code": js_code,
                "grant_type": "authorization_code"})
            openid, session_key = str(login.get("openid") or ""), str(login.get("session_key") or "")
            if not openid or not session_key:
                raise Refused(502, "jscode2session gave no openid")
            display_name = None
            if raw_data is not None:
                if not wxa_signature_valid(raw_data, session_key, signature):
                    raise Refused(403, "raw_data signature mismatch")
                display_name = _nickname(raw_data)
            answer = await self.api.call("/wxa/business/getuserphonenumber", {"code": phone_code})
            info = answer.get("phone_info") if isinstance(answer.get("phone_info"), dict) else {}
            watermark = info.get("watermark") if isinstance(info.get("watermark"), dict) else {}
            if watermark.get("appid") != self.config.app_id:
                raise Refused(403, "the phone number was issued to another app")
            number, country = str(info.get("purePhoneNumber") or ""), str(info.get("countryCode") or "")
            if not number.isdigit():
                raise Refused(502, "getuserphonenumber gave no phone number")
        except ApiError as exc:
            status = 502 if exc.errcode == -1 else 400
            return self.refuse_json(request, Refused(status, f"WeChat refused: {exc.explanation} "
                                                             f"(errcode {exc.errcode})"))
        except Refused as exc:
            return self.refuse_json(request, exc)
        message = Message(user=ChannelUser(CHANNEL, openid, display_name=display_name),
                          chat=Chat(ChatKind.DIRECT, openid), verified_phone=f"+{country}{number}")

        async def no_replies(_reply: Reply) -> None:
            return None

        try:
            await self.engine.handle(message, no_replies, self.capabilities)
        except (BadMessage, ValueError) as exc:
            return self.refuse_json(request, Refused(400, f"cannot link: {exc}"))
        except TurnUnavailable as exc:
            return web.json_response({"error": {"code": "temporarily_unavailable", "message": exc.polite_text}},
                                     status=503, headers={"Retry-After": "2"})
        log.info("%s: %s linked by a verified phone", CHANNEL, short_id(openid))
        return web.json_response({"linked": True})

    def refuse_json(self, request: web.Request, exc: Refused) -> web.Response:
        log.warning("%s: %s %s refused with %d: %s", CHANNEL, request.method, request.path, exc.status, exc.reason)
        return web.json_response({"error": {"code": "refused", "message": exc.reason}}, status=exc.status)


def _nickname(raw_data: str) -> str | None:
    try:
        profile = orjson.loads(raw_data)
    except orjson.JSONDecodeError:
        return None
    name = profile.get("nickName") if isinstance(profile, dict) else None
    return str(name)[:64] if name else None
