"""Write the unknown-question queue as a Rasa nlu.yml draft, for review, merge and retraining.

Each question goes under the router's best guess (its top intent) so a reviewer mostly confirms
or moves lines; questions with no guess go under `unlabelled`. Duplicates collapse.

    python scripts/export_unknown.py OUT.yml                      # from Redis (REDIS_URL or bot_config.yaml)
    python scripts/export_unknown.py --from-hub http://127.0.0.1:8080 [--token T] OUT.yml
    python scripts/export_unknown.py --from-file queue.jsonl OUT.yml
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UNLABELLED = "unlabelled"


def from_redis(limit: int) -> list[dict[str, Any]]:
    import redis

    from core.config import load_config

    config = load_config()
    if not config.redis.url:
        sys.exit("no redis.url / REDIS_URL: the embedded store lives inside the hub; use --from-hub")
    client = redis.Redis.from_url(config.redis.url)
    return [json.loads(item) for item in client.lrange("kefu:unknown", 0, limit - 1)]


def from_hub(url: str, token: str, limit: int) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"{url.rstrip('/')}/api/unknown?limit={limit}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.load(response)["items"])


def from_file(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def draft(items: list[dict[str, Any]]) -> str:
    groups: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for item in items:
        text = " ".join(str(item.get("text", "")).split())
        if not text or text.lower() in seen:
            continue
        seen.add(text.lower())
        top = item.get("top") or []
        groups[top[0]["intent"] if top else UNLABELLED].append(text)
    lines = [
        "# Draft from the unknown-question queue: each example sits under the router's best guess.",
        "# Review every line (move, fix or delete it) before merging into nlu/data/ and retraining.",
        'version: "3.1"',
        "nlu:",
    ]
    for intent in sorted(groups):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {json.dumps(text, ensure_ascii=False)[1:-1]}" for text in groups[intent]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-hub", metavar="URL")
    source.add_argument("--from-file", type=Path, metavar="JSONL")
    parser.add_argument("--token", default="", help="admin token for --from-hub")
    parser.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args()
    if args.from_file:
        items = from_file(args.from_file)
    elif args.from_hub:
        items = from_hub(args.from_hub, args.token, args.limit)
    else:
        items = from_redis(args.limit)
    args.out.write_text(draft(items), encoding="utf-8")
    print(f"{len(items)} queued questions -> {args.out}")


if __name__ == "__main__":
    main()
