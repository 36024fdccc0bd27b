"""Personal data never reaches the logs in clear."""

from __future__ import annotations

import logging

import pytest

from core.logs import MaskingFilter, mask


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("call 13800138000 now", "call 138****8000 now"),
        ("mail James.Li@example.com", "mail J***@example.com"),
        ("intl +44 20 7946 0958", "intl +***58"),
        ("redis://:s3cret@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
        ("order #W2611340 shipped", "order #W2611340 shipped"),
        (
            "POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
            "POST https://api.telegram.org/bot<bot-token>/sendMessage",
        ),
        (
            "GET /cgi-bin/message/custom/send?access_token=ACCESS123&x=1",
            "GET /cgi-bin/message/custom/send?access_token=***&x=1",
        ),
        ("rasa /model/parse?token=abcdef", "rasa /model/parse?token=***"),
    ],
)
def test_mask(raw: str, masked: str) -> None:
    assert mask(raw) == masked


def test_the_filter_masks_formatted_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("kefu.test-mask")
    logger.addFilter(MaskingFilter())
    with caplog.at_level(logging.INFO, logger="kefu.test-mask"):
        logger.info("shopper %s wrote from %s", "13912345678", "ann@example.org")
    assert caplog.messages == ["shopper 139****5678 wrote from a***@example.org"]
