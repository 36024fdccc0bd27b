"""Whether a text names another business, given the other_business patterns.

Shared by kefu_scope.OtherBusinessGate and tests/test_nlu_data.py, so it imports
nothing from Rasa (the hub's environment has none).
"""
from __future__ import annotations

import re
from collections.abc import Iterable

# wallets and carrier billing named after a telecom or a platform: STC Pay, 楽天ペイ, Vodafone Cash, MTN MoMo
PAYMENT_WORD_AFTER = re.compile(
    r"\s*(?:pay|ペイ|払い|支付|白条|باي|كاش|cash|money|momo|wallet|محفظة)", re.IGNORECASE
)


def names_another_business(text: str, patterns: Iterable[re.Pattern[str]]) -> bool:
    """A name followed by a payment word is a way to pay us ("اس تي سي باي"), not another business."""
    return any(
        not PAYMENT_WORD_AFTER.match(text, m.end()) for p in patterns for m in p.finditer(text)
    )
