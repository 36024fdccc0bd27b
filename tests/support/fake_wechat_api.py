"""WeChat's side, for tests: a local server speaking the WeChat HTTP API methods the hub calls, and a
`Platform` that signs and encrypts callbacks the way WeChat's servers do.

    async with FakeWeChatApi(apps={"wx-app": "app-secret"}) as api:
        config: api_base_url = api.base_url
        api.fail("/cgi-bin/message/custom/send", 45015)   # the next send answers errcode 45015
        api.expire_tokens()                                # tokens in use now answer 42001
        api.sent                                           # accepted messages: SentMessage(api, touser, msgtype, body)
        api.login_codes["js-code"] = ("openid", "session-key"); api.phone_codes["p-code"] = ("86", "13800138000")

Methods: POST /cgi-bin/stable_token (same token while valid, as WeChat does), GET /cgi-bin/token,
GET /cgi-bin/gettoken (WeCom), POST /cgi-bin/message/custom/send (OA and mini-program customer-service
messages: text, image, link, miniprogrampage), POST /cgi-bin/message/send (WeCom app, agentid),
POST /cgi-bin/message/template/send (OA template) and /cgi-bin/message/subscribe/send (mini-program),
GET /sns/jscode2session, POST /wxa/business/getuserphonenumber, POST /cgi-bin/webhook/send?key=... (group
robot: text, markdown) and POST /cgi-bin/aibot/response?response_code=... (an intelligent robot's
response_url: markdown, usable once). Bodies are validated like the real API (errcode 44002 empty body,
47001 malformed JSON, 45002 text over 2,048 bytes, 40001/42001 bad or expired token, 40008 unknown
msgtype), and every request is recorded.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlencode

from aiohttp import web
from wechatpy.crypto import PrpCrypto

from adapters.wechat_common import parse_xml, signature_of

TEXT_LIMIT = 2048
MARKDOWN_LIMIT = 4096


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    at: float


@dataclass(frozen=True)
class SentMessage:
    api: str  # "custom" (OA / mini-program), "wecom", "robot", "aibot", "template", "subscribe"
    touser: str  # openid / userid; the webhook key for "robot"; the response_code for "aibot"
    msgtype: str
    body: dict[str, Any]
    at: float

    @property
    def text(self) -> str:
        part = self.body.get(self.msgtype) or {}
        return str(part.get("content", "")) if isinstance(part, dict) else ""


@dataclass
class FakeWeChatApi:
    apps: dict[str, str] = field(default_factory=lambda: {"wx-app": "app-secret"})  # appid/corpid -> secret
    robot_keys: set[str] = field(default_factory=lambda: {"robot-key"})
    clock: Callable[[], float] = time.monotonic  # timestamps of recorded requests (tests may share a fake clock)
    requests: list[ApiRequest] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)
    login_codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # js_code -> (openid, session_key)
    phone_codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (country code, number)
    response_codes: set[str] = field(default_factory=set)  # valid intelligent-robot response codes

    def __post_init__(self) -> None:
        self._tokens: dict[str, str] = {}  # app id -> its current token
        self._valid: set[str] = set()
        self._expired: set[str] = set()
        self._failures: dict[str, deque[tuple[int, str]]] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._ids = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/cgi-bin/stable_token", self._stable_token)
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        app.router.add_post("/cgi-bin/message/send", self._wecom_send)
        app.router.add_post("/cgi-bin/message/template/send", self._template_send)
        app.router.add_post("/cgi-bin/message/subscribe/send", self._template_send)
        app.router.add_get("/sns/jscode2session", self._jscode2session)
        app.router.add_post("/wxa/business/getuserphonenumber", self._phone_number)
        app.router.add_post("/cgi-bin/webhook/send", self._robot_send)
        app.router.add_post("/cgi-bin/aibot/response", self._aibot_response)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
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
        return f"http://127.0.0.1:{self._port}"

    def robot_url(self, key: str = "robot-key") -> str:
        return f"{self.base_url}/cgi-bin/webhook/send?key={key}"

    def response_url(self) -> str:
        code = secrets.token_hex(8)
        self.response_codes.add(code)
        return f"{self.base_url}/cgi-bin/aibot/response?response_code={code}"

    # -- scripting ---------------------------------------------------------------------------

    def fail(self, path: str, errcode: int, errmsg: str = "scripted failure", times: int = 1) -> None:
        """The next `times` calls of `path` answer this errcode (after the token check)."""
        queue = self._failures.setdefault(path, deque())
        for _ in range(times):
            queue.append((errcode, errmsg))

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 42001 (expired); the next token request issues a new one."""
        self._expired |= self._valid
        self._valid.clear()
        self._tokens.clear()

    def calls(self, path: str) -> list[ApiRequest]:
        return [r for r in self.requests if r.path == path]

    def sent_to(self, touser: str) -> list[SentMessage]:
        return [s for s in self.sent if s.touser == touser]

    # -- handlers ----------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(ApiRequest(request.method, request.path, dict(request.query), body, self.clock()))
        return body

    def _issue(self, app_id: str) -> web.Response:
        token = self._tokens.get(app_id)
        if token is None:
            token = f"token-{next(self._ids)}-{secrets.token_hex(4)}"
            self._tokens[app_id] = token
            self._valid.add(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    def _check_app(self, app_id: Any, secret: Any) -> web.Response | None:
        if app_id not in self.apps:
            return _error(40013, "invalid appid")
        if self.apps[app_id] != secret:
            return _error(40125, "invalid appsecret")
        return None

    async def _stable_token(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        if not isinstance(body, dict) or body.get("grant_type") != "client_credential":
            return _error(40002, "invalid grant_type")
        return self._check_app(body.get("appid"), body.get("secret")) or self._issue(str(body["appid"]))

    async def _token(self, request: web.Request) -> web.Response:
        await self._record(request)
        q = request.query
        return self._check_app(q.get("appid"), q.get("secret")) or self._issue(q["appid"])

    async def _gettoken(self, request: web.Request) -> web.Response:
        await self._record(request)
        q = request.query
        return self._check_app(q.get("corpid"), q.get("corpsecret")) or self._issue(q["corpid"])

    def _check_token(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token in self._expired:
            return _error(42001, "access_token expired")
        if token not in self._valid:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        return None

    def _scripted(self, path: str) -> web.Response | None:
        queue = self._failures.get(path)
        if queue:
            errcode, errmsg = queue.popleft()
            return _error(errcode, errmsg)
        return None

    async def _custom_send(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        refused = self._check_token(request) or self._scripted(request.path) or _check_message(
            body, ("text", "image", "link", "miniprogrampage", "news", "voice", "video", "music"))
        if refused:
            return refused
        self.sent.append(SentMessage("custom", body["touser"], body["msgtype"], body, self.clock()))
        return _ok()

    async def _wecom_send(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        refused = self._check_token(request) or self._scripted(request.path) or _check_message(
            body, ("text", "image", "markdown", "news", "textcard"))
        if refused:
            return refused
        if not isinstance(body.get("agentid"), int):
            return _error(40056, "invalid agentid")
        self.sent.append(SentMessage("wecom", body["touser"], body["msgtype"], body, self.clock()))
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": str(next(self._ids))})

    async def _template_send(self, request: web.Request) -> web.Response:
        """Official Account template messages and mini-program subscribe messages: {touser, template_id,
        data: {field: {value}}, url | page}."""
        body = await self._record(request)
        refused = self._check_token(request) or self._scripted(request.path)
        if refused:
            return refused
        data = body.get("data") if isinstance(body, dict) else None
        if not (isinstance(data, dict) and body.get("touser") and body.get("template_id")
                and all(isinstance(v, dict) and isinstance(v.get("value"), str) for v in data.values())):
            return _error(47001, "data format error")
        kind = "subscribe" if request.path.endswith("/subscribe/send") else "template"
        self.sent.append(SentMessage(kind, body["touser"], kind, body, self.clock()))
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})

    async def _jscode2session(self, request: web.Request) -> web.Response:
        await self._record(request)
        q = request.query
        refused = self._check_app(q.get("appid"), q.get("secret"))
        if refused:
            return refused
        if q.get("grant_type") != "authorization_code":
            return _error(40002, "invalid grant_type")
        found = self.login_codes.pop(q.get("js_code", ""), None)  # a login code works once
        if found is None:
            return _error(40029, "invalid code")
        openid, session_key = found
        return web.json_response({"openid": openid, "session_key": session_key})

    async def _phone_number(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        refused = self._check_token(request)
        if refused:
            return refused
        found = self.phone_codes.pop(body.get("code", "") if isinstance(body, dict) else "", None)
        if found is None:
            return _error(40029, "invalid code")
        country, number = found
        app_id = next(iter(self.apps))
        return web.json_response({"errcode": 0, "errmsg": "ok", "phone_info": {
            "phoneNumber": f"+{country}{number}" if country != "86" else number, "purePhoneNumber": number,
            "countryCode": country, "watermark": {"timestamp": int(time.time()), "appid": app_id}}})

    async def _robot_send(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        key = request.query.get("key", "")
        if key not in self.robot_keys:
            return _error(93000, "invalid webhook url")
        refused = self._scripted(request.path) or _check_message(body, ("text", "markdown"), touser=False)
        if refused:
            return refused
        self.sent.append(SentMessage("robot", key, body["msgtype"], body, self.clock()))
        return _ok()

    async def _aibot_response(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        code = request.query.get("response_code", "")
        if code not in self.response_codes:
            return _error(40001, "invalid or used response_code")
        refused = _check_message(body, ("markdown", "template_card"), touser=False)
        if refused:
            return refused
        self.response_codes.discard(code)  # usable once
        self.sent.append(SentMessage("aibot", code, body["msgtype"], body, self.clock()))
        return _ok()


def _ok() -> web.Response:
    return web.json_response({"errcode": 0, "errmsg": "ok"})


def _error(errcode: int, errmsg: str) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": errmsg})


def _check_message(body: Any, msgtypes: tuple[str, ...], touser: bool = True) -> web.Response | None:
    if body is None:
        return _error(44002, "empty post data")
    if not isinstance(body, dict):
        return _error(47001, "data format error")
    if touser and not body.get("touser"):
        return _error(40003, "invalid openid")
    msgtype = body.get("msgtype")
    if msgtype not in msgtypes:
        return _error(40008, "invalid message type")
    content = body.get(msgtype)
    if not isinstance(content, dict):
        return _error(47001, "data format error")
    if msgtype in ("text", "markdown"):
        text = content.get("content")
        if not isinstance(text, str) or not text:
            return _error(44004, "empty content")
        limit = TEXT_LIMIT if msgtype == "text" else MARKDOWN_LIMIT
        if len(text.encode()) > limit:
            return _error(45002, "content size out of limit")
    if msgtype == "image" and not content.get("media_id"):
        return _error(40007, "invalid media_id")
    if msgtype == "miniprogrampage" and not (content.get("pagepath") and content.get("thumb_media_id")):
        return _error(47001, "data format error")
    return None


class Platform:
    """Signs (and, with an EncodingAESKey, encrypts) callbacks the way WeChat's servers do."""

    def __init__(self, token: str, encoding_aes_key: str = "", receive_id: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self.receive_id = receive_id
        self.clock = clock
        self._crypto = PrpCrypto(base64.b64decode(encoding_aes_key + "=")) if encoding_aes_key else None

    @property
    def encrypting(self) -> bool:
        return self._crypto is not None

    def _stamp(self, timestamp: int | None, nonce: str | None) -> tuple[str, str]:
        return str(int(self.clock()) if timestamp is None else timestamp), nonce or secrets.token_hex(5)

    def plain_query(self, timestamp: int | None = None, nonce: str | None = None, **extra: str) -> dict[str, str]:
        ts, nonce = self._stamp(timestamp, nonce)
        return {"signature": signature_of(self.token, ts, nonce), "timestamp": ts, "nonce": nonce, **extra}

    def encrypt(self, plaintext: str) -> str:
        assert self._crypto is not None, "no EncodingAESKey"
        return str(self._crypto.encrypt(plaintext, self.receive_id).decode())

    def encrypted_query(self, encrypt: str, timestamp: int | None = None, nonce: str | None = None,
                        **extra: str) -> dict[str, str]:
        ts, nonce = self._stamp(timestamp, nonce)
        return {"msg_signature": signature_of(self.token, ts, nonce, encrypt), "timestamp": ts, "nonce": nonce,
                **extra}

    def xml_envelope(self, plaintext: str, to_user: str = "gh_account", **stamp: Any) -> tuple[str, bytes]:
        """(query string, body) of an encrypted XML callback (OA safe mode: also the plain signature)."""
        encrypt = self.encrypt(plaintext)
        query = self.encrypted_query(encrypt, **stamp)
        query.update(signature=signature_of(self.token, query["timestamp"], query["nonce"]), encrypt_type="aes")
        body = f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return urlencode(query), body.encode()

    def json_envelope(self, plaintext: str, key: str = "encrypt", **stamp: Any) -> tuple[str, bytes]:
        encrypt = self.encrypt(plaintext)
        return urlencode(self.encrypted_query(encrypt, **stamp)), json.dumps({key: encrypt}).encode()

    def decrypt(self, encrypt: str) -> str:
        assert self._crypto is not None
        return str(self._crypto.decrypt(encrypt, self.receive_id))

    def open_xml_reply(self, body: str) -> str:
        """The plaintext of an encrypted passive reply, after checking its signature."""
        outer = parse_xml(body)
        encrypt = str(outer["Encrypt"])
        expected = signature_of(self.token, str(outer["TimeStamp"]), str(outer["Nonce"]), encrypt)
        assert outer["MsgSignature"] == expected, "reply signature mismatch"
        return self.decrypt(encrypt)

    def open_json_reply(self, body: str) -> dict[str, Any]:
        outer = json.loads(body)
        expected = signature_of(self.token, str(outer["timestamp"]), str(outer["nonce"]), outer["encrypt"])
        assert outer["msgsignature"] == expected, "reply signature mismatch"
        return dict(json.loads(self.decrypt(outer["encrypt"])))
