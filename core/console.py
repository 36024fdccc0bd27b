"""The agent console: a page, a JSON API and a WebSocket of live events, under /console/, for agents only.

Every route (the page, its scripts, the API, the socket) needs a valid agent token (`agents.tokens`):
`Authorization: Bearer <token>`, or the HttpOnly cookie that signing in at /console/ sets. Without one
the answer is 401 (the page's 401 is the sign-in form), with a wrong one 403; each refusal is logged.
Requests that change something, and the socket, must also come from the console's own origin.

    GET  /console/                         the console page
    POST /console/login   token=...        sign in: sets the cookie, 303 to /console/
    POST /console/logout
    GET  /console/api/me                   {"agent", "intents", "idle_release_s"}
    GET  /console/api/queue                waiting tickets (highest priority first) and held ones
    GET  /console/api/tickets/{id}         ticket, profile, transcript across channels, events, history,
                                           suggested replies
    POST /console/api/tickets/{id}/claim | /release
    POST /console/api/tickets/{id}/reply    {"text"}             -> {"delivered": bool}
    POST /console/api/tickets/{id}/resolve  {"reason", "label"?} (label: the intent of the shopper's question)
    GET  /console/ws                       live events: {"type": "queue" | "ticket" | "message" | "resync", ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from core.config import AgentsConfig
from core.desk import Desk, TicketNotFound
from core.handoff import HandoffConflict
from core.http_errors import json_error
from core.nlu import INTENTS
from core.sessions import LockLost, LockTimeout, StoreUnavailable

log = logging.getLogger("kefu.console")

STATIC_DIR = Path(__file__).parent / "console_static"
PREFIX = "/console"
COOKIE = "kefu_agent"
PUBLIC = (f"{PREFIX}/login",)
COOKIE_MAX_AGE_S = 12 * 3600


class AgentTokens:
    def __init__(self, tokens: dict[str, str]) -> None:
        self._tokens = [(agent, token.encode()) for agent, token in tokens.items() if token]

    def agent_for(self, token: str) -> str | None:
        """The agent whose token this is; every token is compared (in constant time), so timing tells nothing."""
        sent = token.encode()
        found = None
        for agent, known in self._tokens:
            if hmac.compare_digest(sent, known):
                found = agent
        return found


def _sent_token(request: web.Request) -> str:
    bearer = request.headers.get("Authorization", "")
    if bearer.startswith("Bearer "):
        return bearer.removeprefix("Bearer ").strip()
    return request.cookies.get(COOKIE, "")


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser's cross-site request (curl, scripts); those hold the token themselves
        return True
    return urlsplit(origin).netloc == request.host


def _wants_page(request: web.Request) -> bool:
    return request.path in (f"{PREFIX}/", PREFIX)


class Console:
    def __init__(self, desk: Desk, config: AgentsConfig) -> None:
        self.desk = desk
        self.config = config
        self.tokens = AgentTokens(config.tokens)
        self._login_page = (STATIC_DIR / "login.html").read_text(encoding="utf-8")

    def mount(self, app: web.Application) -> None:
        console = web.Application(middlewares=[self.guard])
        console.router.add_get("/", self.page)
        console.router.add_post("/login", self.login)
        console.router.add_post("/logout", self.logout)
        console.router.add_static("/static", STATIC_DIR)
        console.router.add_get("/api/me", self.me)
        console.router.add_get("/api/queue", self.queue)
        console.router.add_get("/api/tickets/{ticket}", self.ticket)
        console.router.add_post("/api/tickets/{ticket}/claim", self.claim)
        console.router.add_post("/api/tickets/{ticket}/reply", self.reply)
        console.router.add_post("/api/tickets/{ticket}/release", self.release)
        console.router.add_post("/api/tickets/{ticket}/resolve", self.resolve)
        console.router.add_get("/ws", self.events)
        app.add_subapp(f"{PREFIX}/", console)
        app.router.add_get(PREFIX, self.to_page)

    # -- access ---------------------------------------------------------------------------------

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC:
            return await handler(request)
        token = _sent_token(request)
        if not token:
            log.warning("console: 401 %s %s from %s: no agent token", request.method, request.path, request.remote)
            return self._refuse(request, 401, "unauthorized", "sign in with your agent token")
        agent = self.tokens.agent_for(token)
        if agent is None:
            log.warning("console: 403 %s %s from %s: unknown agent token", request.method, request.path,
                        request.remote)
            return self._refuse(request, 403, "forbidden", "this agent token is not valid")
        changes = request.method != "GET" or request.headers.get("Upgrade", "").lower() == "websocket"
        if changes and not _same_origin(request):
            log.warning("console: 403 %s %s by %s: cross-origin request from %s", request.method, request.path,
                        agent, request.headers.get("Origin"))
            return self._refuse(request, 403, "forbidden", "cross-origin requests are refused")
        return await handler(request)

    def agent(self, request: web.Request) -> str:
        """The signed-in agent (the guard let the request in, so there is one)."""
        return self.tokens.agent_for(_sent_token(request)) or ""

    def _refuse(self, request: web.Request, status: int, code: str, message: str) -> web.Response:
        if _wants_page(request):
            body = self._login_page.replace("{{error}}", "" if status == 401 else "This token is not valid.")
            return web.Response(status=status, text=body, content_type="text/html",
                                headers={"Cache-Control": "no-store"})
        return json_error(status, code, message)

    async def to_page(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{PREFIX}/")

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token", "")).strip()
        agent = self.tokens.agent_for(token) if token else None
        if agent is None or not _same_origin(request):
            log.warning("console: 403 sign-in refused from %s", request.remote)
            return web.Response(status=403, text=self._login_page.replace("{{error}}", "This token is not valid."),
                                content_type="text/html", headers={"Cache-Control": "no-store"})
        log.info("console: %s signed in from %s", agent, request.remote)
        response = web.Response(status=303, headers={"Location": f"{PREFIX}/"})
        response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, path=PREFIX, httponly=True, samesite="Strict",
                            secure=self.config.cookie_secure)
        return response

    async def logout(self, request: web.Request) -> web.Response:
        log.info("console: %s signed out", self.agent(request))
        response = web.Response(status=303, headers={"Location": f"{PREFIX}/"})
        response.del_cookie(COOKIE, path=PREFIX)
        return response

    async def page(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    # -- API ------------------------------------------------------------------------------------

    async def me(self, request: web.Request) -> web.Response:
        return _json({"agent": self.agent(request), "intents": list(INTENTS),
                      "idle_release_s": self.config.idle_release_s})

    async def queue(self, _request: web.Request) -> web.Response:
        return await _answer(self.desk.queue())

    async def ticket(self, request: web.Request) -> web.Response:
        return await _answer(self.desk.conversation(request.match_info["ticket"], self.agent(request)))

    async def claim(self, request: web.Request) -> web.Response:
        async def act() -> dict[str, Any]:
            ticket = await self.desk.claim(request.match_info["ticket"], self.agent(request))
            return {"ticket": ticket.id, "state": ticket.state}

        return await _answer(act())

    async def reply(self, request: web.Request) -> web.Response:
        body = await _body(request)
        text = body.get("text") if body is not None else None
        if not isinstance(text, str):
            return json_error(400, "invalid_request", "'text' must be a string")

        async def act() -> dict[str, Any]:
            return {"delivered": await self.desk.reply(request.match_info["ticket"], self.agent(request), text)}

        return await _answer(act())

    async def release(self, request: web.Request) -> web.Response:
        async def act() -> dict[str, Any]:
            ticket = await self.desk.release(request.match_info["ticket"], self.agent(request))
            return {"ticket": ticket.id, "state": ticket.state}

        return await _answer(act())

    async def resolve(self, request: web.Request) -> web.Response:
        body = await _body(request)
        reason = body.get("reason") if body is not None else None
        label = body.get("label") if body is not None else None
        if not isinstance(reason, str) or not (label is None or label in INTENTS):
            return json_error(400, "invalid_request", "'reason' must be a string and 'label' one of the intents")

        async def act() -> dict[str, Any]:
            ticket = await self.desk.resolve(request.match_info["ticket"], self.agent(request), reason, label)
            return {"ticket": ticket.id, "state": ticket.state}

        return await _answer(act())

    # -- live events ----------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
        await ws.prepare(request)
        agent = self.agent(request)
        log.info("console: %s connected", agent)
        with self.desk.listen() as queue:

            async def forward() -> None:
                while True:
                    await ws.send_str(orjson.dumps(await queue.get()).decode())

            sender = asyncio.create_task(forward())
            try:
                await ws.send_str(orjson.dumps({"type": "hello", "agent": agent}).decode())
                async for frame in ws:  # the console only listens; this ends when it goes away
                    if frame.type == WSMsgType.ERROR:
                        break
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await sender
        return ws


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


async def _answer(action: Awaitable[Any]) -> web.Response:
    """The action's result as JSON, or the error an agent can act on."""
    try:
        return _json(await action)
    except TicketNotFound:
        return json_error(404, "not_found", "no such ticket")
    except HandoffConflict as exc:
        return json_error(409, "conflict", str(exc))
    except ValueError as exc:
        return json_error(400, "invalid_request", str(exc))
    except (StoreUnavailable, LockTimeout, LockLost) as exc:
        log.warning("console action not completed: %s", type(exc).__name__)
        return json_error(503, "temporarily_unavailable", "the conversation is busy or the store is down; "
                                                          "try again", headers={"Retry-After": "2"})

