"""What one push run did: candidates, chosen, sent, skipped by reason; one log line and the metrics."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.metrics import Metrics

log = logging.getLogger("kefu.push")


@dataclass(slots=True)
class RunReport:
    job: str
    kind: str
    started_at: float
    scheduled_at: float | None = None  # None: started by hand (run_now) or a benchmark
    outcome: str = "ran"  # ran, failed
    candidates: int = 0  # shoppers (or groups) the push is about
    chosen: int = 0  # candidates every rule let through
    sent: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    error: str = ""
    pid: int = field(default_factory=os.getpid)

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] += count

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "kind": self.kind, "scheduled_at": self.scheduled_at,
                "started_at": self.started_at, "outcome": self.outcome, "candidates": self.candidates,
                "chosen": self.chosen, "sent": self.sent, "skipped": {str(k): n for k, n in self.skipped.items()},
                "seconds": round(self.seconds, 4), "error": self.error, "pid": self.pid}

    def line(self) -> str:
        reasons = ", ".join(f"{reason}={n}" for reason, n in sorted(self.skipped.items())) or "none"
        text = (f"push run {self.job} ({self.kind}) {self.outcome}: candidates={self.candidates} "
                f"chosen={self.chosen} sent={self.sent} skipped: {reasons} in {self.seconds:.3f} s")
        return text + (f" ({self.error})" if self.error else "")

    def publish(self, metrics: Metrics) -> None:
        (log.warning if self.outcome == "failed" else log.info)("%s", self.line())
        metrics.push_runs.labels(self.job, self.outcome).inc()
        metrics.push_run_seconds.labels(self.job).observe(self.seconds)
        for stage, count in (("candidates", self.candidates), ("chosen", self.chosen), ("sent", self.sent)):
            metrics.push_recipients.labels(self.job, stage).inc(count)
        for reason, count in self.skipped.items():
            metrics.push_skipped.labels(self.job, reason).inc(count)
