"""How fast the shop skills answer in process: p50/p99 of one skill call (the demo store, the catalogs, a
fresh session each call; NLU parsed beforehand, so this is the skill alone). Target: <= 5 ms p99.

    .venv/bin/python scripts/bench_skills.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.commerce.demo_store import DemoStore  # noqa: E402
from core.config import PROJECT_ROOT, ShopConfig  # noqa: E402
from core.keyword_router import KeywordRouter  # noqa: E402
from core.locale import Catalogs, Translator  # noqa: E402
from core.message import ChannelUser, Chat, ChatKind, Message, Reply  # noqa: E402
from core.push.stores import load_catalog  # noqa: E402
from core.sessions import Session  # noqa: E402
from core.skills.base import SkillContext  # noqa: E402
from core.skills.changes import order_cancel  # noqa: E402
from core.skills.compensation import compensate, compensation_text  # noqa: E402
from core.skills.exchanges import exchange_request  # noqa: E402
from core.skills.modify import order_modify  # noqa: E402
from core.skills.orders import order_status  # noqa: E402
from core.skills.payments import payment_issue  # noqa: E402
from core.skills.product_questions import product_question  # noqa: E402
from core.skills.promotions import promotion_query  # noqa: E402
from core.skills.recommend import product_recommend  # noqa: E402
from core.skills.refunds import refund_status  # noqa: E402
from core.skills.returns import return_request  # noqa: E402
from core.skills.sizing import size_advice  # noqa: E402
from core.skills.stores import store_nearby  # noqa: E402

TARGET_P99_MS = 5.0
SOURCE = PROJECT_ROOT.parent / "shared" / "data" / "retail" / "db.json"


async def compensation_skill(ctx: SkillContext) -> list[Reply]:
    """Compensation has no intent of its own: this is what a calling skill does."""
    return [Reply(text=compensation_text(ctx, compensate(ctx, reason="late_delivery", order_id="#W2611340")))]


SkillCall = Callable[[SkillContext], Awaitable[list[Reply]]]
# name, skill, signed-in store user (or None), locale, text
CASES: tuple[tuple[str, SkillCall, str | None, str, str], ...] = (
    ("promotions: rules (guest)", promotion_query, None, "zh-CN", "现在有什么优惠活动"),
    ("promotions: best plan for a cart", promotion_query, "yusuf_hernandez_6467", "en", "any coupons for me?"),
    ("promotions: 4-item cart", promotion_query, "mei_martin_4260", "zh-CN", "我能用什么优惠券"),
    ("sizing: clothes", size_advice, None, "zh-CN", "我身高175体重60公斤穿什么码"),
    ("sizing: shoes", size_advice, None, "en", "which shoe size for a foot length of 26.5 cm"),
    ("sizing: asks what is missing", size_advice, None, "en", "what size should I get"),
    ("payments: words", payment_issue, None, "zh-CN", "付款失败，提示余额不足"),
    ("payments: error code", payment_issue, None, "en", "card declined with error code 54"),
    ("returns: routing an order", return_request, "liam_li_5260", "zh-CN", "订单W8512927要退货"),
    ("returns: which order", return_request, "james_li_5688", "en", "I'd like to return something"),
    ("compensation (audited)", compensation_skill, "james_li_5688", "en", ""),
    ("orders: tracking + problem", order_status, "emma_kim_1076", "en", "where is my order #W2768383?"),
    ("orders: by product name", order_status, "james_li_5688", "zh-CN", "我买的烤炉到哪了"),
    ("orders: by phone tail", order_status, "james_li_5688", "zh-CN", "尾号6236的订单"),
    ("product question", product_question, None, "zh-CN", "防晒霜的成分是什么"),
    ("product question: care + shop options", product_question, None, "en", "how do I clean my yoga mat?"),
    ("product question: health product", product_question, None, "zh-CN", "维生素C怎么吃"),
    ("recommend: named product", product_recommend, None, "zh-CN", "防晒霜搭配什么"),
    ("recommend: from the last order", product_recommend, "james_li_5688", "en", "recommend something"),
    ("cancel: lists to confirm", order_cancel, "mia_moore_8366", "en", "cancel #W3130288, ordered by mistake"),
    ("cancel: asks the reason", order_cancel, "ivan_hernandez_6923", "zh-CN", "取消订单W4284542"),
    ("cancel: which order", order_cancel, "lucas_martin_4549", "en", "I want to cancel an order"),
    ("modify: address in one line", order_modify, "amelia_wilson_4614", "en",
     "change the address of order #W3062096 to 9 Pine Rd, Unit 4, Boston, MA 02118"),
    ("modify: default address (asks)", order_modify, "amelia_wilson_4614", "zh-CN", "修改默认地址"),
    ("modify: payment methods", order_modify, "omar_johnson_2562", "en", "change the payment method of #W8797321"),
    ("modify: which item", order_modify, "omar_johnson_2562", "zh-CN", "改订单W8797321的尺码"),
    ("exchange: which item", exchange_request, "ivan_hernandez_6923", "en", "exchange an item of #W5838674"),
    ("returns: named items, refund method", return_request, "ivan_hernandez_6923", "en",
     "return the Desk Lamp from order #W5838674"),
    ("refund status: all orders", refund_status, "ivan_hernandez_6923", "zh-CN", "我的退款到账了吗"),
    ("refund status: one order", refund_status, "amelia_wilson_4614", "en", "refund status of #W4420044"),
    ("stores: in a named city", store_nearby, None, "zh-CN", "上海附近有门店吗"),
    ("stores: which city", store_nearby, None, "en", "is there a store nearby?"),
)


async def bench(rounds: int) -> bool:
    catalogs = Catalogs.load(ROOT / "locales", ShopConfig().locales, "zh-CN")
    router = KeywordRouter()
    shop = ShopConfig()
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        commerce = DemoStore.open(SOURCE, Path(folder))
        stores = load_catalog()
        print(f"{'skill':38} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name, skill, user_id, locale, text in CASES:
            understanding = router.parse_now(text)
            t = Translator(catalogs, locale)
            message = Message(ChannelUser("web", user_id or "bench"), Chat(ChatKind.DIRECT, "bench"), text=text)
            samples = []
            gc.collect()
            for i in range(rounds):
                session = Session(customer_id=f"bench-{i}")
                if user_id:
                    session.slots["store_user_id"] = user_id
                ctx = SkillContext(message, text, session, understanding, t, commerce, shop, time.time(),
                                   stores=stores)
                start = time.perf_counter_ns()
                replies = await skill(ctx)
                samples.append((time.perf_counter_ns() - start) / 1e6)
                assert replies and replies[0].text, name
            samples.sort()
            p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
            ok &= p99 <= TARGET_P99_MS
            print(f"{name:38} {p50:8.3f} {p99:8.3f} {samples[-1]:8.3f}")
        commerce.close()
    print(f"target p99 <= {TARGET_P99_MS} ms: {'met' if ok else 'MISSED'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    return 0 if asyncio.run(bench(args.rounds)) else 1


if __name__ == "__main__":
    sys.exit(main())
