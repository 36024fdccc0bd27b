"""Operator endpoints under /api/: the router's decision for a text, the unknown-question queue, and the
questions agents resolved with a label (together: the learning loop, scripts/export_learning.py).

Protected by `admin.token` when one is configured (Authorization: Bearer <token>).
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from core.engine import Engine
from core.http_errors import json_error
from core.locale import normalize_locale
from core.sessions import SessionStore

MAX_TEXT_CHARS = 4096


def require_token(token: str) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token and request.path.startswith("/api/"):
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(sent.encode(), token.encode()):
                return json_error(401, "unauthorized", "a valid admin token is required (Authorization: Bearer ...)")
        return await handler(request)

    return check


class OperatorApi:
    def __init__(self, engine: Engine, store: SessionStore) -> None:
        self.engine = engine
        self.store = store

    def mount(self, app: web.Application) -> None:
        app.router.add_post("/api/nlu/parse", self.parse)
        app.router.add_get("/api/unknown", self.unknown)
        app.router.add_get("/api/resolutions", self.resolutions)

    async def parse(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return json_error(400, "invalid_request", "the body is not valid JSON")
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_CHARS:
            return json_error(400, "invalid_request", f"'text' must be a non-empty string of at most {MAX_TEXT_CHARS}")
        shop = self.engine.config.shop
        locale = normalize_locale(body.get("locale"), shop.locales) or shop.default_locale
        result = await self.engine.understand(text, locale)
        return web.json_response({
            "intent": result.intent,
            "confidence": result.confidence,
            "entities": [{"entity": e.name, "value": e.value} for e in result.entities],
            "top": [{"intent": s.intent, "confidence": s.confidence} for s in result.ranking[:3]],
            "route": self.engine.preview_route(result),
            "source": result.source,
            "locale": locale,
        })

    async def unknown(self, request: web.Request) -> web.Response:
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "100"))))
        except ValueError:
            return json_error(400, "invalid_request", "'limit' must be a number")
        return web.json_response({"items": await self.store.list_unknown(limit)})

    async def resolutions(self, request: web.Request) -> web.Response:
        try:
            limit = max(1, min(10_000, int(request.query.get("limit", "100"))))
        except ValueError:
            return json_error(400, "invalid_request", "'limit' must be a number")
        return web.json_response({"items": await self.engine.desk.store.list_resolutions(limit)})
