"""The turn pipeline (DESIGN.md), readable top to bottom.

    handle(message, send)
      1  the adapter has verified and parsed the message
      2-5 open:       dedup claim, identity, per-customer lock, session load (one store call)
      6  handoff:     a queued or held conversation goes to the agent console (core.desk); the bot stays silent
      7  understand:  intent, confidence, entities; negative emotion (core.emotion)
      8  decide:      skill, LLM, honest fallback, or a human (core.desk opens the ticket)
      9  shape:       locale and reply polish
      10 render+send: by the channel's capabilities, through the adapter's `send`
      11 save:        session saved, lock released, claim marked done (one store call); metrics

A turn that fails after opening is abandoned: its lock and claim are released and
nothing is saved, so the platform's retry is answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.agent import Agent, AgentStream
from core.agent_queue import MemoryDesk
from core.commerce.base import CommerceBackend
from core.commerce.logistics import DemoLogistics, LogisticsProvider
from core.config import Config
from core.confirm import settle_pending
from core.desk import Desk
from core.emotion import CALM, Emotion, read_emotion
from core.handoff import request_handoff
from core.identity import Identity
from core.llm import LlmClient, LlmResult, LlmStream, LlmUnavailable, Usage
from core.locale import Catalogs, LocaleChoice, Translator, normalize_locale, pick_locale
from core.message import (
    BadMessage,
    Button,
    Capabilities,
    EventKind,
    Message,
    Reply,
    Send,
    TextStream,
    TurnResult,
    TurnUnavailable,
)
from core.metrics import Metrics
from core.nlu import IntentRouter, NluResult
from core.packs import Pack
from core.profiles import Profiles
from core.push.inbox import PushInbox
from core.push.stores import Catalog, configured_catalog
from core.render import render
from core.sessions import HistoryEntry, LockLost, LockTimeout, OpenTurn, Session, SessionStore, StoreUnavailable
from core.shaping import LlmCheck, StreamPolisher
from core.shop_events import SHOP_EVENTS
from core.shop_events import record as record_shop_event
from core.skills.base import SkillContext, SkillFn
from core.skills.changes import order_cancel
from core.skills.exchanges import exchange_request
from core.skills.flow import awaited_intent
from core.skills.human import human_agent
from core.skills.language import SWITCH_INTENT, switch_locale
from core.skills.modify import order_modify
from core.skills.orders import EXPECTING, STORE_USER, order_status
from core.skills.payments import payment_issue
from core.skills.product_questions import product_question
from core.skills.promotions import promotion_query
from core.skills.recommend import product_recommend
from core.skills.refunds import refund_status
from core.skills.returns import return_request
from core.skills.sizing import size_advice
from core.skills.smalltalk import greet, thanks_bye
from core.skills.stores import store_nearby

log = logging.getLogger("kefu.engine")
# One line per turn for analytics pipelines: `log_turn_events: true` in bot_config.yaml.
events = logging.getLogger("kefu.events")

DEFAULT_SKILLS: dict[str, SkillFn] = {
    "greet": greet,
    "thanks_bye": thanks_bye,
    "human_agent": human_agent,
    "complaint": human_agent,
    "order_status": order_status,
    "promotion_query": promotion_query,
    "size_advice": size_advice,
    "payment_issue": payment_issue,
    "return_request": return_request,
    "order_cancel": order_cancel,
    "order_modify": order_modify,
    "exchange_request": exchange_request,
    "refund_status": refund_status,
    "product_question": product_question,
    "product_recommend": product_recommend,
    "store_nearby": store_nearby,
    SWITCH_INTENT: switch_locale,
}

ESCALATIONS = ("human_agent", "complaint")
OPTIONS = "options"  # payloads of the numbered options last offered on a channel without buttons
LLM_HISTORY_ENTRIES = 12
LOCALE_CHOSEN = "locale_chosen"  # the shopper asked for a language: it wins over channel hints from now on
# A switch request ("English please") is understood without the NLU: it goes to the switch_locale skill.
SWITCHED = NluResult(SWITCH_INTENT, 1.0, source="switch")


class Route(StrEnum):
    SKILL = "skill"
    LLM = "llm"
    FALLBACK = "fallback"
    HANDOFF = "handoff"
    HELD = "held"
    EVENT = "event"
    DUPLICATE = "duplicate"


@dataclass(slots=True)
class Decision:
    route: Route
    skill: SkillFn | None = None
    reason: str | None = None  # why a hand-over: the intent, "emotion", "vip" or "low_confidence"


class Engine:
    def __init__(
        self,
        config: Config,
        store: SessionStore,
        router: IntentRouter,
        commerce: CommerceBackend,
        catalogs: Catalogs,
        metrics: Metrics,
        llm: LlmClient | None = None,
        skills: dict[str, SkillFn] | None = None,
        clock: Callable[[], float] = time.time,
        pushes: PushInbox | None = None,
        desk: Desk | None = None,
        logistics: LogisticsProvider | None = None,
        stores: Catalog | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.router = router
        self.commerce = commerce
        self.catalogs = catalogs
        self.metrics = metrics
        self.llm = llm if (llm is not None and config.llm.enabled) else None
        # The LLM with the shop's operations and skills as tools (core.agent); None: plain answers.
        self.agent = Agent.from_config(config, self.llm) if self.llm is not None and config.llm.tools else None
        self.skills = dict(DEFAULT_SKILLS if skills is None else skills)
        self.clock = clock
        self.pushes = pushes
        # Parcel tracking for the skills; the same provider as the logistics alert pushes (core/app.py).
        self.logistics = logistics or DemoLogistics(config.pushes.logistics.demo_anomaly_rate)
        self.stores = stores or configured_catalog(config)
        self.identity = Identity(store, config.sessions.history_turns)
        self.desk = desk or Desk(config, store, MemoryDesk(), Profiles(commerce, config.escalation), catalogs, clock)

    async def handle(self, message: Message, send: Send, caps: Capabilities) -> TurnResult:
        """Run one turn; raises BadMessage (the platform's fault) or TurnUnavailable (retry later)."""
        self.check(message)
        try:
            return await self.run(message, send, caps)
        except (StoreUnavailable, LockTimeout, LockLost) as exc:
            self.metrics.error(type(exc).__name__)
            log.warning("turn on %s not completed: %s: %s", message.channel, type(exc).__name__, exc)
            polite = self.catalogs.gettext(self.hinted_locale(message), "Sorry, I can't reach my notes right now. "
                                                   "Please send your message again in a moment.")
            raise TurnUnavailable(type(exc).__name__, polite) from exc

    async def run(self, message: Message, send: Send, caps: Capabilities) -> TurnResult:
        started = time.perf_counter()
        stages: dict[str, float] = {}
        if message.verified_phone:
            # Before the turn takes its lock: linking may merge this customer into another one.
            await self.identity.link_verified_phone(message.user, message.verified_phone)
        turn = await self.open(message)
        stages["open"] = time.perf_counter() - started
        if turn is None:
            self.metrics.duplicates.inc()
            return TurnResult(Route.DUPLICATE)
        try:
            result = await self.run_turn(message, turn, send, caps, stages)
            mark = time.perf_counter()
            await self.store.close_turn(turn, turn.session)
            stages["save"] = time.perf_counter() - mark
        except BaseException:
            await self.abandon(turn)
            raise
        elapsed = time.perf_counter() - started
        self.metrics.observe_stages(stages)
        self.metrics.turn_seconds.observe(elapsed)
        self.metrics.count_turn(message.channel, result.route)
        if events.isEnabledFor(logging.INFO):
            events.info("turn channel=%s customer=%s route=%s intent=%s ms=%.2f", message.channel,
                        turn.customer_id, result.route, result.intent, elapsed * 1000)
        return result

    def check(self, message: Message) -> None:
        limit = self.config.messages.max_text_chars
        if len(message.text) > limit:
            polite = self.catalogs.gettext(
                self.hinted_locale(message),
                "Your message is too long ({count} characters; the limit is {limit}). Please shorten it.",
                count=len(message.text), limit=limit)
            raise BadMessage(f"text is {len(message.text)} characters; the limit is {limit}", polite)

    def hinted_locale(self, message: Message) -> str:
        """The locale before the session is read: the channel's hint, else the shop's default."""
        shop = self.config.shop
        return normalize_locale(message.locale_hint, shop.locales) or shop.default_locale

    async def open(self, message: Message) -> OpenTurn | None:
        """Steps 2-5: dedup claim, identity, lock, load."""
        dedup_key = f"{message.channel}:{message.platform_message_id}" if message.platform_message_id else None
        return await self.store.open_turn(message.user.key, dedup_key)

    async def abandon(self, turn: OpenTurn) -> None:
        try:
            await self.store.abandon_turn(turn)
        except Exception:  # the store is likely down; the claim and lock expire by themselves
            log.warning("could not release turn of %s; its claim and lock will expire", turn.customer_id)

    async def run_turn(
        self, message: Message, turn: OpenTurn, send: Send, caps: Capabilities, stages: dict[str, float]
    ) -> TurnResult:
        session = turn.session
        now = self.clock()
        self.attach_identity(message, session)
        choice = self.choose_locale(message, session)
        locale = choice.locale
        t = Translator(self.catalogs, locale)
        text = self.pick_option(message.text, session)
        # Pushes (core.push.inbox): contact upkeep, opt-out and opt-in words, location kept only with consent.
        pushed = await self.pushes.on_turn(turn.customer_id, message, text, t, session, now) if self.pushes else None
        if text:
            session.remember(HistoryEntry("shopper", text, message.channel, now), self.history_limit)
        session.updated_at = now

        if await self.desk.holds(turn.customer_id, session, message, text, now):
            # Step 6: queued or held by a human: the message went to the agent console, the bot says nothing.
            return TurnResult(Route.HELD, turn.customer_id)

        mark = time.perf_counter()
        understanding = SWITCHED if choice.switched else await self.understand("" if pushed else text, locale)
        stages["understand"] = time.perf_counter() - mark

        mark = time.perf_counter()
        ctx = SkillContext(message, text, session, understanding, t, self.commerce, self.config.shop, now,
                           self.logistics, self.stores)
        if pushed is not None:
            route, replies = Route.EVENT, pushed
        elif message.event is not None or not text:
            route, replies = await self.on_event_or_silence(ctx)
        elif (settled := await settle_pending(ctx)) is not None:
            route, replies = Route.SKILL, settled  # the shopper answered a confirmation (core.confirm)
        else:
            decision = self.decide(understanding, session, read_emotion(text), text)
            route, replies = decision.route, await self.act(decision, ctx)
        replies = self.shape(replies, t, text)
        stages["decide"] = time.perf_counter() - mark

        mark = time.perf_counter()
        session.slots.pop(OPTIONS, None)
        for reply in replies:
            await send(render(reply, caps))
            if reply.buttons and not caps.buttons:
                session.slots[OPTIONS] = [b.payload for b in reply.buttons]
            session.remember(
                HistoryEntry("bot", reply.final_text, message.channel, self.clock(), understanding.intent),
                self.history_limit,
            )
        stages["send"] = time.perf_counter() - mark
        return TurnResult(route, turn.customer_id, understanding.intent, replies)

    @staticmethod
    def pick_option(text: str, session: Session) -> str:
        """On channels without buttons the options were numbered: "2" means the second one's payload."""
        options = session.slots.get(OPTIONS)
        choice = text.strip()
        if options and choice.isdigit() and 1 <= int(choice) <= len(options):
            return str(options[int(choice) - 1])
        return text

    async def on_event_or_silence(self, ctx: SkillContext) -> tuple[Route, list[Reply]]:
        """Platform events and messages without text (a location, a sticker)."""
        event = ctx.message.event
        if event == EventKind.SUBSCRIBE:
            return Route.EVENT, await greet(ctx)
        if event in SHOP_EVENTS:  # browse, favourite, cart: kept for recommendations, no reply
            record_shop_event(ctx.session, self.commerce, event, ctx.message.product_id, ctx.now)
            return Route.EVENT, []
        if event is None and ctx.message.verified_phone:
            return Route.EVENT, [Reply(text=ctx.t("Thank you, your phone number is verified: "
                                                  "you can continue this conversation on any of our channels."))]
        if event is None and ctx.message.location is not None:
            return Route.EVENT, [Reply(text=ctx.t("Thanks, I've noted your location."))]
        if event is None and ctx.message.attachments:
            return Route.EVENT, [Reply(text=ctx.t("I can only read text messages for now. Please type your question."))]
        return Route.EVENT, []

    @property
    def history_limit(self) -> int:
        return self.config.sessions.history_turns

    def attach_identity(self, message: Message, session: Session) -> None:
        """Step 3 (the part after the store's lookup): a channel-verified store account signs the shopper in."""
        if message.user.store_user_id and self.commerce.user_exists(message.user.store_user_id):
            session.slots[STORE_USER] = message.user.store_user_id

    def choose_locale(self, message: Message, session: Session) -> LocaleChoice:
        """The turn's locale (core.locale.pick_locale): switch request, setting, hint, text, session, default."""
        shop = self.config.shop
        choice = pick_locale(
            hint=message.locale_hint, session_locale=session.locale, chosen=bool(session.slots.get(LOCALE_CHOSEN)),
            text=message.text, supported=shop.locales, default=shop.default_locale,
            switches=self.catalogs.packs.switches,
        )
        if choice.switched:
            session.slots[LOCALE_CHOSEN] = True
        if choice.remember:
            session.locale = choice.locale
        return choice

    async def understand(self, text: str, locale: str) -> NluResult:
        if not text.strip():
            return NluResult(None, 0.0, source="empty")
        return await self.router.parse(text, locale)

    def decide(self, understanding: NluResult, session: Session, emotion: Emotion = CALM, text: str = "") -> Decision:
        threshold = self.config.nlu.threshold
        intent = understanding.intent
        confident = intent is not None and understanding.confidence >= threshold
        expecting = session.slots.get(EXPECTING)
        if expecting and understanding.entity("email") and intent not in ESCALATIONS:
            # The shopper sends the email the bot asked for to sign in: that answer wins over whatever else
            # the words look like. Other entities do not answer it: a product named in a new question
            # ("防晒霜多久补涂一次") is that question.
            intent, confident = str(expecting), True
        elif (awaited := awaited_intent(session, understanding, text, confident)) is not None:
            intent, confident = awaited, True  # the shopper answers a skill's open question (core.skills.flow)
        if confident and intent in ESCALATIONS:
            return Decision(Route.HANDOFF, self.skills[intent], intent)
        if emotion.intensity >= self.config.escalation.emotion_threshold:
            return self.escalate("emotion")
        if confident and intent in self.skills:
            session.low_confidence_streak = 0
            return Decision(Route.SKILL, self.skills[intent])
        session.low_confidence_streak += 1
        if self.desk.profiles.is_vip(session):
            return self.escalate("vip")  # VIPs get a person as soon as the bot is unsure
        if self.llm is not None:
            return Decision(Route.LLM)
        turns = self.config.escalation.low_confidence_turns
        if turns and session.low_confidence_streak >= turns:
            return self.escalate("low_confidence")  # the bot could not answer this many times in a row
        return Decision(Route.FALLBACK)

    def escalate(self, reason: str) -> Decision:
        return Decision(Route.HANDOFF, self.skills.get("human_agent", human_agent), reason)

    def preview_route(self, understanding: NluResult) -> Route:
        """The route a first message with this understanding would take (for operators)."""
        return self.decide(understanding, Session(customer_id="preview")).route

    async def act(self, decision: Decision, ctx: SkillContext) -> list[Reply]:
        if decision.route == Route.HANDOFF:
            return await self.hand_over(decision, ctx)
        if decision.skill is not None:
            return await decision.skill(ctx)
        await self.queue_unknown(ctx)
        if decision.route == Route.LLM:
            if self.agent is not None:
                return await self.agent_replies(ctx)
            return [Reply(stream=TextStream(self.llm_chunks(ctx)))]
        return [self.offline_reply(ctx.t)]

    async def hand_over(self, decision: Decision, ctx: SkillContext) -> list[Reply]:
        """Step 8, escalation: queue the conversation, open its ticket (core.desk), tell the shopper."""
        session = ctx.session
        streak = session.low_confidence_streak if decision.reason == "low_confidence" else 1
        opened = request_handoff(session, decision.reason or "human_agent", ctx.now)
        session.low_confidence_streak = 0
        replies = await (decision.skill or human_agent)(ctx)
        if opened:
            asked = [e.text for e in session.history if e.role == "shopper"][-streak:]
            await self.desk.open(session.customer_id, session, ctx.message, asked or [ctx.text],
                                 read_emotion(ctx.text).intensity, ctx.t.locale, ctx.now)
        return replies

    def offline_reply(self, t: Translator) -> Reply:
        return Reply(
            text=t("Sorry, I can't answer that yet. I've passed your question on to our team. "
                   "Would you like a human colleague to help?"),
            buttons=(Button(t("Talk to a human"), t("human please")),),
        )

    async def agent_replies(self, ctx: SkillContext) -> list[Reply]:
        """The LLM with tools (core.agent): the tool steps run now; a write's confirmation question, a hand-over
        or the step limit end the turn, else the answer is delivered like any LLM answer (llm_chunks, llm_checked).
        """
        assert self.agent is not None
        pack = ctx.t.pack
        run = self.agent.start(ctx, self.llm_messages(ctx), on_usage=lambda usage: self.count_llm_tokens(ctx, usage),
                               hand_over=lambda c: self.hand_over(self.escalate("llm_transfer"), c))
        checked = pack is not None and pack.checked_delivery
        try:
            outcome = await (run.complete() if checked else run.stream())
        except LlmUnavailable as exc:
            self.metrics.error("llm")
            log.warning("LLM unavailable: %s", exc)
            return [Reply(text=ctx.t("Sorry, I couldn't finish that answer. Please try again, or ask for a human "
                                     "colleague."))]
        if isinstance(outcome, list):
            return outcome
        if isinstance(outcome, LlmResult):
            assert pack is not None
            return [Reply(stream=TextStream(self.llm_checked(ctx, pack, run.messages, outcome)))]
        return [Reply(stream=TextStream(self.llm_chunks(ctx, outcome)))]

    async def queue_unknown(self, ctx: SkillContext) -> None:
        u = ctx.understanding
        await self.store.push_unknown({
            "text": ctx.text,
            "locale": ctx.t.locale,
            "channel": ctx.message.channel,
            "at": ctx.now,
            "top": [{"intent": s.intent, "confidence": s.confidence} for s in u.ranking[:3]],
        })
        self.metrics.unknown_questions.inc()

    async def llm_chunks(self, ctx: SkillContext, stream: LlmStream | AgentStream | None = None) -> AsyncIterator[str]:
        """The LLM's answer through the turn's pack (core.shaping).

        Streamed delivery: deltas relayed as they come, words never to use replaced on the way.
        Checked delivery (ja): the whole answer is checked first; a flagged one is polished, else
        regenerated once with the pack's stricter instruction, else replaced by a safe catalog sentence.
        Either way a failure ends it with an honest apology, and a health topic adds the disclaimer.
        """
        assert self.llm is not None
        pack = ctx.t.pack
        if pack is not None and pack.checked_delivery:
            async for piece in self.llm_checked(ctx, pack):
                yield piece
            return
        polisher = StreamPolisher(pack) if pack is not None else None
        stream = stream if stream is not None else self.llm.stream(self.llm_messages(ctx))
        try:
            async for delta in stream:
                out = polisher.feed(delta) if polisher is not None else delta
                if out:
                    yield out
        except LlmUnavailable as exc:
            self.metrics.error("llm")
            log.warning("LLM unavailable: %s", exc)
            rest = polisher.flush() if polisher is not None else ""
            yield rest + ("\n" if stream.text else "") + ctx.t(
                "Sorry, I couldn't finish that answer. Please try again, or ask for a human colleague."
            )
            return
        if polisher is not None:
            yield polisher.flush()
        self.count_llm_tokens(ctx, stream.result.usage)
        if stream.result.truncated:
            yield "…"
        if pack is not None:
            answer = polisher.text if polisher is not None else stream.text
            leftover = pack.check(answer)
            if leftover:  # flagged-only words (no replacement): visible to operators, the answer is already out
                self.metrics.error("llm_pack_findings")
                log.info("streamed LLM answer in %s has pack findings: %s", pack.locale, "; ".join(map(str, leftover)))
            if self.catalogs.shaper.needs_disclaimer(pack, answer, ctx.text):
                yield "\n\n" + pack.health_disclaimer

    async def llm_checked(self, ctx: SkillContext, pack: Pack, messages: list[dict[str, Any]] | None = None,
                          first: LlmResult | None = None) -> AsyncIterator[str]:
        """Checked delivery: one answer, sent only once the pack's checks pass."""
        assert self.llm is not None
        messages = messages if messages is not None else self.llm_messages(ctx)
        try:
            first = first if first is not None else await self.llm.complete(messages)
            self.count_llm_tokens(ctx, first.usage)
            check = LlmCheck.of(pack, first.text)
            truncated = first.truncated
            if check.action == "regenerate":
                self.metrics.error("llm_regenerated")
                log.info("LLM answer in %s regenerated: %s", pack.locale, "; ".join(map(str, check.findings)))
                retry = [*messages, {"role": "assistant", "content": first.text},
                         {"role": "system", "content": pack.regenerate_instruction(check.findings)}]
                second = await self.llm.complete(retry)
                self.count_llm_tokens(ctx, second.usage)
                check, truncated = LlmCheck.of(pack, second.text), second.truncated
        except LlmUnavailable as exc:
            self.metrics.error("llm")
            log.warning("LLM unavailable: %s", exc)
            yield ctx.t("Sorry, I couldn't finish that answer. Please try again, or ask for a human colleague.")
            return
        if check.action == "regenerate":  # flagged twice: never send it
            self.metrics.error("llm_rejected")
            answer = ctx.t("Sorry, I can't give you a proper answer to that right now. "
                           "A human colleague can help: just ask for one.")
        else:
            answer = check.text + ("…" if truncated else "")
        if self.catalogs.shaper.needs_disclaimer(pack, answer, ctx.text):
            answer = self.catalogs.shaper.with_disclaimer(pack, answer)
        yield answer

    def count_llm_tokens(self, ctx: SkillContext, usage: Usage | None) -> None:
        if usage is None:
            return
        self.metrics.llm_tokens.labels("prompt").inc(usage.prompt_tokens)
        self.metrics.llm_tokens.labels("completion").inc(usage.completion_tokens)
        ctx.session.slots["llm_tokens"] = int(ctx.session.slots.get("llm_tokens", 0)) + usage.total_tokens

    def llm_messages(self, ctx: SkillContext) -> list[dict[str, str]]:
        system = ctx.t(
            "You are the customer-service assistant of {shop}. Answer briefly and politely in the shopper's "
            "language. Never invent order details, prices or policies; offer a human colleague when unsure.",
            shop=self.config.shop.name,
        )
        pack = ctx.t.pack
        if pack is not None and pack.llm_rules:  # the locale's persona, register, words and disclaimer
            system = f"{system}\n{pack.llm_rules}"
        messages = [{"role": "system", "content": system}]
        for entry in ctx.session.history[-LLM_HISTORY_ENTRIES:]:
            messages.append({"role": "user" if entry.role == "shopper" else "assistant", "content": entry.text})
        return messages

    def shape(self, replies: list[Reply], t: Translator | None = None, question: str = "") -> list[Reply]:
        """Step 9: the turn's locale pack (core.shaping): words never to use, ja keigo, the health disclaimer.

        LLM streams are shaped in `llm_chunks`, as they are produced.
        """
        replies = [r for r in replies if r.text.strip() or r.stream or r.buttons or r.image or r.card]
        pack = t.pack if t is not None else None
        return self.catalogs.shaper.shape(pack, replies, question) if pack is not None and replies else replies
