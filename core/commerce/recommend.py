"""What to suggest with a product: the operator's rules first (core/commerce/recommendations.yaml, e.g.
sunscreen suggests the after-sun mask), then what other shoppers bought in the same order
(core/data/bought_together.yaml, computed from the order history by scripts/bought_together.py).

Everything is a look-up in tables read once, so a suggestion costs microseconds in a turn.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

import yaml

from core.config import PROJECT_ROOT

RULES = PROJECT_ROOT / "core" / "commerce" / "recommendations.yaml"
TOGETHER = PROJECT_ROOT / "core" / "data" / "bought_together.yaml"


class Source(StrEnum):
    RULE = "rule"  # an operator's rule
    TOGETHER = "together"  # bought in the same order by other shoppers
    FEATURED = "featured"  # nothing known about the shopper: the operator's picks


@dataclass(frozen=True, slots=True)
class Rule:
    when: frozenset[str]
    suggest: tuple[str, ...]
    why: Mapping[str, str]  # locale -> a short reason


@dataclass(frozen=True, slots=True)
class Suggestion:
    name: str
    source: Source
    seed: str | None = None  # the product it goes with
    why: Mapping[str, str] | None = None  # an operator rule's reason, per locale


class Recommender:
    def __init__(self, rules: Sequence[Rule], together: Mapping[str, Sequence[str]], featured: Sequence[str]) -> None:
        self.rules = tuple(rules)
        self.together = together
        self.featured = tuple(featured)

    @classmethod
    def load(cls, rules_path: Path = RULES, together_path: Path = TOGETHER) -> Recommender:
        data = yaml.safe_load(rules_path.read_text(encoding="utf-8")) or {}
        rules = [Rule(frozenset(map(str, r["when"])), tuple(map(str, r["suggest"])),
                      {str(k): str(v) for k, v in (r.get("why") or {}).items()}) for r in data.get("rules") or ()]
        pairs = (yaml.safe_load(together_path.read_text(encoding="utf-8")) or {}).get("bought_together") or {}
        together = {str(name): [str(other) for other, _count in items] for name, items in pairs.items()}
        return cls(rules, together, [str(n) for n in data.get("featured") or ()])

    def suggest(self, seeds: Sequence[str], exclude: Collection[str] = (), limit: int = 3) -> list[Suggestion]:
        """Up to `limit` products to suggest with `seeds` (most relevant seed first): the rules' suggestions,
        then bought-together; never a seed or one of `exclude`. None of those: the featured products."""
        taken = set(seeds) | set(exclude)
        found: list[Suggestion] = []

        def add(suggestion: Suggestion) -> None:
            if suggestion.name not in taken and len(found) < limit:
                taken.add(suggestion.name)
                found.append(suggestion)

        for seed in seeds:
            for rule in self.rules:
                if seed in rule.when:
                    for name in rule.suggest:
                        add(Suggestion(name, Source.RULE, seed, rule.why))
        for seed in seeds:
            for name in self.together.get(seed, ()):
                add(Suggestion(name, Source.TOGETHER, seed))
        if not found:
            for name in self.featured:
                add(Suggestion(name, Source.FEATURED))
        return found


@cache
def recommender(rules_path: Path = RULES, together_path: Path = TOGETHER) -> Recommender:
    """The recommender over these files, read once per process."""
    return Recommender.load(rules_path, together_path)
