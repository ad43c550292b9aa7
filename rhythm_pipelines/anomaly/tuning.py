"""The generic detector's constants that are chosen by looking at results, and the grid they are chosen from.

Every constant here is chosen by leave-one-category-out on NAB's labelled categories
(:mod:`~rhythm_pipelines.anomaly.loco`): the grid below was fixed before any choice, and ``DEFAULT`` is what
the protocol chooses on all categories together (its in-sample choice). ``rhythm anomalies evaluate``
re-runs the choice and says whether it still picks ``DEFAULT``. Fixed by design, not chosen on results:
the detectors' windows (1000 points, min 20), the level-shift/jump/trend spans (12/30/120), the rhythm
window (14 days), the warm-up (100 points).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

from rhythm_pipelines.anomaly.threshold import RecordThreshold


@dataclass(frozen=True)
class Tuning:
    half_life_days: float  # the record forgets an old deviation by half in this long (inf: never)
    factor: float  # a point must beat the record by this factor...
    zmin: float  # ...and lie this many robust spreads out
    min_rhythm: float | None  # the seasonal channel speaks from this rhythm strength (None: never)
    refractory: int  # at most one flag per this many points

    def threshold(self, warmup: int = 100) -> RecordThreshold:
        """The record bar with these constants."""
        return RecordThreshold(self.half_life_days, self.factor, self.zmin, self.refractory, warmup)

    def label(self) -> str:
        """For people: 'half-life 90 d, factor 1.1, z 6, rhythm 0.5, refractory 25'."""
        half = "never" if math.isinf(self.half_life_days) else f"{self.half_life_days:g} d"
        rhythm = "off" if self.min_rhythm is None else f"{self.min_rhythm:g}"
        return (
            f"half-life {half}, factor {self.factor:g}, z {self.zmin:g}, rhythm {rhythm}, refractory {self.refractory}"
        )

    def as_dict(self) -> dict:
        return asdict(self)


# The grid, in order of preference when two choices score the same (the earlier wins).
HALF_LIVES = (90.0, 30.0, 7.0, math.inf)
FACTORS = (1.1, 1.0, 1.25)
ZMINS = (6.0, 5.0, 7.0)
MIN_RHYTHMS = (0.9, 0.5, None)
REFRACTORIES = (50, 25, 100)
GRID: tuple[Tuning, ...] = tuple(
    Tuning(*values) for values in itertools.product(HALF_LIVES, FACTORS, ZMINS, MIN_RHYTHMS, REFRACTORIES)
)
DEFAULT = Tuning(half_life_days=90.0, factor=1.1, zmin=6.0, min_rhythm=0.5, refractory=25)
