"""Composition root: builds every piece from the config and serves the aiohttp app."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from adapters.base import Adapter
from adapters.miniprogram import MiniProgramAdapter
from adapters.telegram import TelegramAdapter
from adapters.web import WebChatAdapter
from adapters.wechat import WeChatAdapter
from adapters.wechat_group import WeChatGroupAdapter
from core.agent_queue import DeskStore, MemoryDesk, RedisDesk
from core.commerce.base import CommerceBackend
from core.commerce.demo_store import DemoStore
from core.config import PROJECT_ROOT, Config
from core.console import Console
from core.desk import Desk
from core.engine import Engine
from core.http_errors import json_errors
from core.keyword_router import KeywordRouter
from core.llm import LlmClient
from core.locale import Catalogs
from core.logs import mask
from core.metrics import Metrics
from core.nlu import IntentRouter
from core.operator_api import OperatorApi, require_token
from core.profiles import Profiles
from core.push.api import PushApi
from core.push.service import PushService, build_push_service
from core.push.stores import configured_catalog
from core.rasa_router import RasaRouter
from core.redis_store import RedisStore
from core.sessions import MemoryStore, SessionStore, StoreSettings

log = logging.getLogger("kefu.app")

LOCALES_DIR = PROJECT_ROOT / "locales"


# Each `channels.<section>` of bot_config.yaml and how its adapter is built.
ADAPTERS: dict[str, Callable[[Engine, Config], Adapter]] = {
    "web": lambda engine, c: WebChatAdapter(engine, c.channels.web, c.messages.max_text_chars,
                                            c.server.max_body_bytes, persona=engine.catalogs.widget_persona),
    "telegram": lambda engine, c: TelegramAdapter(engine, c.channels.telegram, c.server.max_body_bytes),
    "wechat": lambda engine, c: WeChatAdapter(engine, c.channels.wechat, c.server.max_body_bytes),
    "wechat_group": lambda engine, c: WeChatGroupAdapter(engine, c.channels.wechat_group, c.server.max_body_bytes),
    "miniprogram": lambda engine, c: MiniProgramAdapter(engine, c.channels.miniprogram, c.server.max_body_bytes),
}


GC_YOUNG_THRESHOLD = 20_000


class StartupError(Exception):
    """The hub cannot start; the message says what to fix."""


@dataclass
class Hub:
    config: Config
    store: SessionStore
    router: IntentRouter
    engine: Engine
    metrics: Metrics
    llm: LlmClient | None
    adapters: list[Adapter] = field(default_factory=list)
    pushes: PushService | None = None


def store_settings(config: Config) -> StoreSettings:
    s = config.sessions
    return StoreSettings(
        session_ttl_s=s.ttl_s, lock_ttl_s=s.lock_ttl_s, lock_wait_s=s.lock_wait_s, dedup_ttl_s=s.dedup_ttl_s,
        pending_claim_ttl_s=s.pending_claim_ttl_s, unknown_queue_max=s.unknown_queue_max,
        history_turns=s.history_turns,
    )


async def build_store(config: Config, prefix: str = "kefu:") -> SessionStore:
    if not config.redis.url:
        return MemoryStore(store_settings(config))
    store = RedisStore.from_url(config.redis.url, store_settings(config), prefix=prefix,
                                timeout_s=config.redis.timeout_s, max_connections=config.redis.max_connections)
    if not await store.ping():
        await store.close()
        raise StartupError(
            f"Redis at {mask(config.redis.url)} is not answering. Start it (redis-server --daemonize yes) "
            "or remove redis.url / REDIS_URL to use the embedded in-memory store."
        )
    return store


async def build_router(config: Config, store: SessionStore, metrics: Metrics, prefix: str) -> IntentRouter:
    nlu = config.nlu
    if not nlu.rasa_urls:
        return KeywordRouter()
    router = RasaRouter(
        list(nlu.rasa_urls), nlu.token, metrics, timeout_s=nlu.timeout_s, cache_entries=nlu.cache_entries,
        redis=store.client if isinstance(store, RedisStore) else None, cache_ttl_s=nlu.cache_ttl_s,
        redis_prefix=prefix,
    )
    if not await router.wait_ready(nlu.ready_timeout_s):
        log.warning("no Rasa server answered within %.0f s at %s: starting with the keyword router (degraded)",
                    nlu.ready_timeout_s, ", ".join(nlu.rasa_urls))
    return router


async def build_hub(config: Config, store_prefix: str = "kefu:", clock: Callable[[], float] = time.time) -> Hub:
    store = await build_store(config, store_prefix)
    metrics = Metrics()
    router = await build_router(config, store, metrics, store_prefix)
    commerce = DemoStore.open(config.resolve_path(config.demo_store.source),
                              config.resolve_path(config.demo_store.data_dir))
    catalogs = Catalogs.load(LOCALES_DIR, config.shop.locales, config.shop.default_locale)
    llm = LlmClient(config.llm) if config.llm.enabled else None
    stores = configured_catalog(config)  # pushes and the store_nearby skill share one catalog
    pushes = (build_push_service(config, store, commerce, catalogs, metrics, store_prefix, clock, stores)
              if config.pushes.enabled else None)
    desk = build_desk(config, store, commerce, catalogs, clock)
    engine = Engine(config, store, router, commerce, catalogs, metrics, llm=llm, clock=clock,
                    pushes=pushes.inbox if pushes else None, desk=desk,
                    logistics=pushes.logistics if pushes else None, stores=stores)
    hub = Hub(config, store, router, engine, metrics, llm, pushes=pushes)
    for section, build in ADAPTERS.items():
        if getattr(config.channels, section).enabled:
            hub.adapters.append(build(engine, config))
    connect_desk(desk, hub.adapters)
    if pushes is not None:
        pushes.connect(hub.adapters)  # adapters with a push path (core.push.delivery)
    return hub


def build_desk(config: Config, store: SessionStore, commerce: CommerceBackend, catalogs: Catalogs,
               clock: Callable[[], float]) -> Desk:
    """The agent desk keeps its queue and tickets where the sessions are (Redis, or this process)."""
    desk_store: DeskStore = (RedisDesk(store.client, store.prefix, config.redis.timeout_s)
                             if isinstance(store, RedisStore) else MemoryDesk())
    return Desk(config, store, desk_store, Profiles(commerce, config.escalation), catalogs, clock)


def connect_desk(desk: Desk, adapters: list[Adapter]) -> None:
    """Agents' replies and hand-over notices reach shoppers through each adapter's push path."""
    for adapter in adapters:
        if isinstance(adapter, WebChatAdapter):
            # Its sockets live in one process: the desk relays the message to every process. A page that
            # was closed meanwhile asks for what it missed (from the transcript) when it reconnects.
            desk.outbound.register(adapter.name, adapter.push, per_process=True)
            adapter.missed = partial(missed_web_messages, desk)
            continue
        push = getattr(adapter, "push", None)
        if push is not None:
            desk.outbound.register(adapter.name, lambda user, chat, reply, _author, push=push: push(user, chat, reply))


async def missed_web_messages(desk: Desk, user_id: str, since: float) -> list[dict[str, Any]]:
    entries = await desk.agent_messages_since("web", user_id, since)
    return [{"from": "agent", "text": e.text, "at": e.at} for e in entries]


async def health(hub: Hub) -> dict[str, Any]:
    store_up, nlu_up = await asyncio.gather(hub.store.ping(), hub.router.ping())
    hub.metrics.backend_up.labels("sessions").set(int(store_up))
    hub.metrics.backend_up.labels("nlu").set(int(nlu_up))
    llm_mode = "online" if hub.llm is not None else "offline"
    nlu: dict[str, Any] = {"kind": hub.router.name, "up": nlu_up, "degraded": hub.router.degraded}
    if isinstance(hub.router, RasaRouter):
        nlu["servers"] = {"up": hub.router.servers_up(), "of": len(hub.router.endpoints)}
    return {
        # down: turns cannot run (503); degraded: turns run, with a fallback answering for a backend.
        "status": "down" if not store_up else ("ok" if nlu_up and not hub.router.degraded else "degraded"),
        "backends": {
            "sessions": {"kind": hub.store.name, "up": store_up},
            "nlu": nlu,
            "llm": {"mode": llm_mode, "model": hub.config.llm.model if hub.llm else None},
        },
    }


def create_app(hub: Hub) -> web.Application:
    app = web.Application(client_max_size=hub.config.server.max_body_bytes,
                          middlewares=[json_errors, require_token(hub.config.admin.token)])

    async def healthz(_request: web.Request) -> web.Response:
        report = await health(hub)
        return web.json_response(report, status=503 if report["status"] == "down" else 200)

    async def metrics(_request: web.Request) -> web.Response:
        await health(hub)
        return web.Response(body=hub.metrics.render(), headers={"Content-Type": hub.metrics.content_type})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    OperatorApi(hub.engine, hub.store).mount(app)
    desk = hub.engine.desk
    Console(desk, hub.config.agents).mount(app)
    for adapter in hub.adapters:
        adapter.mount(app)

    async def start_desk(_app: web.Application) -> None:
        await desk.start()

    app.on_startup.append(start_desk)
    pushes = hub.pushes
    if pushes is not None:
        PushApi(pushes).mount(app)

        async def start_pushes(_app: web.Application) -> None:
            await pushes.start()

        app.on_startup.append(start_pushes)

    async def shutdown(_app: web.Application) -> None:
        await desk.close()
        if pushes is not None:
            await pushes.close()
        for adapter in hub.adapters:
            await adapter.close()
        if hub.llm is not None:
            await hub.llm.aclose()
        if isinstance(hub.router, RasaRouter):
            await hub.router.close()
        await hub.store.close()

    app.on_shutdown.append(shutdown)
    return app


async def serve(config: Config) -> None:
    """Run the hub until SIGINT or SIGTERM."""
    hub = await build_hub(config)
    # The demo store and catalogs live as long as the process: keep the collector from rescanning them,
    # which would otherwise show up as latency spikes under load.
    gc.collect()
    gc.freeze()
    # A turn allocates a few thousand short-lived objects (parsed sessions, replies): with the default
    # threshold (700) the young generation is collected several times per turn, about 5% of the CPU.
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    runner = web.AppRunner(create_app(hub), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.server.host, config.server.port, reuse_port=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"cannot listen on {config.server.host}:{config.server.port}: {exc.strerror}") from None
    log.info("kefu listening on http://%s:%d/ (sessions: %s, nlu: %s, llm: %s)", config.server.host,
             config.server.port, hub.store.name, hub.router.name, "online" if hub.llm else "offline")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
