"""bot_config.yaml: parsed once into typed objects.

Nothing else in the hub reads YAML or `os.environ`. Secrets come in through
`${ENV_VAR}` (or `${ENV_VAR:-default}`) references in the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.push.config import PushesConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "bot_config.yaml"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A config file that cannot be used; the message names file, key path and expectation."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(64 * 1024, ge=1024)


class CompensationBand(_Section):
    min_order_value: float = Field(ge=0)  # in shop.currency
    amount: float = Field(gt=0)  # in compensation.currency


class CompensationConfig(_Section):
    """Apology coupons (core.skills.compensation): amount from order value and tier, capped per shopper per day."""

    currency: str = "CNY"
    min_amount: float = Field(5.0, gt=0)
    max_amount: float = Field(50.0, gt=0)
    # The highest band whose min_order_value the order reaches gives the base amount ...
    bands: tuple[CompensationBand, ...] = (
        CompensationBand(min_order_value=0, amount=5), CompensationBand(min_order_value=50, amount=10),
        CompensationBand(min_order_value=200, amount=20), CompensationBand(min_order_value=500, amount=30),
    )
    # ... times the shopper's tier (core.profiles: guest, regular, vip), then kept within min and max.
    tier_multipliers: dict[str, float] = {"guest": 1.0, "regular": 1.0, "vip": 1.5}
    daily_count_cap: int = Field(2, ge=0)  # coupons per shopper per local day
    daily_amount_cap: float = Field(60.0, ge=0)  # their total per local day (compensation.currency)
    timezone: str = "Asia/Shanghai"  # where a "day" starts
    audit_file: str = "compensation_audit.jsonl"  # append-only, in demo_store.data_dir

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from None
        return value

    @field_validator("max_amount")
    @classmethod
    def _range(cls, value: float, info: Any) -> float:
        if value < info.data.get("min_amount", 0):
            raise ValueError("max_amount must be at least min_amount")
        return value


class ReturnRoutingConfig(_Section):
    """Return routing (core.skills.returns): cheap items are refunded without being sent back."""

    keep_it_below: float = Field(30.0, ge=0)  # item price in shop.currency; 0: every return is shipped back


class ShopConfig(_Section):
    name: str = "kefu demo shop"
    default_locale: str = "zh-CN"
    locales: tuple[str, ...] = ("zh-CN", "en", "ja", "ar")
    currency: str = "USD"
    # What checkout takes, named to shoppers who ask (core.skills.payments): credit_card, paypal, gift_card
    payment_methods: tuple[str, ...] = ("credit_card", "paypal", "gift_card")
    # Skill rules (here because skills see the shop's config; core.skills.base.SkillContext.shop).
    compensation: CompensationConfig = CompensationConfig()
    returns: ReturnRoutingConfig = ReturnRoutingConfig()
    promotions_file: str = ""  # empty: core/commerce/promotions.yaml
    size_charts_file: str = ""  # empty: core/commerce/size_charts.yaml

    @field_validator("locales")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one locale")
        return value


class RedisConfig(_Section):
    url: str = ""  # empty: the embedded in-process store
    timeout_s: float = Field(1.0, gt=0)
    max_connections: int = Field(64, ge=1)


class SessionsConfig(_Section):
    history_turns: int = Field(20, ge=1, le=500)
    ttl_s: int = Field(7 * 24 * 3600, ge=60)
    lock_ttl_s: float = Field(60.0, gt=0)
    lock_wait_s: float = Field(10.0, gt=0)
    dedup_ttl_s: int = Field(24 * 3600, ge=1)
    pending_claim_ttl_s: int = Field(90, ge=1)
    unknown_queue_max: int = Field(10_000, ge=1)


class MessagesConfig(_Section):
    max_text_chars: int = Field(4096, ge=1)


class NluConfig(_Section):
    threshold: float = Field(0.85, ge=0.0, le=1.0)
    # Rasa servers (POST /model/parse), used round robin; none: the keyword router alone.
    rasa_urls: tuple[str, ...] = ()
    token: str = ""
    timeout_s: float = Field(0.3, gt=0)
    ready_timeout_s: float = Field(30.0, ge=0)
    cache_entries: int = Field(20_000, ge=0)
    cache_ttl_s: int = Field(24 * 3600, ge=1)

    @field_validator("rasa_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # "${KEFU_NLU_URLS:-}" arrives as one string: "http://a:5005,http://b:5005"
        if isinstance(value, str):
            return tuple(u.strip() for u in value.split(",") if u.strip())
        return value


class LlmConfig(_Section):
    base_url: str = "https://api.deepseek.com"
    api_key: str = ""  # empty: offline mode, no network call
    model: str = "deepseek-chat"
    timeout_s: float = Field(30.0, gt=0)
    # one whole answer, retries and every streamed chunk included: a stream that keeps trickling ends too
    answer_deadline_s: float = Field(60.0, gt=0)
    # one turn's LLM work: every tool step's answer (tools run in between, never cut off)
    turn_deadline_s: float = Field(120.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    max_tokens: int = Field(800, ge=1)
    temperature: float = Field(0.3, ge=0.0, le=2.0)
    # The agent loop (core.agent): the shop's operations and skills as tools, the store policy as system prompt.
    tools: bool = True  # false: plain answers, no tools
    max_tool_steps: int = Field(6, ge=1, le=20)  # tool calls per turn, then an honest answer and a human
    policy_file: str = "../shared/data/retail/policy.md"
    parallel_tool_calls_flag: bool = True  # send parallel_tool_calls=false; off for APIs that reject the field

    @property
    def enabled(self) -> bool:
        return bool(self.api_key)


class DemoStoreConfig(_Section):
    source: str = "../shared/data/retail/db.json"  # read-only; copied on first start
    data_dir: str = "var"


class WebChannelConfig(_Section):
    enabled: bool = True
    # Demo only: a user_id equal to a store user id is that shopper, signed in.
    trust_user_id_as_store_user: bool = True


class WeChatConfig(_Section):
    """A WeChat Official Account, or a WeCom (企业微信) app, receiving callbacks."""

    enabled: bool = False
    kind: Literal["official_account", "wecom"] = "official_account"
    token: str = ""  # the callback token set in the platform's console
    app_id: str = ""  # Official Account AppID, or WeCom CorpID
    app_secret: str = ""
    encoding_aes_key: str = ""  # empty: plaintext mode; set: compatible/safe (AES) mode
    agent_id: str = Field("", validate_default=True)  # WeCom app AgentId
    api_base_url: str = ""  # empty: https://api.weixin.qq.com (OA) or https://qyapi.weixin.qq.com (WeCom)
    # WeChat waits 5 s for a passive reply; a turn not done within this is acknowledged at once and its
    # replies go out through the customer-service message API when ready.
    reply_deadline_s: float = Field(0.4, gt=0, lt=5)
    max_clock_skew_s: int = Field(300, ge=1)  # callbacks whose timestamp is further off are refused
    api_timeout_s: float = Field(5.0, gt=0)
    menu: dict[str, str] = {}  # CLICK EventKey -> the text it stands for

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: str) -> str:
        return cls.check_aes_key(value)

    @staticmethod
    def check_aes_key(value: str) -> str:
        """An EncodingAESKey is 43 base64 characters (32 bytes once '=' is added)."""
        if value and not re.fullmatch(r"[A-Za-z0-9+/]{43}", value):
            raise ValueError("an EncodingAESKey must be 43 base64 characters (letters, digits, + and /)")
        return value

    @field_validator("agent_id")
    @classmethod
    def _complete(cls, value: str, info: Any) -> str:
        data = info.data
        if data.get("enabled"):
            missing = [k for k in ("token", "app_id") if not data.get(k)]
            if data.get("kind") == "wecom":
                missing += [k for k in ("encoding_aes_key",) if not data.get(k)] + ([] if value else ["agent_id"])
            if missing:
                raise ValueError(f"an enabled {data.get('kind')} channel needs {', '.join(missing)}")
        return value

    @property
    def api_base(self) -> str:
        if self.api_base_url:
            return self.api_base_url.rstrip("/")
        return "https://qyapi.weixin.qq.com" if self.kind == "wecom" else "https://api.weixin.qq.com"


class WeChatGroupConfig(_Section):
    """WeChat groups: a WeCom intelligent robot (智能机器人) answers @mentions or keywords in group chats;
    proactive group messages go through the group robot webhook."""

    enabled: bool = False
    token: str = ""  # the intelligent robot's callback Token
    encoding_aes_key: str = Field("", validate_default=True)  # ... and its EncodingAESKey (always encrypted)
    bot_names: tuple[str, ...] = ("客服",)  # "@客服" addresses the bot
    keywords: tuple[str, ...] = ()
    reply_deadline_s: float = Field(0.4, gt=0, lt=5)  # passive reply within this, else through response_url
    max_clock_skew_s: int = Field(300, ge=1)
    robot_webhook_url: str = ""  # group robot webhook (contains its key: use ${ENV_VAR})
    robot_messages_per_minute: int = Field(20, ge=1)
    api_timeout_s: float = Field(5.0, gt=0)

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: str, info: Any) -> str:
        if info.data.get("enabled") and not (value and info.data.get("token")):
            raise ValueError("an enabled wechat_group channel needs token and encoding_aes_key")
        return WeChatConfig.check_aes_key(value)


class MiniProgramConfig(_Section):
    """Mini-program customer-service messages."""

    enabled: bool = False
    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    encoding_aes_key: str = Field("", validate_default=True)  # empty: plaintext mode; set: safe (AES) mode
    api_base_url: str = "https://api.weixin.qq.com"
    # Replies always go through the send API; the callback waits this long to learn whether the turn ran.
    reply_deadline_s: float = Field(0.4, gt=0, lt=5)
    max_clock_skew_s: int = Field(300, ge=1)
    api_timeout_s: float = Field(5.0, gt=0)
    product_page_path: str = "pages/product/index?id={product_id}"  # product cards open this page
    card_thumb_media_id: str = ""  # thumbnail of page cards; empty: cards are sent as links or text

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: str, info: Any) -> str:
        if info.data.get("enabled"):
            missing = [k for k in ("token", "app_id") if not info.data.get(k)]
            if missing:
                raise ValueError(f"an enabled miniprogram channel needs {', '.join(missing)}")
        return WeChatConfig.check_aes_key(value)


class TelegramConfig(_Section):
    """A Telegram bot (python-telegram-bot): updates by webhook or by long polling."""

    enabled: bool = False
    token: str = Field("", validate_default=True)  # from @BotFather
    mode: Literal["webhook", "polling"] = "webhook"
    # Checked (in constant time) against X-Telegram-Bot-Api-Secret-Token on POST /telegram/webhook.
    webhook_secret: str = Field("", validate_default=True)
    # Empty: register the webhook yourself (setWebhook with the same secret_token); set: the hub calls
    # setWebhook with this public https URL (ending in /telegram/webhook) each time it starts.
    webhook_url: str = ""
    bot_username: str = ""  # without @; used to see mentions in groups (empty: asked from getMe at start)
    api_base_url: str = "https://api.telegram.org/bot"
    poll_timeout_s: int = Field(30, ge=1, le=50)  # polling mode: how long one getUpdates call waits
    per_chat_per_second: float = Field(1.0, gt=0)
    per_group_per_minute: int = Field(20, ge=1)
    global_per_second: int = Field(30, ge=1)

    @field_validator("token")
    @classmethod
    def _token_when_enabled(cls, value: str, info: Any) -> str:  # pydantic ValidationInfo
        if info.data.get("enabled") and not value:
            raise ValueError("an enabled Telegram channel needs the bot token from @BotFather")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_for_webhooks(cls, value: str, info: Any) -> str:  # pydantic ValidationInfo
        # Without a secret anyone who finds the URL could post forged updates.
        if info.data.get("enabled") and info.data.get("mode") == "webhook" and not value:
            raise ValueError("webhook mode needs webhook_secret: 1-256 letters, digits, _ or -")
        return value

    @field_validator("bot_username")
    @classmethod
    def _without_at(cls, value: str) -> str:
        return value.strip().removeprefix("@")


class ChannelsConfig(_Section):
    web: WebChannelConfig = WebChannelConfig()
    wechat: WeChatConfig = WeChatConfig()
    wechat_group: WeChatGroupConfig = WeChatGroupConfig()
    miniprogram: MiniProgramConfig = MiniProgramConfig()
    telegram: TelegramConfig = TelegramConfig()


class AdminConfig(_Section):
    token: str = ""


_AGENT_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class AgentsConfig(_Section):
    """Human agents and their console (/console)."""

    # agent id -> sign-in token; an empty token (an unset ${VAR:-}) leaves that agent out
    tokens: dict[str, str] = {}
    idle_release_s: float = Field(600.0, gt=0)  # a held conversation quiet this long goes back to the bot
    queue_timeout_s: float = Field(900.0, gt=0)  # a queued conversation nobody claimed goes back to the bot
    sweep_interval_s: float = Field(15.0, gt=0)  # how often each hub process looks for idle conversations
    cookie_secure: bool = False  # set on HTTPS deployments: the sign-in cookie is then sent over HTTPS only

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, value: dict[str, str]) -> dict[str, str]:
        for agent, token in value.items():
            if not _AGENT_ID.match(agent):
                raise ValueError(f"agent id {agent!r}: 1-64 letters, digits, _ . or -")
            if token and len(token) < 16:
                raise ValueError(f"the token of {agent!r} is too short: use at least 16 random characters")
        live = [t for t in value.values() if t]
        if len(set(live)) != len(live):
            raise ValueError("two agents share a token")
        return {agent: token for agent, token in value.items() if token}


class EscalationConfig(_Section):
    """When the bot hands a conversation to a human (besides the human_agent and complaint intents)."""

    emotion_threshold: float = Field(0.6, gt=0.0, le=1.0)  # negative emotion (core.emotion) at or above this
    low_confidence_turns: int = Field(2, ge=0)  # unanswerable messages in a row (offline mode); 0: never
    vip_spend: float = Field(10_000.0, ge=0)  # lifetime spend (shop currency) from which a shopper is VIP
    vip_users: tuple[str, ...] = ()  # store user ids that are VIP whatever they spent


class Config(_Section):
    server: ServerConfig = ServerConfig()
    shop: ShopConfig = ShopConfig()
    redis: RedisConfig = RedisConfig()
    sessions: SessionsConfig = SessionsConfig()
    messages: MessagesConfig = MessagesConfig()
    nlu: NluConfig = NluConfig()
    llm: LlmConfig = LlmConfig()
    demo_store: DemoStoreConfig = DemoStoreConfig()
    channels: ChannelsConfig = ChannelsConfig()
    admin: AdminConfig = AdminConfig()
    agents: AgentsConfig = AgentsConfig()
    escalation: EscalationConfig = EscalationConfig()
    pushes: PushesConfig = PushesConfig()  # proactive pushes (core.push.config)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_turn_events: bool = False  # one "kefu.events" line per turn, for analytics pipelines
    # Where relative paths in this file are resolved from: the file's folder.
    base_dir: Path = PROJECT_ROOT

    def resolve_path(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (self.base_dir / p).resolve()


def _expand_env(value: Any, env: Mapping[str, str], path: str, source: str) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{source}: {path}: environment variable {name} is not set "
                f"(write ${{{name}:-}} to make it optional)"
            )

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, env, f"{path}.{k}" if path else str(k), source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, env, f"{path}[{i}]", source) for i, v in enumerate(value)]
    return value


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    return f"{where}: {error['msg'].lower()}, got {error.get('input')!r}"


def parse_config(
    data: Mapping[str, Any] | None,
    env: Mapping[str, str] | None = None,
    source: str = "<config>",
    base_dir: Path = PROJECT_ROOT,
) -> Config:
    """Validate a config mapping; `env` fills `${VAR}` references and `REDIS_URL`."""
    env = os.environ if env is None else env
    raw = _expand_env(dict(data or {}), env, "", source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    if env.get("REDIS_URL") and not (raw.get("redis") or {}).get("url"):
        raw.setdefault("redis", {})
        raw["redis"] = {**raw["redis"], "url": env["REDIS_URL"]}
    raw["base_dir"] = base_dir
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  {_describe(e)}" for e in exc.errors())
        raise ConfigError(f"{source}: invalid configuration:\n{problems}") from None


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Config:
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return parse_config(data, env=env, source=str(path), base_dir=path.resolve().parent)
