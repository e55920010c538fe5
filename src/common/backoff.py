"""Exponential backoff with jitter, capped: the cap keeps catch-up prompt after a long outage."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.05
    maximum: float = 2.0
    factor: float = 2.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        """Seconds to wait before the next try: uniform in [ceiling/2, ceiling]."""
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return ceiling * (0.5 + self.rng.random() / 2)

    def reset(self) -> None:
        self.attempt = 0
