"""Named crash points for fault-injection tests: the trainer kills itself with SIGKILL where a test asks.

Off unless ``ALLOOP_FAULT_POINTS`` names points (testing only; see tests/integration/test_crash_trainer.py). A
SIGKILL from inside is the same as ``kill -9`` from outside, only at a chosen line: between reading labels and
writing them, in the middle of an epoch, after the artifact is written but before it is published, after publishing.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable

log = logging.getLogger(__name__)

POINTS = frozenset({"consume", "epoch", "written", "published"})


class FaultInjector:
    def __init__(self, points: Iterable[str] = ()) -> None:
        chosen = frozenset(p.strip() for p in points if p.strip())
        unknown = chosen - POINTS
        if unknown:
            raise ValueError(f"unknown fault points {sorted(unknown)}; known: {sorted(POINTS)}")
        self.points = chosen
        if chosen:
            log.warning("fault injection armed at %s: this trainer will kill itself (testing only)", sorted(chosen))

    def hit(self, point: str) -> None:
        if point in self.points:
            log.warning("fault point %r: SIGKILL", point)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)
