"""Render a reply for what a channel can show: degrade, never drop."""

from __future__ import annotations

from dataclasses import replace

from core.message import Capabilities, Reply


def render(reply: Reply, caps: Capabilities) -> Reply:
    """Fold what the channel lacks into text: buttons become numbered options, cards a line."""
    text = reply.text
    buttons = reply.buttons
    card = reply.card
    if card is not None and not caps.cards:
        line = " ".join(part for part in (card.title, card.price, card.url) if part)
        text = f"{text}\n{line}" if text else line
        card = None
    if buttons and not caps.buttons:
        options = "\n".join(f"{i}. {b.title}" for i, b in enumerate(buttons, start=1))
        text = f"{text}\n{options}" if text else options
        buttons = ()
    image = reply.image
    if image is not None and not caps.images:
        if image.url:
            text = f"{text}\n{image.url}" if text else image.url
        image = None
    if text is reply.text and buttons is reply.buttons and card is reply.card and image is reply.image:
        return reply  # nothing to fold: the channel shows it as it is
    return replace(reply, text=text, buttons=buttons, card=card, image=image)
