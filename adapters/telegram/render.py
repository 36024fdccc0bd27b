"""Replies out, in Telegram's form: text split under 4,096 characters at sentence boundaries, buttons as an
inline keyboard, images as photos, product cards as a photo with a caption and a link button.

Pure functions: nothing here talks to the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from core.message import Button, ProductCard, Reply

TEXT_LIMIT = 4096  # sendMessage text, in UTF-16 code units (how Telegram counts)
CAPTION_LIMIT = 1024  # sendPhoto caption
CALLBACK_DATA_BYTES = 64
# callback_data that starts with this mark carries the button's title, not its payload (the payload was too
# long for 64 bytes). An invisible separator: no real payload starts with it.
TITLE_MARK = "\u2063"
BUTTONS_ONLY_TEXT = "👇"  # Telegram needs some text under a keyboard

# A sentence ends at . ! ? … followed by whitespace (closing quotes and brackets stay with it), at CJK
# full stops (no space follows them), or at a line break.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*\s+|[。！？]+[”’」』）)]*\s*|\n+")
_SPACE = re.compile(r"\s")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One Bot API call: sendPhoto when `photo` is set (with `text` as caption), else sendMessage."""

    text: str = ""
    photo: str | None = None  # an http(s) URL or a Telegram file_id
    keyboard: InlineKeyboardMarkup | None = None
    reply_to: int | None = None  # the shopper's message this one quotes (groups)
    fallback: Outgoing | None = None  # sent instead if Telegram refuses this one (e.g. an image it can't fetch)

    @property
    def method(self) -> str:
        return "sendPhoto" if self.photo else "sendMessage"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _prefix_within(text: str, limit: int) -> int:
    """The longest prefix of `text` (in code points) that is at most `limit` UTF-16 units."""
    if utf16_len(text) <= limit:
        return len(text)
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def sentences(text: str) -> list[str]:
    """`text` cut after each sentence end; joining the pieces gives `text` back."""
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _cut_long(piece: str, limit: int) -> list[str]:
    """A single sentence longer than a message: cut at the last space that fits, else anywhere."""
    parts = []
    while utf16_len(piece) > limit:
        end = _prefix_within(piece, limit)
        space = max((m.start() for m in _SPACE.finditer(piece, 0, end)), default=-1)
        cut = space + 1 if space > end // 2 else end
        parts.append(piece[:cut].rstrip())
        piece = piece[cut:].lstrip()
    parts.append(piece)
    return parts


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Messages of at most `limit` UTF-16 units each, cut at sentence boundaries where possible."""
    text = text.strip()
    if utf16_len(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    current, current_len = "", 0
    for piece in sentences(text):
        size = utf16_len(piece)
        if current_len + size <= limit:
            current, current_len = current + piece, current_len + size
            continue
        if current.strip():
            chunks.append(current.strip())
        current, current_len = "", 0
        if size > limit:
            *whole, piece = _cut_long(piece, limit)
            chunks.extend(part for part in whole if part)
            size = utf16_len(piece)
        current, current_len = piece, size
    if current.strip():
        chunks.append(current.strip())
    return chunks


def _fit_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")[:limit]
    return data.decode("utf-8", "ignore")


def callback_data(button: Button) -> str:
    """The payload itself when it fits in 64 bytes; otherwise the mark and the title (as much as fits).

    Either way the data alone says what the shopper chose, so any hub process can handle the press:
    nothing is kept in memory or in a store.
    """
    payload = button.payload
    if payload and len(payload.encode("utf-8")) <= CALLBACK_DATA_BYTES and not payload.startswith(TITLE_MARK):
        return payload
    return TITLE_MARK + _fit_bytes(button.title, CALLBACK_DATA_BYTES - len(TITLE_MARK.encode("utf-8")))


def text_of_callback(data: str) -> str:
    """What a pressed button means as the shopper's text."""
    return data.removeprefix(TITLE_MARK).strip()


def _is_web_url(url: str | None) -> bool:
    return bool(url) and url.lower().startswith(("https://", "http://"))  # type: ignore[union-attr]


def keyboard(buttons: tuple[Button, ...], link: tuple[str, str] | None = None) -> InlineKeyboardMarkup | None:
    """One button per row (titles can be long); a URL button first when there is a link."""
    rows: list[list[InlineKeyboardButton]] = []
    if link is not None:
        rows.append([InlineKeyboardButton(link[0], url=link[1])])
    rows.extend([InlineKeyboardButton(b.title, callback_data=callback_data(b))] for b in buttons)
    return InlineKeyboardMarkup(rows) if rows else None


def card_lines(card: ProductCard) -> str:
    return "\n".join(part for part in (card.title, card.price, card.description) if part)


def _texts(text: str, markup: InlineKeyboardMarkup | None, reply_to: int | None) -> list[Outgoing]:
    """sendMessage calls for `text`; the keyboard goes under the last one."""
    chunks = split_text(text) or ([BUTTONS_ONLY_TEXT] if markup is not None else [])
    last = len(chunks) - 1
    return [
        Outgoing(chunk, keyboard=markup if i == last else None, reply_to=reply_to if i == 0 else None)
        for i, chunk in enumerate(chunks)
    ]


def _photo(photo: str, caption: str, markup: InlineKeyboardMarkup | None, reply_to: int | None) -> list[Outgoing]:
    """A photo with its caption; a caption too long for one goes first as text. If Telegram refuses the
    photo, the caption and the image's link are sent as text instead."""
    out: list[Outgoing] = []
    if utf16_len(caption) > CAPTION_LIMIT:
        out.extend(_texts(caption, None, reply_to))
        caption, reply_to = "", None
    link = photo if _is_web_url(photo) else ""
    fallback_text = "\n".join(part for part in (caption, link) if part) or BUTTONS_ONLY_TEXT
    fallback = Outgoing(fallback_text, keyboard=markup, reply_to=reply_to)
    out.append(Outgoing(caption, photo=photo, keyboard=markup, reply_to=reply_to, fallback=fallback))
    return out


def render_reply(reply: Reply, reply_to: int | None = None) -> list[Outgoing]:
    """The Bot API calls that show `reply` (its stream, if any, already collected).

    text only            -> sendMessage, split at sentence boundaries under 4,096 characters
    buttons              -> an inline keyboard under the last message
    image                -> sendPhoto, the text as caption when it fits in 1,024 characters
    product card         -> sendPhoto of the card's image, caption title/price/description, a URL button;
                            without an image, the same as text with the URL button
    """
    text = reply.final_text.strip()
    card = reply.card
    link = None
    if card is not None:
        if _is_web_url(card.url):
            link = ("🛒 " + card.title, str(card.url))
        lines = card_lines(card) if link else "\n".join(p for p in (card_lines(card), card.url) if p)
        text = f"{text}\n\n{lines}" if text else lines
    markup = keyboard(reply.buttons, link)
    out: list[Outgoing] = []
    image = (reply.image.url or reply.image.media_id) if reply.image is not None else None
    card_image = card.image_url if card is not None else None
    if image and card_image:
        out.extend(_photo(image, "", None, reply_to))
        reply_to = None
    photo = card_image or image
    if photo:
        out.extend(_photo(photo, text, markup, reply_to))
    else:
        out.extend(_texts(text, markup, reply_to))
    return out
