"""The learning loop: what the bot could not answer, and what agents said it was, as Rasa NLU drafts.

Two sources: the unknown-question queue (questions below the NLU threshold, with the router's guesses)
and the questions of hand-overs agents resolved in the console with an intent label. One draft per
language, in the layout of nlu/data/ (OUT/<lang>/nlu.yml), for review, merge and retraining:

  - an example an agent labelled goes under that intent (a person decided: listed first);
  - an unlabelled one goes under the router's best guess (marked in the block's comment), else `unlabelled`;
  - texts already in nlu/data/ are left out, duplicates collapse.

    python scripts/export_learning.py OUT                      # from Redis (REDIS_URL or bot_config.yaml)
    python scripts/export_learning.py --from-hub http://127.0.0.1:8080 [--token ADMIN_TOKEN] OUT
    python scripts/export_learning.py --from-files unknown.jsonl resolutions.jsonl OUT
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UNLABELLED = "unlabelled"
NLU_DATA = ROOT / "nlu" / "data"
# shop locale -> the nlu/data folder of its language
FOLDERS = {"zh": "zh", "en": "en", "ja": "ja", "ar": "ar"}
_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


def folder_of(locale: str | None) -> str:
    language = (locale or "zh").replace("_", "-").split("-", 1)[0].lower()
    return FOLDERS.get(language, language)


def normal(text: str) -> str:
    return " ".join(_ANNOTATION.sub(r"\1", text).split()).lower()


def known_examples(data_dir: Path) -> dict[str, set[str]]:
    """Texts already in the training data, per language folder."""
    known: dict[str, set[str]] = defaultdict(set)
    for path in data_dir.glob("*/*.yml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in data.get("nlu", ()) or ():
            for line in str(block.get("examples", "")).splitlines():
                if line.strip().startswith("- "):
                    known[path.parent.name].add(normal(line.strip()[2:]))
    return known


@dataclass
class Draft:
    labelled: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    guessed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    seen: set[str] = field(default_factory=set)

    def add(self, intent: str, text: str, by_agent: bool, known: set[str]) -> None:
        key = normal(text)
        if not key or key in self.seen or key in known:
            return
        self.seen.add(key)
        (self.labelled if by_agent else self.guessed)[intent].append(" ".join(text.split()))

    def render(self, language: str) -> str:
        lines = [
            f"# Draft ({language}) from the learning loop: questions agents labelled when resolving hand-overs,",
            "# and unknown questions under the router's best guess. Review every line (move, fix or delete it)",
            "# before merging into nlu/data/ and retraining.",
            'version: "3.1"',
            "nlu:",
        ]
        for intent in sorted(set(self.labelled) | set(self.guessed)):
            mine, guesses = self.labelled.get(intent, []), self.guessed.get(intent, [])
            lines.append(f"# {intent}: {len(mine)} labelled by agents" + (f", then {len(guesses)} router guesses"
                                                                           if guesses else ""))
            lines += [f"- intent: {intent}", "  examples: |"]
            lines += [f"    - {text}" for text in (*mine, *guesses)]
        return "\n".join(lines) + "\n"


def build_drafts(unknown: list[dict[str, Any]], resolutions: list[dict[str, Any]],
                 known: dict[str, set[str]]) -> dict[str, str]:
    drafts: dict[str, Draft] = defaultdict(Draft)
    for item in resolutions:  # a person's label wins over any guess for the same text
        language = folder_of(item.get("locale"))
        for text in item.get("texts", ()):
            intent = item.get("label") or None
            if intent is None:
                continue
            drafts[language].add(str(intent), str(text), True, known.get(language, set()))
    for item in unknown:
        language = folder_of(item.get("locale"))
        top = item.get("top") or []
        drafts[language].add(top[0]["intent"] if top else UNLABELLED, str(item.get("text", "")), False,
                             known.get(language, set()))
    return {language: draft.render(language) for language, draft in sorted(drafts.items()) if draft.seen}


def from_redis(limit: int, prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import redis

    from core.config import load_config

    config = load_config()
    if not config.redis.url:
        sys.exit("no redis.url / REDIS_URL: the embedded store lives inside the hub; use --from-hub")
    client = redis.Redis.from_url(config.redis.url)
    unknown = [json.loads(i) for i in client.lrange(f"{prefix}unknown", 0, limit - 1)]
    resolved = [json.loads(i) for i in client.lrange(f"{prefix}desk:resolutions", 0, limit - 1)]
    return unknown, resolved


def from_hub(url: str, token: str, limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def get(path: str) -> list[dict[str, Any]]:
        request = urllib.request.Request(f"{url.rstrip('/')}{path}?limit={limit}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return list(json.load(response)["items"])

    return get("/api/unknown"), get("/api/resolutions")


def from_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for <lang>/nlu.yml")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-hub", metavar="URL")
    source.add_argument("--from-files", nargs=2, type=Path, metavar=("UNKNOWN_JSONL", "RESOLUTIONS_JSONL"))
    parser.add_argument("--token", default="", help="admin token for --from-hub")
    parser.add_argument("--prefix", default="kefu:", help="Redis key prefix")
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--nlu-data", type=Path, default=NLU_DATA, help="training data to skip known texts of")
    args = parser.parse_args()
    if args.from_files:
        unknown, resolved = from_jsonl(args.from_files[0]), from_jsonl(args.from_files[1])
    elif args.from_hub:
        unknown, resolved = from_hub(args.from_hub, args.token, args.limit)
    else:
        unknown, resolved = from_redis(args.limit, args.prefix)
    drafts = build_drafts(unknown, resolved, known_examples(args.nlu_data))
    for language, text in drafts.items():
        path = args.out / language / "nlu.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"{path}")
    print(f"{len(unknown)} unknown questions and {len(resolved)} resolutions -> {len(drafts)} draft(s) in {args.out}")


if __name__ == "__main__":
    main()
