#!/usr/bin/env python3
"""Measure the NLU router on the held-out split (nlu/tests/<lang>/nlu.yml).

Runs with the hub's python3 (standard library only) and talks HTTP to a Rasa
server's POST /model/parse, the same call the hub makes.  Either point it at a
running server, or let it start one on a free loopback port (--serve).

    KEFU_NLU_TOKEN=t scripts/eval_nlu.py --serve            # train if needed, serve, measure, stop
    KEFU_NLU_TOKEN=t scripts/eval_nlu.py --url http://127.0.0.1:5005
    scripts/eval_nlu.py --serve --langs zh,en --json out.json

Per language it prints:
  accuracy      in-scope test texts whose routed intent is right: the top intent
                with confidence >= threshold (a text below it goes to the LLM and
                counts as a miss); "top-1" is the same ignoring the threshold
  macro-F1      over the shop intents, routed predictions, out-of-scope texts
                included (a shop intent given to one of them is a false positive)
  OOS false-accept  out-of-scope texts given a shop intent with confidence >= threshold
  latency       p50/p99 of one /model/parse round trip (keep-alive connection)
  entities      span+type precision/recall against the annotations in the tests
  confusions    per intent: accuracy and the most frequent wrong routes
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OOS = "out_of_scope"
FALLBACK = "nlu_fallback"
LLM = "(LLM)"  # routed below the threshold
LANG_NAMES = {"zh": "zh-CN", "en": "en", "ja": "ja", "ar": "ar"}

_ANNOT = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<ent>[^)]+)\)|\{(?P<json>[^}]+)\})")


def strip_annotations(example: str) -> tuple[str, list[tuple[int, int, str]]]:
    """'order [#W1](order_id) please' -> ('order #W1 please', [(6, 9, 'order_id')])."""
    out, spans, pos = [], [], 0
    length = 0
    for m in _ANNOT.finditer(example):
        out.append(example[pos:m.start()])
        length += m.start() - pos
        text = m.group("text")
        if m.group("ent"):
            ent = m.group("ent").split(":")[0].split("=")[0]
        else:
            ent = json.loads("{" + m.group("json") + "}")["entity"]
        spans.append((length, length + len(text), ent))
        out.append(text)
        length += len(text)
        pos = m.end()
    out.append(example[pos:])
    return "".join(out), spans


def read_examples(path: Path) -> list[tuple[str, str, list]]:
    """The intents of one Rasa NLU YAML file, without needing PyYAML."""
    rows, intent, in_examples = [], None, False
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^- (intent|regex|lookup|synonym):\s*(\S+)", line)
        if m:
            intent = m.group(2) if m.group(1) == "intent" else None
            in_examples = False
            continue
        if re.match(r"^\s+examples:\s*\|", line):
            in_examples = True
            continue
        m = re.match(r"^\s+- (.*)$", line)
        if in_examples and intent and m:
            text, spans = strip_annotations(m.group(1).strip())
            rows.append((intent, text, spans))
    return rows


class Client:
    def __init__(self, url: str, token: str) -> None:
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.query = "?" + urllib.parse.urlencode({"token": token}) if token else ""
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def parse(self, text: str) -> tuple[dict, float]:
        body = json.dumps({"text": text}).encode()
        t0 = time.perf_counter()
        for attempt in (0, 1):
            try:
                self.conn.request("POST", "/model/parse" + self.query, body,
                                  {"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                if attempt:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                t0 = time.perf_counter()
        ms = (time.perf_counter() - t0) * 1000
        if resp.status != 200:
            raise SystemExit(f"/model/parse answered {resp.status}: {data[:200]!r}")
        return json.loads(data), ms


def route(result: dict, threshold: float) -> tuple[str, str, float]:
    """(routed intent, top-1 intent, its confidence) from a /model/parse answer."""
    ranking = [r for r in result.get("intent_ranking") or [] if r["name"] != FALLBACK]
    if not ranking:
        intent = result.get("intent") or {}
        ranking = [{"name": intent.get("name", LLM), "confidence": intent.get("confidence", 0.0)}]
    top, conf = ranking[0]["name"], float(ranking[0]["confidence"])
    if (result.get("intent") or {}).get("name") == FALLBACK or conf < threshold:
        return LLM, top, conf
    return top, top, conf


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def evaluate(rows, results, threshold):
    shop = sorted({g for g, *_ in rows if g != OOS})
    n_in = n_ok = n_top = 0
    oos = oos_fa = 0
    tp, fp, fn = collections.Counter(), collections.Counter(), collections.Counter()
    per_intent = collections.defaultdict(collections.Counter)
    ent_tp = ent_fp = ent_fn = 0
    lat = []
    for (gold, _text, spans), (res, ms) in zip(rows, results, strict=True):
        lat.append(ms)
        routed, top, _conf = route(res, threshold)
        per_intent[gold][routed] += 1
        if gold == OOS:
            oos += 1
            if routed not in (LLM, OOS):
                oos_fa += 1
                fp[routed] += 1
        else:
            n_in += 1
            n_ok += routed == gold
            n_top += top == gold
            if routed == gold:
                tp[gold] += 1
            else:
                fn[gold] += 1
                if routed in shop:
                    fp[routed] += 1
        want = {(s, e, t) for s, e, t in spans}
        got = {(e["start"], e["end"], e["entity"]) for e in res.get("entities") or []}
        ent_tp += len(want & got)
        ent_fp += len(got - want)
        ent_fn += len(want - got)
    f1s = []
    for c in shop:
        p = tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else 0.0
        r = tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] else 0.0
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    confusions = {}
    for gold, cnt in sorted(per_intent.items()):
        total = sum(cnt.values())
        ok = cnt[gold] + (cnt[LLM] if gold == OOS else 0)
        wrong = [(k, v) for k, v in cnt.most_common() if k != gold and not (gold == OOS and k == LLM)]
        confusions[gold] = {"n": total, "accuracy": ok / total, "wrong": wrong}
    return {
        "n_in_scope": n_in,
        "accuracy": n_ok / n_in if n_in else float("nan"),
        "top1_accuracy": n_top / n_in if n_in else float("nan"),
        "macro_f1": sum(f1s) / len(f1s) if f1s else float("nan"),
        "n_oos": oos,
        "oos_false_accept": oos_fa / oos if oos else float("nan"),
        "latency_ms_p50": percentile(lat, 0.5),
        "latency_ms_p99": percentile(lat, 0.99),
        "entity_precision": ent_tp / (ent_tp + ent_fp) if ent_tp + ent_fp else float("nan"),
        "entity_recall": ent_tp / (ent_tp + ent_fn) if ent_tp + ent_fn else float("nan"),
        "confusions": confusions,
    }


def print_report(lang: str, m: dict, threshold: float, top_confusions: int) -> None:
    print(f"== {LANG_NAMES.get(lang, lang)}: {m['n_in_scope']} in-scope + {m['n_oos']} out-of-scope test texts")
    print(f"   accuracy {m['accuracy']:.1%} (routed at {threshold})   top-1 {m['top1_accuracy']:.1%}   "
          f"macro-F1 {m['macro_f1']:.3f}   OOS false-accept {m['oos_false_accept']:.1%}")
    print(f"   latency p50 {m['latency_ms_p50']:.1f} ms  p99 {m['latency_ms_p99']:.1f} ms   "
          f"entities P {m['entity_precision']:.2f} R {m['entity_recall']:.2f}")
    for gold, c in m["confusions"].items():
        if c["wrong"] or top_confusions < 0:
            wrong = ", ".join(f"{k} x{v}" for k, v in c["wrong"][:max(top_confusions, 0) or 3])
            print(f"   {gold:<18} {c['accuracy']:6.1%} of {c['n']:<3} {('-> ' + wrong) if wrong else ''}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('KEFU_NLU_PORT', '5005')}")
    ap.add_argument("--token", default=os.environ.get("KEFU_NLU_TOKEN", ""))
    ap.add_argument("--tests", default=str(ROOT / "nlu" / "tests"), help="folder of <lang>/nlu.yml")
    ap.add_argument("--langs", default="zh,en,ja,ar")
    ap.add_argument("--threshold", type=float, default=0.85)
    ap.add_argument("--serve", action="store_true", help="start a server on a free port, stop it after")
    ap.add_argument("--model", help="with --serve: model to serve (default: scripts/nlu_train.sh)")
    ap.add_argument("--json", help="also write the metrics here")
    ap.add_argument("--errors", action="store_true", help="list every wrongly routed test text")
    ap.add_argument("--top-confusions", type=int, default=3)
    args = ap.parse_args()

    server_pid = None
    if args.serve:
        args.token = args.token or "eval-" + os.urandom(8).hex()
        port = free_port()
        cmd = [str(ROOT / "scripts" / "nlu_serve.sh"), "--background", "--port", str(port), "--token", args.token]
        if args.model:
            cmd += ["--model", args.model]
        t0 = time.monotonic()
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        server_pid = int(out.splitlines()[-1])
        print(f"started rasa (pid {server_pid}) on port {port} in {time.monotonic() - t0:.1f}s")
        args.url = f"http://127.0.0.1:{port}"
    try:
        client = Client(args.url, args.token)
        report = {"threshold": args.threshold, "url": args.url, "languages": {}}
        all_lat = []
        for lang in [x for x in args.langs.split(",") if x]:
            path = Path(args.tests) / lang / "nlu.yml"
            rows = read_examples(path)
            results = [client.parse(text) for _, text, _ in rows]
            all_lat += [ms for _, ms in results]
            m = evaluate(rows, [r for r in results], args.threshold)
            report["languages"][lang] = m
            print_report(lang, m, args.threshold, args.top_confusions)
            if args.errors:
                for (gold, text, _), (res, _) in zip(rows, results, strict=True):
                    routed, top, conf = route(res, args.threshold)
                    ok = routed == gold or (gold == OOS and routed == LLM)
                    if not ok:
                        print(f"      {gold:>17} -> {routed:<17} ({top} {conf:.2f})  {text}")
        report["latency_ms_p50"] = percentile(all_lat, 0.5)
        report["latency_ms_p99"] = percentile(all_lat, 0.99)
        print(f"== all: {len(all_lat)} parses, latency p50 {report['latency_ms_p50']:.1f} ms "
              f"p99 {report['latency_ms_p99']:.1f} ms")
        if args.json:
            Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    finally:
        if server_pid:
            subprocess.run([str(ROOT / "scripts" / "nlu_serve.sh"), "--stop", "--port", args.url.rsplit(":", 1)[1]],
                           check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
