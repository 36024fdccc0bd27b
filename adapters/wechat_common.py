"""What the WeChat-family adapters share (Official Account / WeCom, groups, mini-program).

- callback security: signature and timestamp checks, the AES envelope (wechatpy's crypto), XML parsed
  only with defusedxml (no DTD, so no entity expansion and no external entities);
- wechatpy message objects built from a parsed payload, and their mapping to a `Message`;
- rendering: replies as WeChat message parts, text split at sentence boundaries under 2,048 UTF-8 bytes;
- `WeChatApi`: the few HTTP API methods the hub calls, over aiohttp (wechatpy's client is synchronous);
- `TurnRunner`: one engine turn against WeChat's reply deadline, late replies delivered in the background.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import aiohttp
import orjson
from aiohttp import web
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from wechatpy.crypto import PrpCrypto
from wechatpy.enterprise.events import EVENT_TYPES as WORK_EVENT_TYPES
from wechatpy.enterprise.messages import MESSAGE_TYPES as WORK_MESSAGE_TYPES
from wechatpy.events import EVENT_TYPES
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.messages import MESSAGE_TYPES, BaseMessage, UnknownMessage
from wechatpy.utils import WeChatSigner

from core.message import (
    Attachment,
    AttachmentKind,
    BadMessage,
    ChannelUser,
    Chat,
    ChatKind,
    EventKind,
    Location,
    Message,
    ProductCard,
    Reply,
    TurnHandler,
    TurnUnavailable,
)

log = logging.getLogger("kefu.wechat")

TEXT_LIMIT_BYTES = 2048  # WeChat text messages (passive, customer-service API, WeCom app)
SUCCESS = "success"  # WeChat's "received, no passive reply"

_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")
_NONCE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_TIMESTAMP = re.compile(r"^\d{1,12}$")
_USER_ID = re.compile(r"^[^\s<>&\"']{1,128}$")
_MSG_ID = re.compile(r"^[A-Za-z0-9_=+/\-]{1,128}$")


class Refused(Exception):
    """A callback that is not processed: `status` is the 4xx to answer, `reason` goes to the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# -- signatures and timestamps -------------------------------------------------------------------


def signature_of(*parts: str) -> str:
    """WeChat's callback signature: SHA-1 of the sorted, concatenated parts."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


def signed_params(query: Mapping[str, str], signature_key: str) -> tuple[str, str, str]:
    """(signature, timestamp, nonce) from a callback's query string, checked for shape."""
    signature = query.get(signature_key, "")
    timestamp = query.get("timestamp", "")
    nonce = query.get("nonce", "")
    if not signature:
        raise Refused(403, f"no {signature_key} in the query")
    if not (_HEX40.match(signature) and _TIMESTAMP.match(timestamp) and _NONCE.match(nonce)):
        raise Refused(400, f"malformed {signature_key}, timestamp or nonce")
    return signature.lower(), timestamp, nonce


def check_fresh(timestamp: str, now: float, max_skew_s: float) -> None:
    if abs(now - int(timestamp)) > max_skew_s:
        raise Refused(403, f"timestamp {timestamp} is {now - int(timestamp):+.0f} s off (limit {max_skew_s:.0f} s)")


def check_signature(signature: str, *parts: str) -> None:
    if not hmac.compare_digest(signature_of(*parts), signature):
        raise Refused(403, "signature mismatch")


