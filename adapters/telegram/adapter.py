"""Telegram (python-telegram-bot 22): updates by webhook or long polling in, a rate-limited queue out.

Webhook mode
    POST /telegram/webhook   X-Telegram-Bot-Api-Secret-Token must equal channels.telegram.webhook_secret
        403  wrong or missing secret token (checked in constant time, before the body is read)
        413  body over server.max_body_bytes
        400  not JSON, not an object, or no update_id
        503  the turn could not run now (session store down): Telegram delivers the update again later
        200  everything else: answered turns, duplicates, updates only acknowledged, and updates the engine
             refuses or PTB cannot read (Telegram would retry those forever; a log line says why)
    Every 4xx and 503 is logged. With `webhook_url` set, setWebhook is called at start.

Polling mode
    A task started with the app calls deleteWebhook, then getUpdates in a loop (long polling, offset =
    last update id + 1 once a batch is handled). Updates of one chat are handled in order, chats side by
    side. Network errors back off (0.2 s doubling to 30 s). If a turn cannot run (store down), the offset
    stops before that update so it is fetched again; updates after it that were answered are then
    duplicates, which the engine's dedup claim (bot id + update id) acknowledges without answering.

Out: each reply is rendered (adapters.telegram.render) and queued (adapters.telegram.outbox); the turn
does not wait for Telegram's flood limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import warnings
from collections.abc import Awaitable
from typing import Any

from aiohttp import web
from telegram import Bot, ReplyParameters
from telegram.error import Conflict, InvalidToken, TelegramError
from telegram.request import HTTPXRequest
from telegram.warnings import PTBUserWarning

from adapters.telegram.inbound import Inbound, NotAnUpdate, UpdateReader, bot_id_from_token, parse_update
from adapters.telegram.outbox import Outbox, RateLimits
from adapters.telegram.render import Outgoing, render_reply
from core.config import TelegramConfig
from core.message import BadMessage, Capabilities, Reply, Send, TurnHandler, TurnUnavailable

log = logging.getLogger("kefu.telegram")

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What the bot asks Telegram for (setWebhook and getUpdates); everything else is never sent to it.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "shipping_query", "pre_checkout_query",
                   "my_chat_member")
DRAIN_S = 5.0  # at shutdown, how long queued replies may still take
SIDE_CALL_TIMEOUT_S = 5.0  # answerCallbackQuery and the like
POLL_BACKOFF_MIN_S = 0.2
POLL_BACKOFF_MAX_S = 30.0
PAYMENTS_DECLINED = "Payments are not accepted in this chat."
# Loggers that write request URLs, which hold the bot token (httpx logs every request at INFO).
URL_LOGGERS = ("httpx", "telegram.Bot")


class RedactToken(logging.Filter):
    """Replaces the bot token in log lines of the loggers it is attached to."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._token in message:
            record.msg, record.args = message.replace(self._token, "<bot-token>"), None
        return True


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": {"code": code, "message": message}}, status=status,
                             headers=headers)


