"""Fan-out of training progress to WatchTraining streams: each watcher gets its own bounded queue."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainingEvent:
    kind: str  # round_started | epoch_end | round_finished | round_failed
    round: int
    epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    version: int = 0
    message: str = ""
    train_size: int = 0


class EventHub:
    def __init__(self, maxsize: int = 1000) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[queue.Queue[TrainingEvent]] = []
        self._maxsize = maxsize

    def publish(self, event: TrainingEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for q in subscribers:
            with contextlib.suppress(queue.Full):  # a stalled watcher loses old events rather than stalling training
                q.put_nowait(event)

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def subscribe(self, active: Callable[[], bool], poll: float = 0.5) -> Iterator[TrainingEvent]:
        q: queue.Queue[TrainingEvent] = queue.Queue(self._maxsize)
        with self._lock:
            self._subscribers.append(q)
        try:
            while active():
                try:
                    yield q.get(timeout=poll)
                except queue.Empty:
                    continue
        finally:
            with self._lock:
                self._subscribers.remove(q)
