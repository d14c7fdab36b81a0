"""Prometheus metrics (telemetry) for both services: RPCs by method and code, and each service's own state.

Each service owns a :class:`Metrics` with a registry of its own (several services may share a process, as in the
tests), served over HTTP when ``ALLOOP_METRICS_ADDRESS`` is set. Counters and histograms move as calls happen; the
state that lives in Redis (queue depth, leases out, label stream lag, pool sizes) is read at scrape time by
collectors the services register, so a scrape always shows the current values and costs nothing between scrapes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """One service's metrics. ``service`` labels nothing: each service has its own registry and endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.rpcs = Counter(
            "alloop_rpc_total", "RPCs handled, by method and status code", ["method", "code"], registry=self.registry
        )
        self.rpc_seconds = Histogram(
            "alloop_rpc_seconds",
            "RPC handling time, by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.labels = Counter("alloop_labels_total", "Labels accepted (new, not duplicates)", registry=self.registry)
        self.scored_items = Counter(
            "alloop_scored_items_total",
            "Items scored by the served model, by kind (score, predict, query: a sampling Query, index: shards of "
            "the score index)",
            ["kind"],
            registry=self.registry,
        )
        self.scoring_seconds = Counter(
            "alloop_scoring_seconds_total", "Seconds spent scoring, by request kind", ["kind"], registry=self.registry
        )
        self.embedded_items = Counter(
            "alloop_embedded_items_total", "Pool items the sentence encoder embedded here", registry=self.registry
        )
        self.embedding_seconds = Counter(
            "alloop_embedding_seconds_total", "Seconds spent embedding pool items", registry=self.registry
        )
        self.rounds = Counter(
            "alloop_rounds_total", "Training rounds ended, by outcome", ["outcome"], registry=self.registry
        )
        self.round_phase_seconds = Gauge(
            "alloop_round_phase_seconds", "The last round's seconds, by phase", ["phase"], registry=self.registry
        )
        self._server: Any = None

    def collect_with(self, collect: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
        """Register ``collect``, called at each scrape for values read on demand (from Redis, the served model)."""
        self.registry.register(_Collector(collect))

    def serve(self, address: str) -> int:
        """Serve ``/metrics`` on ``host:port`` (port 0: a free one); returns the port."""
        host, _, port = address.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=self.registry)
        self._server = server
        bound = int(server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host or "0.0.0.0", bound)
        return bound

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Collector(Collector):
    def __init__(self, collect: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            return list(self._collect())
        except Exception as exc:
            log.warning("metrics: could not read current state (%s)", exc)
            return []

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # values come at scrape time; nothing to describe up front


def gauge(name: str, documentation: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


__all__ = ["Metrics", "gauge"]
