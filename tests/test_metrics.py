"""The turn latency histograms expose exactly what prometheus_client's Histogram would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from core.metrics import TurnLatency

BUCKETS = (0.001, 0.01, 0.1, 1.0)
SAMPLES = [("open", 0.0004), ("open", 0.001), ("save", 0.05), ("open", 2.0), ("save", 0.01)]


def exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_turn_latency_matches_the_library_histogram() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = TurnLatency("kefu_stage_seconds", "Stage latency", "stage", BUCKETS, ours)
    library = Histogram("kefu_stage_seconds", "Stage latency", ["stage"], buckets=BUCKETS, registry=theirs)
    for stage, seconds in SAMPLES:
        fast.observe(seconds, stage)
        library.labels(stage).observe(seconds)
    assert exposition(ours) == exposition(theirs)
    assert 'kefu_stage_seconds_bucket{le="0.001",stage="open"} 2.0' in exposition(ours)  # le: bounds included


def test_turn_latency_without_a_label() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = TurnLatency("kefu_turn_seconds", "Turn latency", None, BUCKETS, ours)
    library = Histogram("kefu_turn_seconds", "Turn latency", buckets=BUCKETS, registry=theirs)
    for _, seconds in SAMPLES:
        fast.observe(seconds)
        library.observe(seconds)
    assert exposition(ours) == exposition(theirs)
