"""Payment-failure diagnosis: the shopper's words (zh, en, ja, ar) and any error code, to a cause, its
explanation and the fix. A question about how one can pay ("能用京东支付吗", "do you take PayPal?") with no
failure in it gets the methods the shop takes (shop.payment_methods).

An error code the shopper quotes decides on its own (bank ISO 8583 response codes such as 51 or 54, and
payment-gateway codes such as NOTENOUGH); otherwise the cause whose keywords match most often wins, ties
going to the earlier row of the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.locale import N_
from core.message import Reply
from core.skills import flow
from core.skills.base import SkillContext


@dataclass(frozen=True, slots=True)
class Cause:
    id: str
    keywords: re.Pattern[str]  # zh | en | ja | ar
    codes: frozenset[str]  # upper case
    explanation: str  # msgid
    fix: str  # msgid


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.I)


# fmt: off
CAUSES: tuple[Cause, ...] = (
    Cause("card_limit",
          _words(r"限额|额度|超限|超过.{0,4}限|单笔|日累计", r"\blimit|exceed", r"限度額|上限|利用枠", r"الحد|تجاوز"),
          frozenset({"61", "65", "EXCEED_LIMIT", "CARD_LIMIT_EXCEEDED", "DAY_LIMIT_EXCEEDED"}),
          N_("The payment is above your card's single or daily limit."),
          N_("Raise the limit in your bank's app, split the payment, or pay with another card or wallet.")),
    Cause("insufficient_balance",
          _words(r"余额不足|余额|钱不够|资金不足", r"insufficient|not enough (?:money|funds|balance)|balance",
                 r"残高", r"رصيد|الرصيد"),
          frozenset({"51", "NOTENOUGH", "INSUFFICIENT_FUNDS", "BALANCE_NOT_ENOUGH"}),
          N_("The account or card doesn't have enough balance for this payment."),
          N_("Top up the account or choose another payment method, then pay again.")),
    Cause("network_timeout",
          _words(r"超时|网络|转圈|没反应|断网|卡住", r"time ?out|timed out|network|connection|spinning|loading",
                 r"タイムアウト|通信|ネットワーク|接続", r"مهلة|الشبكة|الاتصال|انقطاع"),
          frozenset({"408", "504", "ETIMEDOUT", "TIMEOUT", "NETWORK_ERROR"}),
          N_("The connection timed out before the payment was confirmed."),
          N_("Check your network and pay again; if you were charged, the amount is confirmed or returned "
             "automatically within 24 hours, so there is no need to pay twice.")),
    Cause("risk_control",
          _words(r"风控|风险|异常交易|拦截|安全验证|冻结", r"risk|fraud|suspicious|blocked|security check",
                 r"不正|セキュリティ|リスク|ブロック", r"احتيال|مشبوه|محظور|أمان"),
          frozenset({"59", "RISK_CONTROL", "FRAUD_SUSPECTED", "TRADE_RISK"}),
          N_("The bank's or the payment platform's risk control stopped the payment as unusual."),
          N_("Complete the security check in your bank's or wallet's app, or call the number on your card "
             "to approve it, then pay again.")),
    Cause("expired_card",
          _words(r"过期|到期|失效|有效期", r"expired|expiry|expiration", r"有効期限|期限切れ", r"منتهية|انتهت صلاحية"),
          frozenset({"33", "54", "EXPIRED_CARD", "CARD_EXPIRED"}),
          N_("The card has expired or its expiry date was entered wrongly."),
          N_("Check the expiry date you entered, or pay with your new card.")),
    Cause("bank_maintenance",
          _words(r"维护|银行系统|系统升级", r"maintenance|bank (?:is )?down|bank system|issuer unavailable",
                 r"メンテナンス|システム停止", r"صيانة|البنك غير متاح"),
          frozenset({"91", "96", "BANKERROR", "BANK_MAINTENANCE", "ISSUER_UNAVAILABLE"}),
          N_("Your bank's system is under maintenance or temporarily unavailable."),
          N_("Try again in a while, or pay with another bank's card or a wallet balance.")),
)
# fmt: on

# Numeric codes count only next to a word for "code" (so an amount or an order number is never a code).
_NUMERIC_CODE = re.compile(r"(?:code|error|错误码|错误代码|代码|返回码|コード|エラー|رمز|خطأ)\D{0,6}(\d{2,3})(?!\d)",
                           re.I)
_WORD_CODE = re.compile(r"(?<![A-Za-z0-9_])([A-Z][A-Z_]{3,})(?![A-Za-z0-9_])")


def codes_in(text: str) -> set[str]:
    return {m.group(1) for m in _NUMERIC_CODE.finditer(text)} | {m.group(1) for m in _WORD_CODE.finditer(text)}


def diagnose(text: str) -> list[Cause]:
    """Causes that fit the text, most likely first: quoted error codes first, then by keyword hits."""
    codes = codes_in(text)
    scored = []
    for order, cause in enumerate(CAUSES):
        score = (10 if cause.codes & codes else 0) + len(cause.keywords.findall(text))
        if score:
            scored.append((-score, order, cause))
    return [cause for _, _, cause in sorted(scored, key=lambda s: (s[0], s[1]))]


# "can I pay with ...?": the words of a question about methods, and of a payment that went wrong
_ASKS_HOW_TO_PAY = _words(
    r"能用|可以用|能不能用|支持.{0,8}(?:付|支付)|哪些支付|什么支付|支付方式|付款方式",
    r"\bcan i (?:pay|use)\b|\bdo you (?:take|accept)\b|\baccept(?:ed)?\b|payment (?:methods?|options?)"
    r"|\bpay (?:with|by|using)\b",
    r"使え|対応して|払えます|支払い方法|決済方法|(?:支払い?|決済)(?:は|が|も)?できますか",
    r"تقبلون|تقبل|أقدر أدفع|ممكن أدفع|طرق الدفع|وسائل الدفع|هل يوجد دفع",
)
_WENT_WRONG = _words(
    r"失败|付不了|不成功|扣款|报错|错误|不了",
    r"fail|declin|error|didn'?t go through|not going through|won'?t go through|can'?t pay|cannot pay|charged"
    r"|doesn'?t work|not working",
    r"失敗|エラー|できな|通らな|引き落と|使えない|使えません",
    r"فشل|ما نجح|لم ينجح|لم تتم|خطأ|مرفوض|ما يرضى|انخصم|ما يشتغل|لا يعمل",
)
METHOD_NAMES = {"credit_card": N_("credit cards"), "paypal": N_("PayPal"), "gift_card": N_("gift cards")}


def asks_how_to_pay(text: str) -> bool:
    return bool(_ASKS_HOW_TO_PAY.search(text)) and not _WENT_WRONG.search(text) and not codes_in(text)


INTENT = "payment_issue"
# What marks a reply to "tell me the message or code" as one, whatever the NLU reads in it
_ANSWERS = "|".join([*(cause.keywords.pattern for cause in CAUSES), _NUMERIC_CODE.pattern])


async def payment_issue(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    flow.resume(ctx, INTENT)  # the message or code we asked for, if this is it
    causes = diagnose(ctx.text)
    if not causes and asks_how_to_pay(ctx.text):
        methods = t(", ").join(t(METHOD_NAMES[m]) if m in METHOD_NAMES else m for m in ctx.shop.payment_methods)
        return [Reply(text=t("We take {methods}: choose one at checkout. If a payment didn't go through, tell me the "
                             "message or error code you saw and I'll tell you what to do.", methods=methods))]
    if not causes:
        flow.ask(ctx, INTENT, "message", {}, answers=_ANSWERS)
        return [Reply(text=t("Sorry your payment didn't go through. The usual causes are a card limit, not enough "
                             "balance, a network timeout, risk control, an expired card or bank maintenance. Tell "
                             "me the message or error code you saw and I'll tell you which one it is and what to "
                             "do."))]
    top = causes[0]
    ctx.session.slots["payment_cause"] = top.id
    lines = [t(top.explanation), t(top.fix)]
    if len(causes) > 1:
        lines.append(t("If that's not it: {explanation}", explanation=t(causes[1].explanation)))
    return [Reply(text="\n".join(lines))]
