"""Phone numbers of the demo store's users (core/data/phones.yaml): our data, the demo store has none.

Chinese shoppers often name an order by the last 4 digits of their phone ("尾号6236的订单"). Four digits
identify no one: a tail is only ever checked against the signed-in shopper's own numbers, never used to
find a shopper (`PhoneBook.owns_tail`).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import yaml

from core.config import PROJECT_ROOT

BUNDLED = PROJECT_ROOT / "core" / "data" / "phones.yaml"


def digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


class PhoneBook:
    def __init__(self, phones: dict[str, tuple[str, ...]]) -> None:
        self._phones = {user: tuple(digits(p) for p in numbers) for user, numbers in phones.items()}

    @classmethod
    def load(cls, path: Path = BUNDLED) -> PhoneBook:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        phones = {str(user): tuple(str(p) for p in (v if isinstance(v, list) else [v]))
                  for user, v in (data.get("phones") or {}).items()}
        return cls(phones)

    def phones_of(self, user_id: str) -> tuple[str, ...]:
        return self._phones.get(user_id, ())

    def owns_tail(self, user_id: str, tail: str) -> bool:
        """Whether one of this user's numbers ends in `tail` (4 digits)."""
        tail = digits(tail)
        return len(tail) == 4 and any(p.endswith(tail) for p in self.phones_of(user_id))


@cache
def phone_book(path: Path = BUNDLED) -> PhoneBook:
    """The phone book in `path`, read once per process."""
    return PhoneBook.load(path)
