"""Benchmark: intent routing through the RasaRouter to live Rasa servers.

Prints
  uncached latency   p50/p99 of parses that reach Rasa (distinct texts, one at a time)
  cache hit          p50/p99 of a parse answered from the router's memory
  Rasa alone         parses/s one Rasa server sustains with --concurrency requests in flight
  peak mix           messages/s routed when half the traffic is the 50 most common phrases (as in a
                     sales event) and half the long tail of everything else shoppers write

The texts are our own training and test examples (nlu/data, nlu/tests), all four languages.

Usage:  .venv/bin/python scripts/bench_nlu.py [--servers 1] [--seconds 10] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.metrics import Metrics  # noqa: E402
from core.rasa_router import RasaRouter  # noqa: E402

_ANNOTATION = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\{[^}]*\}")


def examples() -> list[str]:
    texts: list[str] = []
    for path in sorted((ROOT / "nlu").glob("*/*/nlu.yml")) + sorted((ROOT / "nlu").glob("data/*/*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in data.get("nlu") or []:
            if "intent" not in block:
                continue
            for line in str(block.get("examples", "")).splitlines():
                line = line.strip().removeprefix("- ").strip()
                if line:
                    texts.append(_ANNOTATION.sub(lambda m: m.group(1) or m.group(2), line))
    return list(dict.fromkeys(texts))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_rasa(port: int, token: str, model: str | None) -> None:
    command = [str(ROOT / "scripts/nlu_serve.sh"), "--background", "--port", str(port), "--token", token,
               "--timeout", "180", *(["--model", model] if model else [])]
    with open(f"/tmp/kefu-bench-rasa-{port}.log", "w") as log:
        started = subprocess.run(command, stdout=log, stderr=log)
    if started.returncode != 0:
        sys.exit(f"Rasa did not start on {port}: see /tmp/kefu-bench-rasa-{port}.log")


def stop_rasa(port: int) -> None:
    subprocess.run([str(ROOT / "scripts/nlu_serve.sh"), "--stop", "--port", str(port)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def rasa_alone(url: str, token: str, texts: list[str], seconds: float, concurrency: int) -> float:
    done = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:

        async def worker(offset: int) -> None:
            nonlocal done
            i = offset
            while time.monotonic() < deadline:
                async with http.post(f"{url}/model/parse", params={"token": token},
                                     json={"text": texts[i % len(texts)]}) as response:
                    await response.read()
                done += 1
                i += concurrency

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return done / (time.monotonic() - started)


async def peak_mix(
    router: RasaRouter, texts: list[str], seconds: float, concurrency: int, tail_shape: str
) -> tuple[float, float]:
    """Half the messages from the 50 most common phrases; half from the tail, drawn uniformly (every
    tail text equally likely: the harshest case for a cache) or Zipf-like (rank r with weight 1/r, as
    word and phrase frequencies in real text fall off)."""
    rng = random.Random(7)
    popular, tail = texts[:50], texts[50:]
    weights = [1 / rank for rank in range(1, len(tail) + 1)] if tail_shape == "zipf" else None
    done = 0
    deadline = time.monotonic() + seconds

    def tail_text() -> str:
        return rng.choices(tail, weights=weights)[0] if weights else rng.choice(tail)

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            text = rng.choice(popular) if rng.random() < 0.5 else tail_text()
            await router.parse(text, "zh-CN")
            done += 1

    before = router.metrics.nlu_parses.labels("rasa")._value.get()
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = done / (time.monotonic() - started)
    asked = router.metrics.nlu_parses.labels("rasa")._value.get() - before
    return rate, 1 - asked / max(done, 1)


async def run(args: argparse.Namespace) -> None:
    texts = examples()
    random.Random(1).shuffle(texts)
    token = uuid.uuid4().hex
    ports = [5590 + i for i in range(args.servers)]
    for port in ports:
        start_rasa(port, token, args.model)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        router = RasaRouter(urls, token, Metrics(), timeout_s=2.0)
        await router.wait_ready(30)
        uncached = []
        for text in texts[: args.samples]:
            t0 = time.perf_counter()
            await router.parse(text, "zh-CN")
            uncached.append((time.perf_counter() - t0) * 1000)
        hits = []
        for text in texts[: args.samples]:
            t0 = time.perf_counter()
            await router.parse(text, "zh-CN")
            hits.append((time.perf_counter() - t0) * 1e6)
        alone = await rasa_alone(urls[0], token, texts, args.seconds, args.concurrency)

        mixes = {}
        for shape in ("uniform", "zipf"):
            fresh = RasaRouter(urls, token, Metrics(), timeout_s=2.0)
            await fresh.wait_ready(30)
            mixes[shape] = await peak_mix(fresh, texts, args.seconds, args.concurrency, shape)
            await fresh.close()
        await router.close()
    finally:
        for port in ports:
            stop_rasa(port)

    print(f"\nkefu NLU routing benchmark: {len(texts)} distinct texts (zh-CN, en, ja, ar), "
          f"{args.servers} Rasa server(s)")
    print(f"uncached parse through the router: p50 {statistics.median(uncached):.1f} ms, "
          f"p99 {percentile(uncached, 0.99):.1f} ms ({len(uncached)} parses)")
    print(f"cache hit:                         p50 {statistics.median(hits):.1f} us, "
          f"p99 {percentile(hits, 0.99):.1f} us")
    print(f"one Rasa server alone:             {alone:.0f} parses/s ({args.concurrency} in flight)")
    for shape, (rate, hit_rate) in mixes.items():
        print(f"peak mix, {shape + ' tail:':13}          {rate:.0f} messages/s "
              f"({hit_rate:.0%} answered from cache, {args.concurrency} in flight)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=1, help="Rasa servers behind the router")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--samples", type=int, default=400, help="uncached parses timed one at a time")
    parser.add_argument("--model", help="the model to serve (default: scripts/nlu_train.sh's)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