class AesEnvelope:
    """WeChat's AES mode (OA safe/compatible mode, WeCom, mini-program, intelligent robot), via wechatpy."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.token = token
        self.receive_id = receive_id
        self._crypto = PrpCrypto(base64.b64decode(encoding_aes_key + "="))

    def open(self, encrypt: str, signature: str, timestamp: str, nonce: str) -> str:
        """Check the msg_signature over the ciphertext, then decrypt; the plaintext names its receiver."""
        if not encrypt or len(encrypt) > 1_000_000:
            raise Refused(400, "no Encrypt field")
        check_signature(signature, self.token, timestamp, nonce, encrypt)
        try:
            return str(self._crypto.decrypt(encrypt, self.receive_id))
        except InvalidAppIdException:
            raise Refused(403, "encrypted for another app id") from None
        except Exception as exc:  # base64, block size, padding, length prefix, UTF-8: all the sender's fault
            raise Refused(400, f"cannot decrypt: {type(exc).__name__}") from None

    def seal(self, plaintext: str, timestamp: str, nonce: str) -> tuple[str, str]:
        """(Encrypt, MsgSignature) for a reply."""
        encrypt = self._crypto.encrypt(plaintext, self.receive_id).decode()
        return encrypt, signature_of(self.token, timestamp, nonce, encrypt)

    def seal_xml(self, plaintext: str, timestamp: str, nonce: str) -> str:
        encrypt, signature = self.seal(plaintext, timestamp, nonce)
        return (f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{signature}]]></MsgSignature>"
                f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 above `limit` bytes (checked before reading when announced)."""
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, f"body of {request.content_length} bytes; the limit is {limit}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Refused(413, f"body over the limit of {limit} bytes") from None
    if len(body) > limit:
        raise Refused(413, f"body of {len(body)} bytes; the limit is {limit}")
    return body


# -- payloads -----------------------------------------------------------------------------------


def parse_xml(data: bytes | str) -> dict[str, Any]:
    """A WeChat XML payload as a dict (like xmltodict), parsed by defusedxml: any DTD is refused."""
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise Refused(400, f"XML with a DTD or entities refused ({type(exc).__name__})") from None
    except (ParseError, ValueError) as exc:
        raise Refused(400, f"malformed XML: {exc}") from None
    if root.tag != "xml":
        raise Refused(400, f"the XML root is <{root.tag[:20]}>, not <xml>")
    value = _element(root)
    return value if isinstance(value, dict) else {}


def _element(node: Any) -> Any:
    children = list(node)
    if not children:
        text = (node.text or "").strip()
        return text or None
    out: dict[str, Any] = {}
    for child in children:
        value = _element(child)
        if child.tag in out:
            previous = out[child.tag]
            out[child.tag] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[child.tag] = value
    return out


