"""How much a locale pack adds to a turn: p50/p99 of shaping the turn's replies (never-use words, ja keigo
polish, the health-disclaimer check) per locale, plus checking a whole LLM answer; then how many bot
strings each catalog translates. Target: shaping <= 0.5 ms p99.

    .venv/bin/python scripts/bench_locale.py [--turns 20000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import ShopConfig  # noqa: E402
from core.i18n_tools import extract_template, po_path, read_catalog_file  # noqa: E402
from core.locale import Catalogs, Translator  # noqa: E402
from core.message import Button, Reply  # noqa: E402
from core.shaping import LlmCheck  # noqa: E402

TARGET_P99_MS = 0.5
QUESTIONS = {  # a plain question and a health one, per locale
    "zh-CN": ("我的订单到哪了", "这款益生菌孕妇可以吃吗"),
    "en": ("where is my order", "is this vitamin D supplement safe to take daily"),
    "ja": ("注文はどこまで届いていますか", "このコラーゲンサプリは毎日飲んでも大丈夫ですか"),
    "ar": ("أين طلبي", "هل مكمل فيتامين د آمن للاستخدام اليومي"),
}
LLM_ANSWER = {  # a typical LLM answer of ~200 characters
    "zh-CN": "您好，这款产品每天一粒即可，建议饭后服用。如果您正在服用其他药物，请先咨询医生。" * 2,
    "en": "Hello! Take one capsule a day with a meal. If you take other medicines, please ask your doctor first. " * 2,
    "ja": "お問い合わせいただき、ありがとうございます。1日1粒を目安に、お食事の後にお召し上がりください。" * 2,
    "ar": "مرحبًا بكم، يُنصح بتناول كبسولة واحدة يوميًا بعد الطعام، "
          "ويُرجى استشارة الطبيب إن كنتم تتناولون أدوية أخرى. " * 2,
}


def turn_replies(t: Translator) -> list[Reply]:
    """What a typical turn says: a greeting with quick replies and an order line."""
    return [
        Reply(text=t("Hello! I'm the {shop} assistant. I can check your orders, returns, promotions and sizes. "
                     "What can I do for you?", shop="kefu demo shop"),
              buttons=(Button(t("Where is my order?"), t("Where is my order?")),
                       Button(t("Talk to a human"), t("human please")))),
        Reply(text=t("Order {order_id}: {status}. Items: {items}. Total: {total}.", order_id="#W2611340",
                     status=t("shipped"), items="Water Bottle, Office Chair", total=t.money(536.65, "USD"))),
    ]


def measure(run: Callable[[], object], prepare: Callable[[], object] | None, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        arg = prepare() if prepare is not None else None
        start = time.perf_counter_ns()
        run() if arg is None else run(arg)  # type: ignore[call-arg]
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20000, help="shaped turns per locale and question")
    args = parser.parse_args()
    locales = ShopConfig.model_fields["locales"].default
    catalogs = Catalogs.load(ROOT / "locales", locales, "zh-CN")
    gc.collect()
    gc.freeze()  # as the hub does after start (core.app.serve)

    print(f"shaping a turn's replies with its pack ({args.turns} turns per row), ms")
    print(f"{'locale':8}{'question':10}{'p50':>9}{'p99':>9}{'max':>9}")
    worst = 0.0
    everything: list[float] = []
    for locale in locales:
        t = Translator(catalogs, locale)
        pack = t.pack
        assert pack is not None
        for kind, question in zip(("plain", "health"), QUESTIONS[locale], strict=True):
            samples = measure(lambda replies, q=question, p=pack: catalogs.shaper.shape(p, replies, q),
                              lambda tr=t: turn_replies(tr), args.turns)
            everything += samples
            worst = max(worst, pct(samples, 0.99))
            print(f"{locale:8}{kind:10}{statistics.median(samples):9.4f}{pct(samples, 0.99):9.4f}{max(samples):9.3f}")
    print(f"{'all':18}{statistics.median(everything):9.4f}{pct(everything, 0.99):9.4f}{max(everything):9.3f}")

    print(f"\nchecking a whole LLM answer (~{len(LLM_ANSWER['ja'])} chars) with its pack, ms")
    for locale in locales:
        pack = catalogs.pack(locale)
        assert pack is not None
        samples = measure(lambda p=pack, a=LLM_ANSWER[locale]: LlmCheck.of(p, a), None, args.turns // 4)
        print(f"{locale:18}{statistics.median(samples):9.4f}{pct(samples, 0.99):9.4f}{max(samples):9.3f}")

    msgids = {str(m.id) for m in extract_template(ROOT) if m.id}
    print(f"\ntranslated bot strings ({len(msgids)} extracted from the code)")
    for locale in locales:
        catalog = read_catalog_file(po_path(ROOT / "locales", locale), locale)
        done = {str(m.id) for m in catalog if m.id and m.string and not m.fuzzy} & msgids
        print(f"{locale:8}{len(done):4} / {len(msgids)}  ({100 * len(done) / len(msgids):.0f}%)")
    print(f"templates: {len(catalogs.templates)} x {len(locales)} locales = "
          f"{sum(len(x.texts) for x in catalogs.templates.templates.values())} texts")

    ok = worst <= TARGET_P99_MS
    print(f"\ntarget: shaping p99 <= {TARGET_P99_MS} ms in every row: {'met' if ok else 'MISSED'} "
          f"(worst p99 {worst:.4f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
