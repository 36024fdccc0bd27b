"""Benchmark: WeChat callbacks against two hub processes on one Redis, every message delivered four times
at once (a, b, a, b), as WeChat's retries can arrive; the local WeChat API and LLM servers from the tests.

Phases (figures printed at the end):
  normal   --messages distinct shoppers' messages (greetings, order questions, thanks) in safe (AES) mode:
           callback latency p50/p99/max, answers per message (passive replies + customer-service sends)
  stalled  the LLM hangs --stall-seconds on every request; --stalled messages go to it while --messages
           ordinary ones keep coming: callback latency, then (after the stall) answers per message
  overhead the adapters' verify + decrypt + parse of every shared payload (OA plaintext and AES, WeCom,
           group robot JSON, mini-program JSON), in-process: per-message p50/p99

Targets: every callback answered within 500 ms p99 (also while the LLM is stalled), zero duplicate and
zero missing answers, adapter overhead <= 1 ms p99.

Usage:  .venv/bin/python scripts/bench_wechat.py [--messages 300] [--stalled 50] [--stall-seconds 10]
                                                 [--concurrency 16]
Needs redis-server. The hubs run as `python -m core run` processes with log_level WARNING.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402

from adapters.wechat_common import parse_xml  # noqa: E402
from tests.support.fake_llm import FakeLlm  # noqa: E402
from tests.support.fake_wechat_api import FakeWeChatApi, Platform  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
PAYLOADS = SHARED / "payloads" / "wechat"
TOKEN, KEY, APP = "bench-token", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx-bench"
TEXTS = ["你好", "我的订单到哪了", "谢谢", "hello", "where is my order", "在吗"]
UNKNOWN = "能帮我比较一下这两款面霜的成分吗"  # no intent: goes to the LLM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def text_xml(content: str, msg_id: int, user: str) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")


class Cluster:
    """A private redis-server and two hub processes."""

    def __init__(self, workdir: Path, api: FakeWeChatApi, llm: FakeLlm) -> None:
        self.workdir = workdir
        self.redis_port = free_port()
        self.ports = [free_port(), free_port()]
        self.config = {
            # Bursts of 4 deliveries x --concurrency messages: a pool big enough that no turn is refused for
            # want of a connection (the store's pool does not queue; see the report).
            "redis": {"url": f"redis://127.0.0.1:{self.redis_port}/0", "max_connections": 512},
            "demo_store": {"source": str(SHARED / "retail" / "db.json"), "data_dir": str(workdir / "var")},
            "llm": {"base_url": llm.base_url, "api_key": "bench-key", "max_retries": 0, "timeout_s": 60},
            "channels": {"wechat": {"enabled": True, "token": TOKEN, "app_id": APP, "app_secret": "bench-secret",
                                    "encoding_aes_key": KEY, "api_base_url": api.base_url}},
            "log_level": "WARNING",
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is not installed (apt-get install redis-server)")
        self.processes.append(subprocess.Popen(
            [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        path = self.workdir / "bot_config.yaml"
        path.write_text(yaml.safe_dump(self.config, allow_unicode=True))
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        time.sleep(0.3)
        for port in self.ports:
            with open(self.workdir / f"hub-{port}.log", "wb") as log:  # the child keeps its own descriptor
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "core", "run", "--config", str(path), "--port", str(port)],
                    cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log))

    async def start(self) -> None:
        self.spawn()
        async with aiohttp.ClientSession() as http:
            for port in self.ports:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline:
                        sys.exit(f"hub on port {port} did not start; see {self.workdir}")
                    await asyncio.sleep(0.1)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            process.wait(10)


class Load:
    """Messages delivered four times at once, to a, b, a, b; latencies and passive answers recorded."""

    def __init__(self, http: aiohttp.ClientSession, ports: list[int], concurrency: int) -> None:
        self.http = http
        self.ports = ports
        self.platform = Platform(TOKEN, KEY, APP)
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.passive: Counter[str] = Counter()  # user -> passive replies received
        self.slots = asyncio.Semaphore(concurrency)

    async def deliver_four(self, content: str, msg_id: int, user: str) -> None:
        async with self.slots:
            query, body = self.platform.xml_envelope(text_xml(content, msg_id, user), to_user="gh_bench")
            ports = [self.ports[0], self.ports[1], self.ports[0], self.ports[1]]
            await asyncio.gather(*(self._one(port, query, body, user) for port in ports))

    async def _one(self, port: int, query: str, body: bytes, user: str) -> None:
        started = time.perf_counter()
        async with self.http.post(f"http://127.0.0.1:{port}/wechat/callback?{query}", data=body) as response:
            text = await response.text()
        self.latencies.append(time.perf_counter() - started)
        self.statuses[response.status] += 1
        if response.status == 200 and text != "success":
            reply = parse_xml(self.platform.open_xml_reply(text))
            assert reply["ToUserName"] == user
            self.passive[user] += 1


def answers_report(users: list[str], load: Load, api: FakeWeChatApi) -> tuple[int, int]:
    """(duplicates, missing) over these users (one message each): exactly one answer each, passive or by API."""
    by_api = Counter(s.touser for s in api.sent)
    counts = [load.passive[u] + by_api[u] for u in users]
    return sum(max(0, c - 1) for c in counts), sum(1 for c in counts if c == 0)


def latency_line(name: str, latencies: list[float], digits: int = 1) -> str:
    ms = [x * 1000 for x in latencies]
    p50, p99, top = percentile(ms, 50), percentile(ms, 99), max(ms)
    return f"{name:<34} n={len(ms):>5}  p50 {p50:7.{digits}f} ms  p99 {p99:7.{digits}f} ms  max {top:7.{digits}f} ms"


async def overhead(rounds: int) -> list[str]:
    """In-process: each adapter's read_callback (verify + decrypt + parse + Message) on real payloads."""
    from adapters.miniprogram import MiniProgramAdapter
    from adapters.wechat import WeChatAdapter
    from adapters.wechat_group import WeChatGroupAdapter
    from core.config import MiniProgramConfig, WeChatConfig, WeChatGroupConfig

    index = json.loads((PAYLOADS / "index.json").read_text())
    plain = [(PAYLOADS / e["file"]).read_text() for e in index
             if e["role"] != "encrypted" and "work_parser" not in e["file"] and "reply_render" not in e["file"]]
    work = [(PAYLOADS / e["file"]).read_text() for e in index if "work_parser" in e["file"]]
    engine: Any = None  # read_callback never reaches the engine
    oa_plain = WeChatAdapter(engine, WeChatConfig(enabled=True, token=TOKEN, app_id=APP))
    oa_aes = WeChatAdapter(engine, WeChatConfig(enabled=True, token=TOKEN, app_id=APP, encoding_aes_key=KEY))
    wecom = WeChatAdapter(engine, WeChatConfig(enabled=True, kind="wecom", token=TOKEN, app_id="ww-corp",
                                               encoding_aes_key=KEY, agent_id="1"))
    group = WeChatGroupAdapter(engine, WeChatGroupConfig(enabled=True, token=TOKEN, encoding_aes_key=KEY))
    mini = MiniProgramAdapter(engine, MiniProgramConfig(enabled=True, token=TOKEN, app_id=APP, encoding_aes_key=KEY))
    cases: list[tuple[str, Any, dict[str, str], bytes]] = []
    oa, corp, robot = Platform(TOKEN), Platform(TOKEN, KEY, APP), Platform(TOKEN, KEY, "ww-corp")
    for xml in plain:
        cases.append(("OA plaintext (54 payloads)", oa_plain, oa.plain_query(), xml.encode()))
        query, body = corp.xml_envelope(xml)
        cases.append(("OA safe mode (54 payloads)", oa_aes, dict(q.split("=", 1) for q in query.split("&")), body))
    for xml in work:
        query, body = robot.xml_envelope(xml)
        cases.append(("WeCom AES (23 payloads)", wecom, dict(q.split("=", 1) for q in query.split("&")), body))
    group_platform = Platform(TOKEN, KEY, "")
    for i, text in enumerate(TEXTS):
        message = {"msgid": f"g{i}", "aibotid": "B", "chatid": "wrC", "chattype": "group",
                   "from": {"userid": "lisi"}, "response_url": "https://qyapi.weixin.qq.com/cgi-bin/aibot/response",
                   "msgtype": "text", "text": {"content": f"@客服 {text}"}}
        query, body = group_platform.json_envelope(json.dumps(message, ensure_ascii=False))
        cases.append(("group robot JSON AES (6 msgs)", group, dict(q.split("=", 1) for q in query.split("&")),
                      body))
        push = {"ToUserName": "gh", "FromUserName": "o-1", "CreateTime": int(time.time()), "MsgType": "text",
                "Content": text, "MsgId": 1000 + i}
        encrypt = corp.encrypt(json.dumps(push, ensure_ascii=False))
        cases.append(("mini-program JSON AES (6 msgs)", mini, {**corp.encrypted_query(encrypt), "encrypt_type": "aes"},
                      json.dumps({"ToUserName": "gh", "Encrypt": encrypt}).encode()))
    from urllib.parse import unquote

    cases = [(name, adapter, {k: unquote(v) for k, v in query.items()}, body) for name, adapter, query, body in cases]
    for _name, adapter, query, body in cases:  # warm-up: first use of the AES backend, lazy imports
        adapter.read_callback(query, body)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, adapter, query, body in cases:
            started = time.perf_counter()
            adapter.read_callback(query, body)
            samples.setdefault(name, []).append(time.perf_counter() - started)
    everything = [x for xs in samples.values() for x in xs]
    lines = [latency_line(f"  {name}", xs, 3) for name, xs in samples.items()]
    return [*lines, latency_line("  all adapters", everything, 3)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--stalled", type=int, default=50)
    parser.add_argument("--stall-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16, help="messages in flight (x4 requests)")
    parser.add_argument("--overhead-rounds", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the hub logs")
    args = parser.parse_args()

    report: list[str] = []
    report += ["adapter verify + parse overhead (in-process, per message):", *await overhead(args.overhead_rounds)]

    workdir = Path(tempfile.mkdtemp(prefix="bench-wechat-"))
    async with FakeWeChatApi(apps={APP: "bench-secret"}) as api, FakeLlm() as llm:
        cluster = Cluster(workdir, api, llm)
        await cluster.start()
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                warm = Load(http, cluster.ports, args.concurrency)
                await asyncio.gather(*(warm.deliver_four("你好", 10**9 + i, f"warm-{i}") for i in range(20)))

                # normal: keyword-routed skills, answered passively
                normal = Load(http, cluster.ports, args.concurrency)
                users = [f"n-{i}" for i in range(args.messages)]
                started = time.perf_counter()
                await asyncio.gather(*(normal.deliver_four(TEXTS[i % len(TEXTS)], 1_000_000 + i, u)
                                       for i, u in enumerate(users)))
                elapsed = time.perf_counter() - started
                await asyncio.sleep(0.5)
                duplicates, missing = answers_report(users, normal, api)
                report += ["", f"normal: {args.messages} messages x 4 deliveries to 2 processes in {elapsed:.1f} s",
                           latency_line("  callback latency", normal.latencies),
                           f"  HTTP statuses {dict(normal.statuses)}; answers: {sum(normal.passive.values())} "
                           f"passive, {sum(1 for s in api.sent if s.touser in set(users))} by API; "
                           f"duplicates {duplicates}, missing {missing}"]

                # stalled: the LLM hangs; its messages are acknowledged, ordinary ones still answered passively
                for _ in range(args.stalled):
                    llm.stall(args.stall_seconds)
                stalled = Load(http, cluster.ports, args.concurrency)
                slow_users = [f"s-{i}" for i in range(args.stalled)]
                fast_users = [f"f-{i}" for i in range(args.messages)]
                started = time.perf_counter()
                jobs = [stalled.deliver_four(UNKNOWN, 2_000_000 + i, u) for i, u in enumerate(slow_users)]
                jobs += [stalled.deliver_four(TEXTS[i % len(TEXTS)], 3_000_000 + i, u)
                         for i, u in enumerate(fast_users)]
                await asyncio.gather(*jobs)
                acked = time.perf_counter() - started
                deadline = time.monotonic() + args.stall_seconds + 20
                while time.monotonic() < deadline:
                    if sum(1 for s in api.sent if s.touser in set(slow_users)) >= args.stalled:
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)
                all_users = slow_users + fast_users
                duplicates, missing = answers_report(all_users, stalled, api)
                report += ["", f"stalled LLM ({args.stall_seconds:.0f} s): {args.stalled} LLM-bound + {args.messages} "
                               f"ordinary messages x 4 deliveries, all callbacks answered in {acked:.1f} s",
                           latency_line("  callback latency", stalled.latencies),
                           f"  HTTP statuses {dict(stalled.statuses)}; LLM requests {len(llm.requests)}; "
                           f"late answers by API {sum(1 for s in api.sent if s.touser in set(slow_users))}; "
                           f"duplicates {duplicates}, missing {missing}"]
        finally:
            cluster.stop()
    all_latencies = normal.latencies + stalled.latencies
    report += ["", f"callback p99 over both phases: {percentile([x * 1000 for x in all_latencies], 99):.1f} ms "
                   "(target <= 500 ms)"]
    print("\n".join(report))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir}")


if __name__ == "__main__":
    asyncio.run(main())
