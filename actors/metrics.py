"""Prometheus metrics an actor exports through Ray's metrics agent (scraped from each node).

Tagged by actor name so a slow or cache-thrashing actor stands out on the dashboard.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Histogram

_SECONDS_BOUNDARIES = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0]


class WorkerMetrics:
    def __init__(self, actor: str) -> None:
        self._tags = {"actor": actor}
        keys = ("actor",)
        self.jobs_processed = Counter(
            "audio_jobs_processed", description="Jobs an actor finished.", tag_keys=keys
        )
        self.jobs_failed = Counter(
            "audio_jobs_failed", description="Jobs that raised or were stopped.", tag_keys=keys
        )
        self.processing_seconds = Histogram(
            "audio_processing_seconds",
            description="Wall time of one job inside the actor.",
            boundaries=_SECONDS_BOUNDARIES,
            tag_keys=keys,
        )
        self.ir_cache_hits = Counter(
            "audio_ir_cache_hits", description="Impulse responses found cached.", tag_keys=keys
        )
        self.ir_cache_misses = Counter(
            "audio_ir_cache_misses", description="Impulse responses built.", tag_keys=keys
        )

    def job_done(self, seconds: float, ok: bool) -> None:
        (self.jobs_processed if ok else self.jobs_failed).inc(1, tags=self._tags)
        self.processing_seconds.observe(seconds, tags=self._tags)

    def cache(self, hits: int, misses: int) -> None:
        if hits:
            self.ir_cache_hits.inc(hits, tags=self._tags)
        if misses:
            self.ir_cache_misses.inc(misses, tags=self._tags)