def parse_json(data: bytes | str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise Refused(400, "malformed JSON") from None
    if not isinstance(value, dict):
        raise Refused(400, "the JSON payload is not an object")
    return value


def wechatpy_message(data: dict[str, Any], work: bool = False) -> BaseMessage:
    """The wechatpy message or event class for a parsed payload (wechatpy's own dispatch, on a safe dict)."""
    message_types, event_types = (WORK_MESSAGE_TYPES, WORK_EVENT_TYPES) if work else (MESSAGE_TYPES, EVENT_TYPES)
    data = {k: (str(v) if isinstance(v, int | float) else v) for k, v in data.items()}  # JSON payloads
    msg_type = str(data.get("MsgType") or "").lower()
    if not msg_type:
        return UnknownMessage(data)
    if msg_type != "event" and not msg_type.startswith("device_"):
        return message_types.get(msg_type, UnknownMessage)(data)
    event = str(data.get("Event") or "").lower()
    if msg_type.startswith("device_"):
        event = f"device_{event}" if event else msg_type
    elif event == "subscribe" and data.get("EventKey"):
        key = str(data["EventKey"])
        if key.startswith(("scanbarcode|", "scanimage|")):
            event = "subscribe_scan_product"
        elif key.startswith("qrscene_"):
            event = "subscribe_scan"
    return event_types.get(event, UnknownMessage)(data)


def platform_id(data: Mapping[str, Any]) -> str:
    """The id WeChat retries under: MsgId, or for events FromUserName + CreateTime (+ the event)."""
    msg_id = str(data.get("MsgId") or data.get("MsgID") or "")
    if msg_id and msg_id != "0":
        if not _MSG_ID.match(msg_id):
            raise Refused(400, "malformed MsgId")
        return msg_id
    return f"{data.get('FromUserName')}:{data.get('CreateTime')}:{str(data.get('Event') or '').lower()}"


def user_of(data: Mapping[str, Any]) -> str:
    user = str(data.get("FromUserName") or "")
    if not _USER_ID.match(user):
        raise Refused(400, "missing or malformed FromUserName")
    return user


SUBSCRIBE_EVENTS = {"subscribe", "subscribe_scan", "subscribe_scan_product", "user_enter_tempsession"}


def to_message(wx: BaseMessage, data: Mapping[str, Any], channel: str, menu: Mapping[str, str]) -> Message | None:
    """The Message a WeChat message or event stands for; None when it only needs acknowledging."""
    kind = wx.type
    if kind == "unknown":
        return None
    event = str(getattr(wx, "event", "") or "") if kind == "event" else ""
    user = user_of(data)
    base: dict[str, Any] = {
        "user": ChannelUser(channel, user),
        "chat": Chat(ChatKind.DIRECT, user),
        "platform_message_id": platform_id(data),
        "timestamp": _created(data),
    }
    try:
        if kind == "text":
            text = str(wx.content or "").strip()
            return Message(text=text, **base) if text else None
        if kind == "image":
            return Message(attachments=(_attachment(AttachmentKind.IMAGE, wx.image, wx.media_id),), **base)
        if kind == "voice":
            if wx.recognition:  # WeChat's speech recognition, when the account has it on
                return Message(text=str(wx.recognition).strip(), **base)
            return Message(attachments=(_attachment(AttachmentKind.VOICE, None, wx.media_id),), **base)
        if kind in ("video", "shortvideo"):
            return Message(attachments=(_attachment(AttachmentKind.VIDEO, None, wx.media_id),), **base)
        if kind == "link":
            link = Attachment(AttachmentKind.FILE, url=str(wx.url or "") or None, name=wx.title)
            return Message(attachments=(link,), **base)
        if kind == "location":
            place = Location(float(wx.location_x), float(wx.location_y), wx.label or None)
            return Message(location=place, **base)
        if kind == "miniprogrampage":  # a shopper shares a mini-program page (a product) in the chat
            title = str(wx.title or "").strip()
            return Message(text=title, **base) if title else None
        if event in SUBSCRIBE_EVENTS:
            return Message(event=EventKind.SUBSCRIBE, **base)
        if event == "unsubscribe":
            return Message(event=EventKind.UNSUBSCRIBE, **base)
        if event == "location":
            return Message(event=EventKind.LOCATION, location=Location(wx.latitude, wx.longitude), **base)
        if event == "location_select":
            info = wx.location_info or {}
            place = Location(float(info["Location_X"]), float(info["Location_Y"]), info.get("Label") or None)
            return Message(event=EventKind.LOCATION, location=place, **base)
        if event == "click":
            text = menu.get(str(wx.key or ""))
            if text is None:
                log.info("%s: menu key %r has no text in the menu map; acknowledged", channel, wx.key)
            return Message(text=text, **base) if text else None
    except (TypeError, ValueError, KeyError) as exc:
        raise Refused(400, f"malformed {kind} {event}: {exc}") from None
    return None


def _attachment(kind: AttachmentKind, url: Any, media_id: Any) -> Attachment:
    if not (url or media_id):
        raise ValueError("no PicUrl or MediaId")
    return Attachment(kind, url=str(url) if url else None, media_id=str(media_id) if media_id else None)


def _created(data: Mapping[str, Any]) -> float:
    try:
        return float(data.get("CreateTime") or time.time())
    except (TypeError, ValueError):
        return time.time()


def describe(wx: BaseMessage) -> str:
    """A log label: message type and event, no content."""
    event = getattr(wx, "event", None)
    return f"{wx.type}:{event}" if wx.type == "event" else str(wx.type)


# -- rendering ----------------------------------------------------------------------------------

_SENTENCE_END = re.compile(
    r"(?<=[。！？；…!?;\n])(?![。！？；…!?;”’」』）)\"'\n])"  # after CJK/ASCII terminators and newlines
    r"|(?<=[.])(?=\s)"  # after a full stop followed by a space
)


def split_text(text: str, limit: int = TEXT_LIMIT_BYTES) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, cut after sentences; a longer sentence is cut at a
    character (or, when there is one near the end, a space): never inside a UTF-8 sequence."""
    text = text.strip()
    if len(text.encode()) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    current: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal size
        joined = "".join(current).strip()
        if joined:
            chunks.append(joined)
        current.clear()
        size = 0

    for sentence in _SENTENCE_END.split(text):
        n = len(sentence.encode())
        if n > limit:
            flush()
            *whole, rest = _hard_split(sentence, limit)
            chunks.extend(piece.strip() for piece in whole if piece.strip())
            current.append(rest)
            size = len(rest.encode())
            continue
        if size + n > limit:
            flush()
        current.append(sentence)
        size += n
    flush()
    return chunks


def _hard_split(sentence: str, limit: int) -> list[str]:
    pieces = []
    data = sentence.encode()
    while len(data) > limit:
        head = data[:limit].decode("utf-8", "ignore")  # drops only a cut multi-byte tail
        space = head.rfind(" ")
        if space > len(head) * 3 // 4:
            head = head[: space + 1]
        pieces.append(head)
        data = data[len(head.encode()):]
    pieces.append(data.decode())
    return pieces


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    media_id: str


@dataclass(frozen=True, slots=True)
class CardPart:
    card: ProductCard


Part = TextPart | ImagePart | CardPart


def reply_parts(replies: list[Reply], limit: int = TEXT_LIMIT_BYTES, cards: bool = False) -> list[Part]:
    """WeChat messages for a turn's replies, in order: consecutive texts joined, then split under `limit`;
    images with a media id as image messages (a URL-only image becomes a line of text); cards as cards
    when the channel has them, else a line of text."""
    parts: list[Part] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            parts.extend(TextPart(piece) for piece in split_text("\n\n".join(texts), limit))
            texts.clear()

    for reply in replies:
        lines = [reply.final_text.strip()]
        lines += [f"{i}. {b.title}" for i, b in enumerate(reply.buttons, start=1)]  # the engine folds these
        image = reply.image
        if image is not None and not image.media_id and image.url:
            lines.append(image.url)
        card = reply.card
        if card is not None and not cards:
            lines.append(" ".join(p for p in (card.title, card.price, card.url) if p))
        text = "\n".join(line for line in lines if line)
        if text:
            texts.append(text)
        if image is not None and image.media_id:
            flush()
            parts.append(ImagePart(image.media_id))
        if card is not None and cards:
            flush()
            parts.append(CardPart(card))
    flush()
    return parts


# -- the HTTP API -------------------------------------------------------------------------------

TOKEN_ERRORS = {40001, 40014, 42001}  # invalid, malformed, expired access token
SEND_ERRORS = {
    45015: "the shopper's 48-hour customer-service window has closed; it reopens when they message again",
    45047: "the customer-service message quota for this shopper is used up; not retried",
    45009: "the API's daily call quota is used up",
    43004: "the shopper has unfollowed the account",
    40003: "the openid does not belong to this account",
    48001: "this account is not authorized for the customer-service API",
}


class ApiError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def explanation(self) -> str:
        return SEND_ERRORS.get(self.errcode, self.errmsg)


class WeChatApi:
    """The WeChat HTTP API methods the hub calls, over aiohttp, with the access token cached until shortly
    before it expires and refreshed once when the API says it is invalid or expired (40001/40014/42001).

    Official Accounts and mini-programs use the stable token (POST /cgi-bin/stable_token): every hub
    process gets the same token while it is valid, so processes do not invalidate each other's.
    WeCom uses GET /cgi-bin/gettoken, which also returns the same token while it is valid."""

    REFRESH_AHEAD_S = 300

    def __init__(self, base_url: str, kind: Literal["stable", "wecom"], app_id: str, secret: str,
                 timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url = base_url.rstrip("/")
        self.kind = kind
        self.app_id = app_id
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._token_lock = asyncio.Lock()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None) -> dict[str, Any]:
        """One call; the JSON answer, or ApiError (errcode != 0, HTTP error, network error: -1)."""
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self.session.request(method, url, params=params, data=data, headers=headers) as response:
                raw = await response.read()
                if response.status != 200:
                    raise ApiError(-1, f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(-1, f"network: {type(exc).__name__}") from None
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(-1, "the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise ApiError(-1, "the answer is not a JSON object")
        errcode = int(answer.get("errcode") or 0)
        if errcode:
            raise ApiError(errcode, str(answer.get("errmsg", "")))
        return answer

    async def token(self, rejected: str | None = None) -> str:
        async with self._token_lock:
            fresh = self._token is not None and self.clock() < self._expires_at and self._token != rejected
            if not fresh:
                if self.kind == "wecom":
                    answer = await self.request("GET", f"{self.base_url}/cgi-bin/gettoken",
                                                params={"corpid": self.app_id, "corpsecret": self.secret})
                else:
                    answer = await self.request("POST", f"{self.base_url}/cgi-bin/stable_token", body={
                        "grant_type": "client_credential", "appid": self.app_id, "secret": self.secret})
                token = answer.get("access_token")
                if not isinstance(token, str) or not token:
                    raise ApiError(-1, "no access_token in the answer")
                expires_in = float(answer.get("expires_in") or 7200)
                self._token = token
                self._expires_at = self.clock() + max(expires_in - self.REFRESH_AHEAD_S, expires_in / 2)
            assert self._token is not None
            return self._token

    async def call(self, path: str, body: Any = None, *, method: str = "POST",
                   params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """An authenticated call (access_token in the query); a rejected token is refreshed once."""
        token = await self.token()
        for attempt in (1, 2):
            try:
                return await self.request(method, f"{self.base_url}{path}",
                                          params={**(params or {}), "access_token": token}, body=body)
            except ApiError as exc:
                if exc.errcode not in TOKEN_ERRORS or attempt == 2:
                    raise
                log.info("wechat api: access token rejected (errcode %d); refreshing once", exc.errcode)
                token = await self.token(rejected=token)
        raise AssertionError("unreachable")


def short_id(user_id: str) -> str:
    """An openid/userid shortened for logs."""
    return user_id[:6] + "…" if len(user_id) > 8 else user_id


# -- the reply deadline -------------------------------------------------------------------------


class Outcome(StrEnum):
    ANSWERED = "answered"  # the turn finished in time: `replies` are ready for a passive reply
    DUPLICATE = "duplicate"  # a retry of a message already taken: acknowledge only
    LATE = "late"  # acknowledged now; replies are delivered in the background when ready


@dataclass(slots=True)
class TurnOutcome:
    kind: Outcome
    replies: list[Reply] = field(default_factory=list)


Deliver = Callable[[Message, list[Reply]], Awaitable[None]]


class _Sink:
    """The engine's `send`: collects replies for a passive answer until the turn goes late, then hands
    them, in order, to a delivery queue (one by one, or all at once when `batch`)."""

    def __init__(self, batch: bool) -> None:
        self.batch = batch
        self.collected: list[Reply] = []
        self.queue: asyncio.Queue[Reply | None] | None = None
        self.called = False

    async def __call__(self, reply: Reply) -> None:
        self.called = True
        if reply.stream is not None:
            await reply.stream.collect()
        if self.queue is not None:
            self.queue.put_nowait(reply)
        else:
            self.collected.append(reply)

    def go_late(self) -> None:
        if self.batch or self.queue is not None:
            return
        self.queue = asyncio.Queue()
        for reply in self.collected:
            self.queue.put_nowait(reply)
        self.collected = []

    @property
    def late(self) -> bool:
        return self.queue is not None


class TurnRunner:
    """One engine turn against a deadline.

    passive=True: if the turn ends within the deadline its replies come back for a passive reply;
    otherwise the callback is acknowledged and the replies go to `deliver` when they are ready.
    passive=False: every reply goes to `deliver` as soon as the engine sends it; the deadline only says
    how long the callback waits to learn whether the turn ran (so that a turn that could not run is
    answered with a 5xx and the platform retries it)."""

    def __init__(self, engine: TurnHandler, channel: str) -> None:
        self.engine = engine
        self.channel = channel
        self.background: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def run(self, message: Message, caps: Any, deadline_s: float, deliver: Deliver, *,
                  passive: bool = True, batch: bool = False) -> TurnOutcome:
        sink = _Sink(batch=batch)
        if not passive:
            sink.go_late()
        turn = asyncio.ensure_future(self.engine.handle(message, sink, caps))
        pump = self._pump(message, sink, deliver) if sink.late else None
        done, _ = await asyncio.wait({turn}, timeout=deadline_s)
        if turn in done:
            error = turn.exception()
            if error is not None:
                if isinstance(error, TurnUnavailable) and sink.late and sink.called:
                    # Replies already went out: a platform retry would repeat them. Acknowledge.
                    self.spawn(self._finish(turn, message, sink, deliver, pump))
                    return TurnOutcome(Outcome.LATE)
                if sink.queue is not None:
                    sink.queue.put_nowait(None)  # nothing was sent: stop the pump
                raise error  # TurnUnavailable: a 5xx makes WeChat retry; BadMessage: a 4xx
            result = turn.result()
            if sink.queue is not None:
                self.spawn(self._finish(turn, message, sink, deliver, pump))
            if result.route == "duplicate":
                return TurnOutcome(Outcome.DUPLICATE)
            return TurnOutcome(Outcome.ANSWERED if passive else Outcome.LATE, sink.collected)
        sink.go_late()
        if pump is None and sink.late:
            pump = self._pump(message, sink, deliver)
        self.spawn(self._finish(turn, message, sink, deliver, pump))
        return TurnOutcome(Outcome.LATE)

    def _pump(self, message: Message, sink: _Sink, deliver: Deliver) -> asyncio.Task[None]:
        queue = sink.queue
        assert queue is not None

        async def pump() -> None:
            while (reply := await queue.get()) is not None:
                await self._deliver(deliver, message, [reply])

        task = asyncio.ensure_future(pump())
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    async def _finish(self, turn: asyncio.Future[Any], message: Message, sink: _Sink, deliver: Deliver,
                      pump: asyncio.Task[None] | None) -> None:
        """After the callback was answered: wait for the turn, then deliver what it produced."""
        extra: list[Reply] = []
        try:
            result = await turn
            if result.route == "duplicate":
                log.debug("%s: late turn was a duplicate", self.channel)
        except TurnUnavailable as exc:
            log.warning("%s: turn not run after the callback was acknowledged (%s); asking the shopper to resend",
                        self.channel, exc)
            if not sink.called:
                extra.append(Reply(text=exc.polite_text))
        except BadMessage as exc:
            log.info("%s: message refused by the engine: %s", self.channel, exc)
        except Exception:
            log.exception("%s: turn failed after the callback was acknowledged", self.channel)
        if sink.queue is not None:
            for reply in extra:
                sink.queue.put_nowait(reply)
            sink.queue.put_nowait(None)
            if pump is not None:
                await pump
            return
        replies = sink.collected + extra
        if replies:
            await self._deliver(deliver, message, replies)

    async def _deliver(self, deliver: Deliver, message: Message, replies: list[Reply]) -> None:
        try:
            await deliver(message, replies)
        except Exception:
            log.exception("%s: delivering a reply failed", self.channel)

    async def close(self, grace_s: float = 5.0) -> None:
        """Let late replies go out (up to `grace_s`), then cancel what is left."""
        if self.background:
            _, pending = await asyncio.wait(set(self.background), timeout=grace_s)
            for task in pending:
                task.cancel()
