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

    When the caller can estimate when the thing will be done (``next_delay(expected_in=...)``),
    the delay never sleeps past that moment, and from then on, for ``near_window`` seconds, it
    looks every ``near_interval``: the end is seen within ``near_interval`` of it instead of up to
    a whole grown delay later. After the window (the estimate was wrong) the backoff resumes.
    """

    def __init__(self, interval, max_interval, timeout, factor=1.5, jitter=0.2, rng=random, clock=time.monotonic,
                 near_interval=0.5, near_window=15.0, first=None):
        if interval <= 0:
            raise ValueError("poll interval must be positive, got %s" % interval)
        self.interval = float(interval)
        self.max_interval = max(float(max_interval), self.interval)
        self.factor = factor
        self.jitter = jitter
        self.near_interval = float(near_interval)
        self.near_window = float(near_window)
        self._rng = rng
        self._clock = clock
        self.started = clock()
        self.deadline = self.started + float(timeout)
        # ``first``: a shorter first delay (growing from there), so that something that ends
        # quickly is seen quickly; reset() goes back to ``interval``.
        self._current = min(float(first), self.interval) if first else self.interval

    def elapsed(self):
        return self._clock() - self.started

    def remaining(self):
        return self.deadline - self._clock()

    def expired(self):
        return self.remaining() <= 0

    def next_delay(self, expected_in=None):
        """The next delay (already capped by the deadline); advances the schedule.

        ``expected_in``: estimated seconds until the end (negative once overdue), or None.
        """
        base = self._current
        self._current = min(self._current * self.factor, self.max_interval)
        delay = base * (1 + self._rng.uniform(-self.jitter, self.jitter))
        if expected_in is not None and expected_in >= -self.near_window:
            delay = min(delay, max(expected_in, self.near_interval))
        return max(0.0, min(delay, self.remaining()))

    def reset(self):
        """Back to the short interval (something moved, look again soon)."""
        self._current = self.interval
