# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This module util is PRIVATE to the ktrdr.ops collection. It may change or go away
# without notice; do not use it from other collections.
"""Polling with a deadline: the growing, jittered delay between two looks at something slow."""

from __future__ import annotations

import random
import time


class PollSchedule:
    """Delays that start at ``interval`` and grow by ``factor`` up to ``max_interval``.

    Each delay is jittered by +/- ``jitter`` (a fraction) so that many waiters polling one
    backend do not fall into step, and is never longer than what is left before the deadline.
    """

    def __init__(self, interval, max_interval, timeout, factor=1.5, jitter=0.2, rng=random, clock=time.monotonic):
        if interval <= 0:
            raise ValueError("poll interval must be positive, got %s" % interval)
        self.interval = float(interval)
        self.max_interval = max(float(max_interval), self.interval)
        self.factor = factor
        self.jitter = jitter
        self._rng = rng
        self._clock = clock
        self.started = clock()
        self.deadline = self.started + float(timeout)
        self._current = self.interval

    def elapsed(self):
        return self._clock() - self.started

    def remaining(self):
        return self.deadline - self._clock()

    def expired(self):
        return self.remaining() <= 0

    def next_delay(self):
        """The next delay (already capped by the deadline); advances the schedule."""
        base = self._current
        self._current = min(self._current * self.factor, self.max_interval)
        delay = base * (1 + self._rng.uniform(-self.jitter, self.jitter))
        return max(0.0, min(delay, self.remaining()))

    def reset(self):
        """Back to the short interval (something moved, look again soon)."""
        self._current = self.interval
