"""Benchmark: the Telegram outbound queue against a local Bot API server that enforces Telegram's limits,
and the webhook's verify + parse overhead per update.

1. Outbound burst: --messages (500) replies queued at once for --chats (20) chats, --groups (4) of them
   groups, through the real adapter (TelegramAdapter.deliver -> render -> Outbox -> python-telegram-bot ->
   HTTP). The local server (tests/support/fake_telegram_api.py) answers 429 with retry_after whenever a
   message arrives that breaks 1 message/s in a chat, 20/minute in a group or 30/s overall, and delays
   each request and answer by a random 0-40 ms like a network would. Printed: 429s (target 0), time to
   drain against the bound the limits set, the rates the server observed, order per chat.
   For contrast, the same burst sent without the queue (all at once, as a naive bot would).
2. Webhook: the secret-token check (constant time) + JSON parse + PTB Update.de_json + the Message the
   engine gets, per update, over the 39 shared payloads (and a plain text update), many rounds:
   p50 / p99 / max in microseconds (target p99 <= 1 ms).

Usage:  .venv/bin/python scripts/bench_telegram.py [--messages 500] [--chats 20] [--groups 4] [--rounds 300]
        (--groups 0 finishes in about 25 s; with groups the 20/minute limit sets about 75 s)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telegram import Bot, Update  # noqa: E402
from telegram.request import HTTPXRequest  # noqa: E402

from adapters.telegram import TelegramAdapter  # noqa: E402
from adapters.telegram.adapter import SECRET_HEADER  # noqa: E402
from adapters.telegram.inbound import load_update_json  # noqa: E402
from core.config import parse_config  # noqa: E402
from core.message import Reply, TurnResult  # noqa: E402
from tests.support.fake_telegram_api import TOKEN, FakeTelegram, Updates  # noqa: E402

PAYLOADS = ROOT.parent / "shared" / "data" / "payloads" / "telegram" / "updates"
SECRET = "bench-Secret_token"


class NoEngine:
    """The benchmark measures the adapter; a turn is never run."""

    async def handle(self, *_args: object) -> TurnResult:
        raise AssertionError("not used")


def make_adapter(base_url: str) -> TelegramAdapter:
    config = parse_config({"channels": {"telegram": {
        "enabled": True, "token": TOKEN, "webhook_secret": SECRET, "api_base_url": base_url,
        "bot_username": "kefu_test_bot",  # Telegram's own limits (the defaults): 1/s, 20/min, 30/s
    }}}, env={}, base_dir=Path(tempfile.gettempdir()))
    return TelegramAdapter(NoEngine(), config.channels.telegram, 64 * 1024)


def chat_ids(chats: int, groups: int) -> list[int]:
    return [-1001000000 - n for n in range(groups)] + [10_000 + n for n in range(chats - groups)]


def lower_bound(per_chat: int, groups: int, messages: int) -> float:
    """The least time the limits allow for this burst, ignoring round trips."""
    chat = per_chat - 1.0  # 1/s: the first leaves at once
    minutes = (per_chat - 1) // 20  # a group: 20 a minute, 1 a second within it
    group = 60.0 * minutes + (per_chat - 1 - 20 * minutes) if groups else 0.0
    overall = float((messages - 1) // 30)
    return max(chat, group, overall)


async def burst(messages: int, chats: int, groups: int, queued: bool) -> dict[str, float]:
    delays = (0.0, 0.04)
    async with FakeTelegram(request_delay=delays, response_delay=delays, seed=11) as tg:
        targets = chat_ids(chats, groups)
        started = time.monotonic()
        if queued:
            adapter = make_adapter(tg.base_url)
            for n in range(messages):
                await adapter.deliver(targets[n % chats], Reply(text=f"reply {n // chats} to this chat"))
            drained = await adapter.outbox.flush(600)
            elapsed = time.monotonic() - started
            stats = {"sent": adapter.outbox.sent, "throttled": adapter.outbox.throttled,
                     "dropped": adapter.outbox.dropped, "drained": float(drained)}
            await adapter.close()
        else:  # a naive bot: every message at once, on a pool big enough that none waits for a connection
            request = HTTPXRequest(connection_pool_size=messages, pool_timeout=60)
            async with Bot(TOKEN, base_url=tg.base_url, request=request) as bot:
                results = await asyncio.gather(*(bot.send_message(targets[n % chats], f"reply {n}")
                                                 for n in range(messages)), return_exceptions=True)
            elapsed = time.monotonic() - started
            stats = {"sent": sum(not isinstance(r, Exception) for r in results)}
        in_order = all(
            [c.text for c in tg.sent(chat)] == [f"reply {k} to this chat" for k in range(len(tg.sent(chat)))]
            for chat in targets
        ) if queued else False
        gaps = [b.at - a.at for chat in targets for a, b in itertools.pairwise(tg.sent(chat))]
        stats["mean_gap_in_chat_s"] = statistics.fmean(gaps) if gaps else 0.0
        return {**stats, "elapsed_s": elapsed, "server_429": tg.too_many, "in_order": float(in_order),
                **{f"hits_{k}": v for k, v in tg.limit_hits.items()}, **tg.observed()}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def parse_overhead(rounds: int) -> dict[str, dict[str, float]]:
    adapter = make_adapter("http://127.0.0.1:9/bot")
    bodies = {p.name: p.read_bytes() for p in sorted(PAYLOADS.glob("*.json"))}
    bodies["plain_text_update"] = json.dumps(Updates().text(42, "where is my order #W1234567?")).encode()
    headers = {SECRET_HEADER: SECRET}
    wall: dict[str, list[float]] = {"all": [], "current format": [], "older format (repaired)": []}
    cpu: dict[str, list[float]] = {kind: [] for kind in wall}
    strict = {}
    for name, body in bodies.items():  # which ones PTB reads as they are
        try:
            Update.de_json(load_update_json(body)[1], None)
            strict[name] = True
        except Exception:
            strict[name] = False
    for _ in range(20):  # warm up
        for body in bodies.values():
            adapter.reader.read_body(body)
    for _ in range(rounds):
        for name, body in bodies.items():
            started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
            assert adapter.secret_ok(headers.get(SECRET_HEADER))
            adapter.reader.read_body(body)
            took_cpu, took = time.thread_time_ns() - started_cpu, time.perf_counter_ns() - started
            for kind in ("all", "current format" if strict[name] else "older format (repaired)"):
                wall[kind].append(took / 1000)
                cpu[kind].append(took_cpu / 1000)
    return {kind: {"n": len(wall[kind]), "p50_us": statistics.median(wall[kind]),
                   "p99_us": percentile(wall[kind], 0.99), "cpu_p50_us": statistics.median(cpu[kind]),
                   "cpu_p99_us": percentile(cpu[kind], 0.99)}
            for kind in wall}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    print(f"webhook verify + parse overhead per update ({args.rounds} rounds over 40 updates, gc on):")
    print(f"  {'':<26} {'':>8}   wall clock: p50      p99     CPU time: p50      p99")
    for kind, row in parse_overhead(args.rounds).items():
        print(f"  {kind:<26} n={row['n']:>6}  {row['p50_us']:9.1f} us {row['p99_us']:7.1f} us  "
              f"{row['cpu_p50_us']:9.1f} us {row['cpu_p99_us']:7.1f} us")
    load = os.getloadavg()[0]
    print(f"  (load average {load:.1f} on {os.cpu_count()} CPUs: wall-clock tails include time the OS gave "
          "to other processes; CPU time is this thread's own work)")
    gc.collect()

    per_chat = math.ceil(args.messages / args.chats)
    bound = lower_bound(per_chat, args.groups, args.messages)
    print(f"\noutbound burst: {args.messages} messages to {args.chats} chats ({args.groups} groups), "
          f"limits 1/s per chat, 20/min per group, 30/s overall, 0-40 ms network delay each way")
    if not args.skip_naive:
        naive = await burst(args.messages, args.chats, args.groups, queued=False)
        print(f"  without the queue: {naive['server_429']} x 429 of {args.messages} "
              f"(accepted {naive['sent']:.0f}) in {naive['elapsed_s']:.1f} s: the server does enforce the limits")
    result = await burst(args.messages, args.chats, args.groups, queued=True)
    print(f"  with the queue:    {result['server_429']} x 429   sent {result['sent']:.0f}, dropped "
          f"{result['dropped']:.0f}, order kept per chat: {bool(result['in_order'])}")
    print(f"  drained in {result['elapsed_s']:.1f} s (the limits allow no less than {bound:.1f} s: "
          f"{result['elapsed_s'] / bound:.2f}x)")
    print(f"  mean gap between two messages in one chat: {result['mean_gap_in_chat_s']:.3f} s")
    print(f"  server saw: at most {result['max_per_second']:.0f} messages in any second, "
          f"{result['max_per_group_minute']:.0f} in any minute of one group, "
          f"{result['min_gap_in_chat_s']:.3f} s between two in one chat")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
