"""Prometheus metrics for one hub process (its own registry, no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

STAGES = ("open", "understand", "decide", "send", "save")
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter("kefu_turns", "Turns handled", ["channel", "route"], registry=r)
        self.turn_seconds = Histogram("kefu_turn_seconds", "Whole turn latency", buckets=_FAST_BUCKETS, registry=r)
        self.stage_seconds = Histogram(
            "kefu_stage_seconds", "Turn pipeline stage latency", ["stage"], buckets=_FAST_BUCKETS, registry=r
        )
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
        # Children bound once: labels() on the hot path costs more than the observation.
        self._stages = {stage: self.stage_seconds.labels(stage) for stage in STAGES}

    def observe_stages(self, durations: dict[str, float]) -> None:
        for stage, seconds in durations.items():
            self._stages[stage].observe(seconds)

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
