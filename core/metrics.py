"""Prometheus metrics for one hub process (its own registry, no global state)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class TurnLatency(Collector):
    """Latency histograms observed on every turn, by one label value (or none).

    prometheus_client's Histogram takes a lock and walks every bucket per observation: about 3 µs, six
    times a turn. The event loop is one thread, so plain counters and a bisect are enough; the exposition
    is the same.
    """

    def __init__(self, name: str, documentation: str, label: str | None, buckets: tuple[float, ...],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.bounds = buckets
        self._counts: dict[str, list[int]] = {}  # label value -> count per bucket (not cumulative), then +Inf
        self._sums: dict[str, float] = {}
        registry.register(self)

    def observe(self, seconds: float, value: str = "") -> None:
        counts = self._counts.get(value)
        if counts is None:
            counts = self._counts[value] = [0] * (len(self.bounds) + 1)
            self._sums[value] = 0.0
        counts[bisect_left(self.bounds, seconds)] += 1  # le: a value equal to a bound falls in its bucket
        self._sums[value] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label] if self.label else None)
        for value, counts in self._counts.items():
            running, buckets = 0, []
            for bound, count in zip((*map(str, self.bounds), "+Inf"), counts, strict=True):
                running += count
                buckets.append((bound, running))
            family.add_metric([value] if self.label else [], buckets, self._sums[value])
        yield family


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter("kefu_turns", "Turns handled", ["channel", "route"], registry=r)
        self.turn_seconds = TurnLatency("kefu_turn_seconds", "Whole turn latency", None, _FAST_BUCKETS, r)
        self.stage_seconds = TurnLatency("kefu_stage_seconds", "Turn pipeline stage latency", "stage",
                                         _FAST_BUCKETS, r)
        self.llm_tokens = Counter("kefu_llm_tokens", "LLM tokens used", ["kind"], registry=r)
        self.errors = Counter("kefu_errors", "Errors by kind", ["kind"], registry=r)
        self.duplicates = Counter("kefu_duplicates", "Platform retries acknowledged, not answered", registry=r)
        self.backend_up = Gauge("kefu_backend_up", "1 when a backend answers its health check", ["backend"],
                                registry=r)
        self.unknown_questions = Counter("kefu_unknown_questions", "Questions queued for review", registry=r)
        self.nlu_parses = Counter("kefu_nlu_parses", "Parses by where the answer came from", ["source"], registry=r)
        self.nlu_seconds = Histogram("kefu_nlu_seconds", "Rasa parse latency (uncached)", buckets=_FAST_BUCKETS,
                                     registry=r)
        self.nlu_degraded = Gauge("kefu_nlu_degraded", "1 while the keyword router answers for Rasa", registry=r)
        # Proactive pushes (core.push): one run report per scheduled run that this process carried out.
        self.push_runs = Counter("kefu_push_runs", "Push job runs by outcome (ran, failed, other_process, missed)",
                                 ["job", "outcome"], registry=r)
        self.push_recipients = Counter("kefu_push_recipients", "Push recipients by stage (candidates, chosen, sent)",
                                       ["job", "stage"], registry=r)
        self.push_skipped = Counter("kefu_push_skipped", "Push recipients skipped, by reason", ["job", "reason"],
                                    registry=r)
        self.push_run_seconds = Histogram("kefu_push_run_seconds", "Push run duration", ["job"], registry=r)
        self.push_preferences = Counter("kefu_push_preferences", "Opt-outs, opt-ins and location consents",
                                        ["change"], registry=r)
        self._turn_counters: dict[tuple[str, str], Counter] = {}  # labels() costs more than inc()

    def observe_stages(self, durations: dict[str, float]) -> None:
        for stage, seconds in durations.items():
            self.stage_seconds.observe(seconds, stage)

    def count_turn(self, channel: str, route: str) -> None:
        counter = self._turn_counters.get((channel, route))
        if counter is None:
            counter = self._turn_counters[(channel, route)] = self.turns.labels(channel, route)
        counter.inc()

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
