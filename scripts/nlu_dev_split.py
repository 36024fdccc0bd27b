#!/usr/bin/env python3
"""Split the NLU training data into train and dev parts, to choose a pipeline
without looking at the held-out test split (nlu/tests/).

About 15% of every intent (chosen by a hash of the example's text, so the split
is the same on every run) goes to OUT/tests/<lang>/nlu.yml, the rest to
OUT/data/<lang>/nlu.yml; regexes, lookups and synonyms (nlu/data/entities.yml)
go with the training part.

    scripts/nlu_dev_split.py /tmp/dev
    (cd nlu && ../.nlu-venv/bin/rasa train nlu -c config.yml -d domain.yml -u /tmp/dev/data --out /tmp/dev)
    scripts/eval_nlu.py --serve --model /tmp/dev/<model>.tar.gz --tests /tmp/dev/tests
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
from pathlib import Path

NLU = Path(__file__).resolve().parent.parent / "nlu"
LANGS = ("zh", "en", "ja", "ar")
_INTENT = re.compile(r"^- intent:\s*\S+")
_EXAMPLE = re.compile(r"^\s+- (.*)$")


def goes_to_dev(example: str, percent: int) -> bool:
    return int(hashlib.md5(example.encode()).hexdigest(), 16) % 100 < percent


def split(lines: list[str], percent: int) -> tuple[list[str], list[str]]:
    """Both parts keep every line that is not an example (headers, intents)."""
    train, dev = [], []
    in_intent = False
    for line in lines:
        if line.startswith("- "):
            in_intent = bool(_INTENT.match(line))
        example = _EXAMPLE.match(line)
        if in_intent and example:
            (dev if goes_to_dev(example.group(1), percent) else train).append(line)
        else:
            train.append(line)
            dev.append(line)
    return train, dev


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--percent", type=int, default=15)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    (args.out / "data").mkdir(parents=True)
    shutil.copy(NLU / "data" / "entities.yml", args.out / "data" / "entities.yml")
    for lang in LANGS:
        train, dev = split((NLU / "data" / lang / "nlu.yml").read_text(encoding="utf-8").splitlines(), args.percent)
        for part, lines in (("data", train), ("tests", dev)):
            path = args.out / part / lang / "nlu.yml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        count = sum(1 for line in dev if _EXAMPLE.match(line) and not _INTENT.match(line))
        print(f"{lang}: {count} dev examples")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