class TelegramAdapter:
    name = "telegram"
    capabilities = Capabilities(buttons=True, images=True, cards=True, streaming=False)

    def __init__(self, engine: TurnHandler, config: TelegramConfig, max_body_bytes: int) -> None:
        self.engine = engine
        self.config = config
        self.max_body_bytes = max_body_bytes
        self._redact = RedactToken(config.token)  # until close(); PTB logs the URL as soon as the Bot is made
        for name in URL_LOGGERS:
            logging.getLogger(name).addFilter(self._redact)
        # PTB's own HTTP clients (httpx, no threads): one connection for the long poll, a pool for sending.
        self._requests = (HTTPXRequest(connection_pool_size=1), HTTPXRequest(connection_pool_size=64))
        self.bot = Bot(config.token, base_url=config.api_base_url, get_updates_request=self._requests[0],
                       request=self._requests[1])
        self.reader = UpdateReader(bot_id_from_token(config.token), config.bot_username)
        limits = RateLimits(config.per_chat_per_second, config.per_group_per_minute, config.global_per_second)
        self.outbox = Outbox(self._transmit, limits)
        self._secret = config.webhook_secret.encode("utf-8")
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        if self.config.mode == "webhook":
            app.router.add_post(WEBHOOK_PATH, self.webhook)
        app.on_startup.append(self._start)

    async def _start(self, _app: web.Application) -> None:
        for request in self._requests:
            await request.initialize()
        loop = asyncio.get_running_loop()
        work = self._poll() if self.config.mode == "polling" else self._introduce()
        self._tasks.append(loop.create_task(work, name=f"telegram-{self.config.mode}"))

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.outbox.close(DRAIN_S)
        for request in self._requests:
            await request.shutdown()
        for name in URL_LOGGERS:
            logging.getLogger(name).removeFilter(self._redact)

    async def _introduce(self) -> None:
        """Ask getMe for what the config left out; register the webhook if its URL is configured."""
        if not self.reader.username or self.reader.bot_id is None:
            try:
                me = await self.bot.get_me()
                self.reader.learn(me.id, me.username)
            except TelegramError as exc:
                log.warning("telegram: getMe failed (%s); set channels.telegram.bot_username so mentions in "
                            "groups are recognised", exc.message)
        if self.config.mode == "webhook" and self.config.webhook_url:
            try:
                await self.bot.set_webhook(self.config.webhook_url, secret_token=self.config.webhook_secret,
                                           allowed_updates=list(ALLOWED_UPDATES))
                log.info("telegram: webhook registered at %s", self.config.webhook_url)
            except TelegramError as exc:
                log.error("telegram: setWebhook failed: %s", exc.message)

    # -- webhook --------------------------------------------------------------------------------

    def secret_ok(self, given: str | None) -> bool:
        return hmac.compare_digest((given or "").encode("utf-8", "replace"), self._secret)

    async def webhook(self, request: web.Request) -> web.Response:
        if not self.secret_ok(request.headers.get(SECRET_HEADER)):
            log.warning("telegram webhook: wrong or missing secret token from %s (403)", request.remote)
            return _error(403, "forbidden", "wrong or missing secret token")
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            log.warning("telegram webhook: body of %d bytes refused (413)", request.content_length)
            return _error(413, "request_entity_too_large", f"the body is over {self.max_body_bytes} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            log.warning("telegram webhook: chunked body over %d bytes refused (413)", self.max_body_bytes)
            return _error(413, "request_entity_too_large", f"the body is over {self.max_body_bytes} bytes")
        try:
            inbound = self.reader.read_body(body)
        except NotAnUpdate as exc:
            log.warning("telegram webhook: %s (400)", exc)
            return _error(400, "bad_request", str(exc))
        try:
            await self.handle(inbound)
        except TurnUnavailable as exc:
            log.warning("telegram webhook: update %d not handled now (%s); Telegram will retry (503)",
                        inbound.update_id, exc)
            return _error(503, "temporarily_unavailable", "try again later", headers={"Retry-After": "5"})
        return web.json_response({"ok": True})

    # -- one update -----------------------------------------------------------------------------

    async def handle(self, inbound: Inbound) -> str:
        """Do what one update asks; the turn's route, or what the update was if there was no turn.

        Raises TurnUnavailable (retry later); a message the engine refuses is logged and acknowledged.
        """
        if inbound.callback_query_id is not None:
            await self._side_call("answerCallbackQuery", self.bot.answer_callback_query(inbound.callback_query_id))
        if inbound.pre_checkout_query_id is not None:
            await self._side_call("answerPreCheckoutQuery", self.bot.answer_pre_checkout_query(
                inbound.pre_checkout_query_id, ok=False, error_message=PAYMENTS_DECLINED))
        if inbound.shipping_query_id is not None:
            await self._side_call("answerShippingQuery", self.bot.answer_shipping_query(
                inbound.shipping_query_id, ok=False, error_message=PAYMENTS_DECLINED))
        if inbound.migrate is not None:
            self.outbox.migrate(*inbound.migrate)
            log.info("telegram: group %d moved to supergroup %d", *inbound.migrate)
        if inbound.message is None or inbound.chat_id is None:
            if inbound.kind == "unreadable" or inbound.kind.startswith("invalid"):
                log.warning("telegram update %d is %s; acknowledged without an answer", inbound.update_id,
                            inbound.kind)
            else:
                log.debug("telegram update %d acknowledged: %s", inbound.update_id, inbound.kind)
            return inbound.kind
        send = self._sender(inbound.chat_id, inbound.reply_to)
        try:
            result = await self.engine.handle(inbound.message, send, self.capabilities)
        except BadMessage as exc:
            log.warning("telegram update %d (%s) refused, acknowledged: %s", inbound.update_id, inbound.kind, exc)
            return "refused"
        return result.route

    async def _side_call(self, method: str, call: Awaitable[Any]) -> None:
        try:
            await asyncio.wait_for(call, SIDE_CALL_TIMEOUT_S)
        except (TelegramError, TimeoutError) as exc:
            log.warning("telegram: %s failed: %s", method, getattr(exc, "message", None) or type(exc).__name__)

    def _sender(self, chat_id: int, reply_to: int | None) -> Send:
        quote = reply_to  # in groups the first message of the answer quotes the shopper's

        async def send(reply: Reply) -> None:
            nonlocal quote
            await self.deliver(chat_id, reply, reply_to=quote)
            quote = None

        return send

    async def deliver(self, chat_id: int | str, reply: Reply, reply_to: int | None = None) -> None:
        """Queue `reply` for `chat_id`: a turn's answer, or a proactive message. Returns once queued."""
        if reply.stream is not None and not reply.stream.done:
            await reply.stream.collect()
        if self._closed:
            log.warning("telegram: a reply to chat %s not sent: the hub is shutting down", chat_id)
            return
        for out in render_reply(reply, reply_to):
            self.outbox.put(int(chat_id), out)

    async def push(self, user_id: str, chat_id: str, reply: Reply) -> bool:
        """A proactive message (core.push) to a shopper's private chat: queued like any reply."""
        if self._closed:
            return False
        await self.deliver(int(chat_id), reply)
        return True

    async def _transmit(self, chat_id: int, out: Outgoing) -> None:
        quote = ReplyParameters(out.reply_to, allow_sending_without_reply=True) if out.reply_to else None
        if out.photo:
            await self.bot.send_photo(chat_id, out.photo, caption=out.text or None, reply_markup=out.keyboard,
                                      reply_parameters=quote)
        else:
            await self.bot.send_message(chat_id, out.text, reply_markup=out.keyboard, reply_parameters=quote)

    # -- polling --------------------------------------------------------------------------------

    async def _poll(self) -> None:
        await self._introduce()
        offset: int | None = None
        backoff = POLL_BACKOFF_MIN_S
        webhook_cleared = False
        while True:
            try:
                if not webhook_cleared:
                    await self.bot.delete_webhook(drop_pending_updates=False)
                    webhook_cleared = True
                batch = await self._fetch(offset)
                if batch:
                    offset, stuck = await self._process(batch)
                    if stuck:
                        raise _Stuck(offset)
                backoff = POLL_BACKOFF_MIN_S
                continue
            except _Stuck as exc:
                log.warning("telegram polling: update %d could not be handled now; fetching it again in %.1f s",
                            exc.update_id, backoff)
            except Conflict as exc:
                webhook_cleared = False
                log.warning("telegram polling: %s; retrying in %.1f s", exc.message, backoff)
            except InvalidToken as exc:
                log.error("telegram polling: the token was rejected (%s); retrying in %.1f s", exc.message, backoff)
            except TelegramError as exc:
                log.warning("telegram polling: getUpdates failed (%s); retrying in %.1f s", exc.message, backoff)
            except Exception:
                log.exception("telegram polling: unexpected error; retrying in %.1f s", backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, POLL_BACKOFF_MAX_S)

    async def _fetch(self, offset: int | None) -> list[Inbound]:
        try:
            updates = await self.bot.get_updates(offset=offset, timeout=self.config.poll_timeout_s,
                                                 allowed_updates=ALLOWED_UPDATES)
        except TelegramError:
            raise
        except Exception:
            # PTB could not read one of the updates (it logged which): read the batch update by update.
            return await self._fetch_leniently(offset)
        return [self.reader.read(update) for update in updates]

    async def _fetch_leniently(self, offset: int | None) -> list[Inbound]:
        kwargs = {"offset": offset, "timeout": 0, "allowed_updates": list(ALLOWED_UPDATES)}
        with warnings.catch_warnings():  # "use Bot.get_updates": that is what just failed
            warnings.simplefilter("ignore", PTBUserWarning)
            raw = await self.bot.do_api_request("getUpdates", api_kwargs=kwargs)
        batch = []
        for data in raw if isinstance(raw, list) else []:
            update_id = data.get("update_id") if isinstance(data, dict) else None
            if not isinstance(update_id, int):
                continue
            update = parse_update(data)
            batch.append(self.reader.read(update) if update is not None else Inbound(update_id, "unreadable"))
        return batch

    async def _process(self, batch: list[Inbound]) -> tuple[int, bool]:
        """Handle a batch: each chat's updates in order, chats side by side. (next offset, stuck?)"""
        chats: dict[str, list[Inbound]] = {}
        for item in batch:
            chats.setdefault(item.order_key, []).append(item)
        stuck = [uid for uid in await asyncio.gather(*(self._in_order(items) for items in chats.values()))
                 if uid is not None]
        if stuck:
            return min(stuck), True
        return max(item.update_id for item in batch) + 1, False

    async def _in_order(self, items: list[Inbound]) -> int | None:
        """The id of the first update whose turn could not run (the rest of this chat waits), or None."""
        for item in items:
            try:
                await self.handle(item)
            except TurnUnavailable:
                return item.update_id
            except Exception:
                log.exception("telegram polling: update %d failed; skipped", item.update_id)
        return None


class _Stuck(Exception):
    def __init__(self, update_id: int) -> None:
        super().__init__(update_id)
        self.update_id = update_id
