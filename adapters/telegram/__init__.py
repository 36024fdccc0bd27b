"""Telegram channel: python-telegram-bot's Bot and Update types, webhook or polling, a rate-limited queue."""

from adapters.telegram.adapter import TelegramAdapter

__all__ = ["TelegramAdapter"]
