"""Telegram updates in: parse (leniently), decide what each one asks of the hub, build the `Message`.

Each update becomes an `Inbound`: a turn for the engine (`message`), calls to make first (answer a
callback query, decline a payment query), or only an acknowledgement. `kind` names the case in logs.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import orjson
from telegram import Chat as TgChat
from telegram import Message as TgMessage
from telegram import MessageEntity, Update
from telegram.helpers import effective_message_type

from adapters.telegram.render import text_of_callback
from core.message import (
    Attachment,
    AttachmentKind,
    ChannelUser,
    Chat,
    ChatKind,
    EventKind,
    Location,
    Message,
)

CHANNEL = "telegram"
_GROUPS = (TgChat.GROUP, TgChat.SUPERGROUP)
_SPACES = re.compile(r"[ \t]{2,}")


class NotAnUpdate(ValueError):
    """The body is not a Telegram update at all: a 4xx, and nothing else happens."""


@dataclass(slots=True)
class Inbound:
    update_id: int
    kind: str  # e.g. "message.text", "message.group.not_addressed", "callback_query", "edited_message"
    message: Message | None = None  # a turn for the engine
    chat_id: int | None = None  # where that turn's replies go
    reply_to: int | None = None  # in groups: the shopper's message the answer quotes
    callback_query_id: str | None = None  # answered before the turn, so the button stops spinning
    pre_checkout_query_id: str | None = None  # declined: this bot takes no payments
    shipping_query_id: str | None = None  # declined, likewise
    migrate: tuple[int, int] | None = None  # a group became a supergroup: (old id, new id)

    @property
    def order_key(self) -> str:
        """Updates with the same key are handled in order (one chat); others may run side by side."""
        if self.chat_id is not None:
            return f"chat:{self.chat_id}"
        return f"update:{self.update_id}"


def bot_id_from_token(token: str) -> int | None:
    head = token.partition(":")[0]
    return int(head) if head.isdigit() else None


def load_update_json(body: bytes) -> tuple[int, dict[str, Any]]:
    """The update's id and JSON object; NotAnUpdate if the body isn't one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NotAnUpdate("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise NotAnUpdate("the body is not a JSON object")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
        raise NotAnUpdate("the body has no update_id")
    return update_id, data


def parse_update(data: dict[str, Any]) -> Update | None:
    """PTB's Update, or None if even a repaired copy can't be one.

    Older Bot API payloads lack fields PTB 22 requires (is_bot, file_unique_id, a sticker's type ...);
    when the strict parse fails, those are filled in with their documented defaults and it is tried again.
    """
    try:
        return Update.de_json(data, None)
    except Exception:
        pass
    try:
        return Update.de_json(repair_legacy(copy.deepcopy(data)), None)
    except Exception:
        return None


_USER_KEYS = frozenset({"from", "forward_from", "user", "via_bot", "sender_business_bot"})
_CHAT_KEYS = frozenset({"chat", "forward_from_chat", "sender_chat"})


def repair_legacy(node: Any, key: str | None = None) -> Any:
    """Fill fields older Bot API versions didn't send with what they mean (in place)."""
    if isinstance(node, list):
        for item in node:
            repair_legacy(item, key)
        return node
    if not isinstance(node, dict):
        return node
    if key in _USER_KEYS:
        flag = node.get("is_bot", False)
        node["is_bot"] = flag.strip().lower() == "true" if isinstance(flag, str) else bool(flag)
        node.setdefault("first_name", node.get("title") or node.get("username") or "")
    if key in _CHAT_KEYS and "type" not in node and isinstance(node.get("id"), int):
        chat_id = node["id"]
        node["type"] = "private" if chat_id > 0 else ("supergroup" if str(chat_id).startswith("-100") else "group")
    if "file_id" in node:
        node.setdefault("file_unique_id", node["file_id"])
    if key == "sticker":
        node.setdefault("type", "regular")
        node.setdefault("is_animated", False)
        node.setdefault("is_video", False)
    if key in ("animation", "video"):
        for field in ("width", "height", "duration"):
            node.setdefault(field, 0)
    if key == "dice":
        node.setdefault("emoji", "🎲")
    if key == "callback_query":
        node.setdefault("chat_instance", "")
    for child_key, child in node.items():
        repair_legacy(child, child_key)
    return node


def _strip_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` without the entity spans (Telegram gives offsets in UTF-16 units)."""
    if not spans:
        return text
    units = text.encode("utf-16-le")
    for offset, length in sorted(spans, reverse=True):
        units = units[: 2 * offset] + units[2 * (offset + length) :]
    return _SPACES.sub(" ", units.decode("utf-16-le")).strip()


def _attachments(msg: TgMessage) -> tuple[Attachment, ...]:
    found = []
    if msg.photo:
        found.append(Attachment(AttachmentKind.IMAGE, media_id=msg.photo[-1].file_id, mime_type="image/jpeg"))
    if msg.sticker:
        found.append(Attachment(AttachmentKind.IMAGE, media_id=msg.sticker.file_id, name=msg.sticker.emoji))
    if msg.voice:
        found.append(Attachment(AttachmentKind.VOICE, media_id=msg.voice.file_id, mime_type=msg.voice.mime_type))
    for video in (msg.video, msg.video_note, msg.animation):
        if video:
            found.append(Attachment(AttachmentKind.VIDEO, media_id=video.file_id,
                                    mime_type=getattr(video, "mime_type", None)))
    if msg.audio:
        found.append(Attachment(AttachmentKind.FILE, media_id=msg.audio.file_id, mime_type=msg.audio.mime_type,
                                name=msg.audio.file_name or msg.audio.title))
    if msg.document and not msg.animation:
        found.append(Attachment(AttachmentKind.FILE, media_id=msg.document.file_id,
                                mime_type=msg.document.mime_type, name=msg.document.file_name))
    return tuple(found)


def _location(msg: TgMessage) -> Location | None:
    if msg.venue is not None:
        venue = msg.venue
        label = ", ".join(part for part in (venue.title, venue.address) if part) or None
        return Location(venue.location.latitude, venue.location.longitude, label)
    if msg.location is not None:
        return Location(msg.location.latitude, msg.location.longitude)
    return None


class UpdateReader:
    """Turns PTB `Update`s into `Inbound`s. Knows the bot's id and username, for groups."""

    def __init__(self, bot_id: int | None, username: str) -> None:
        self.bot_id = bot_id
        self.username = username.lower()
        # dedup keys are "<bot id>:<update id>": update ids are unique per bot
        self._key = str(bot_id or 0)

    def learn(self, bot_id: int, username: str | None) -> None:
        """What getMe said, for what the config left out."""
        if self.bot_id is None:
            self.bot_id = bot_id
        if not self.username and username:
            self.username = username.lower()

    def read_body(self, body: bytes) -> Inbound:
        """A webhook body: NotAnUpdate if it isn't one; an acknowledgement only if PTB can't read it."""
        update_id, data = load_update_json(body)
        update = parse_update(data)
        if update is None:
            return Inbound(update_id, "unreadable")
        return self.read(update)

    def read(self, update: Update) -> Inbound:
        uid = update.update_id
        try:
            if update.message is not None:
                return self._message(uid, update.message)
            if update.callback_query is not None:
                return self._callback(update)
            if update.edited_message is not None:
                return self._edited(uid, update.edited_message)
        except ValueError as exc:  # e.g. a location out of range
            return Inbound(uid, f"invalid ({exc})")
        if update.pre_checkout_query is not None:
            return Inbound(uid, "pre_checkout_query", pre_checkout_query_id=update.pre_checkout_query.id)
        if update.shipping_query is not None:
            return Inbound(uid, "shipping_query", shipping_query_id=update.shipping_query.id)
        kind = next((str(t) for t in Update.ALL_TYPES if getattr(update, str(t), None) is not None), "unknown")
        return Inbound(uid, kind)

    def _platform_id(self, update_id: int) -> str:
        return f"{self._key}:{update_id}"

    def _message(self, uid: int, msg: TgMessage) -> Inbound:
        chat = msg.chat
        if msg.migrate_to_chat_id:
            return Inbound(uid, "message.migrate_to_chat_id", migrate=(chat.id, msg.migrate_to_chat_id))
        user = msg.from_user
        if chat.type == TgChat.CHANNEL or user is None or msg.sender_chat is not None:
            return Inbound(uid, "message.on_behalf_of_a_chat")
        if user.is_bot is True:  # `is True`: old payloads carry the string "False"
            return Inbound(uid, "message.from_a_bot")
        content = effective_message_type(msg) or "other"
        group = chat.type in _GROUPS
        text = msg.text or msg.caption or ""
        if group:
            addressed, text = self._addressed(msg, text)
            if not addressed:
                return Inbound(uid, f"message.{content}.group_not_addressed")
        event = None
        if text.startswith("/"):
            command, text, for_us = self._command(text)
            if not for_us:
                return Inbound(uid, "message.command_for_another_bot")
            if command == "start":
                event = EventKind.SUBSCRIBE
        attachments = _attachments(msg)
        location = _location(msg)
        phone = None
        if msg.contact is not None:
            # Only a contact the shopper shared of themself proves the number is theirs.
            if msg.contact.user_id != user.id:
                return Inbound(uid, "message.contact.someone_else")
            phone = msg.contact.phone_number
        if not (text or attachments or location or phone or event):
            return Inbound(uid, f"message.{content}")
        platform_id = self._platform_id(uid)
        if msg.media_group_id and not text:
            # An album arrives as one update per item: its items without text get one answer between them.
            platform_id = f"{self._key}:album:{msg.media_group_id}"
        message = Message(
            user=ChannelUser(CHANNEL, str(user.id), user.full_name or None),
            chat=Chat(ChatKind.GROUP if group else ChatKind.DIRECT, str(chat.id)),
            text=text,
            attachments=attachments,
            location=location,
            platform_message_id=platform_id,
            locale_hint=user.language_code,
            event=event,
            verified_phone=phone,
        )
        if msg.date is not None and msg.date.timestamp() > 0:
            message.timestamp = msg.date.timestamp()
        return Inbound(uid, f"message.{content}", message, chat_id=chat.id,
                       reply_to=msg.message_id if group else None)

    def _addressed(self, msg: TgMessage, text: str) -> tuple[bool, str]:
        """In a group: is the bot @mentioned, commanded or replied to? And the text without the mention."""
        entities = msg.parse_entities() if msg.text else msg.parse_caption_entities()
        addressed, spans = False, []
        for entity, value in entities.items():
            if self._names_me(entity, value):
                addressed = True
                spans.append((entity.offset, entity.length))
            elif entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
                target = value.partition("@")[2].lower()
                addressed = addressed or not target or target == self.username
        replied = msg.reply_to_message
        if replied is not None and replied.from_user is not None and replied.from_user.id == self.bot_id:
            addressed = True
        text = _strip_spans(text, spans)
        if not addressed and self.username and not entities:
            # A message without entities (not from Telegram's clients): look for the mention in the text.
            mention = re.compile(rf"(?<!\w)@{re.escape(self.username)}(?!\w)", re.IGNORECASE)
            if mention.search(text):
                addressed, text = True, _SPACES.sub(" ", mention.sub("", text)).strip()
        return addressed, text

    def _names_me(self, entity: MessageEntity, value: str) -> bool:
        if entity.type == MessageEntity.MENTION:
            return bool(self.username) and value[1:].lower() == self.username
        if entity.type == MessageEntity.TEXT_MENTION:
            return entity.user is not None and entity.user.id == self.bot_id
        return False

    def _command(self, text: str) -> tuple[str, str, bool]:
        """"/order@kefu_bot W123" -> ("order", "order W123", True). /start means the shopper said hello."""
        head, _, rest = text.partition(" ")
        name, _, target = head[1:].partition("@")
        for_us = not target or target.lower() == self.username
        if name.lower() == "start":
            return "start", "", for_us
        return name.lower(), f"{name} {rest}".strip(), for_us

    def _callback(self, update: Update) -> Inbound:
        query = update.callback_query
        assert query is not None
        uid, user = update.update_id, query.from_user
        text = text_of_callback(query.data) if isinstance(query.data, str) else ""
        if not text:  # a game button, or empty data: nothing to say
            return Inbound(uid, "callback_query.without_data", callback_query_id=query.id)
        chat = query.message.chat if query.message is not None else None
        if chat is None or chat.type == TgChat.CHANNEL:
            # A button on an inline message or a channel post: answer the shopper in private.
            chat_id, kind = user.id, ChatKind.DIRECT
        else:
            chat_id, kind = chat.id, (ChatKind.GROUP if chat.type in _GROUPS else ChatKind.DIRECT)
        message = Message(
            user=ChannelUser(CHANNEL, str(user.id), user.full_name or None),
            chat=Chat(kind, str(chat_id)),
            text=text,
            platform_message_id=self._platform_id(uid),
            locale_hint=user.language_code,
        )
        return Inbound(uid, "callback_query", message, chat_id=chat_id, callback_query_id=query.id)

    def _edited(self, uid: int, msg: TgMessage) -> Inbound:
        """Edits are not answered again; a live location moving in a private chat is kept, silently."""
        user = msg.from_user
        if msg.location is not None and msg.chat.type == TgChat.PRIVATE and user is not None:
            message = Message(
                user=ChannelUser(CHANNEL, str(user.id), user.full_name or None),
                chat=Chat(ChatKind.DIRECT, str(msg.chat.id)),
                location=Location(msg.location.latitude, msg.location.longitude),
                platform_message_id=self._platform_id(uid),
                locale_hint=user.language_code,
                event=EventKind.LOCATION,
            )
            return Inbound(uid, "edited_message.live_location", message, chat_id=msg.chat.id)
        return Inbound(uid, "edited_message")
