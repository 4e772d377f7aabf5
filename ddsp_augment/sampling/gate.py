"""A quality gate for generated clips: redraw a clip that a judge does not assign to its species.

Published positive results for generative bird augmentation filter their synthetic clips with a
classifier trained on real audio; :meth:`SpeciesBank.sample` offers the same through
``min_confidence=`` and ``judge=``. A judge is any callable ``judge(audio [samples], sample_rate,
species) -> confidence in [0, 1]`` that the clip is that species: BirdNET
(``evaluation.birdnet.BirdNETJudge().confidence``) or a light classifier fitted on the user's own
real clips (``evaluation.clip_judge.RealClipJudge``, for species BirdNET does not know).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["GateStats", "Judge", "gated_draw"]

Judge = Callable[[np.ndarray, int, str], float]


@dataclass
class GateStats:
    """Running totals of a gate: items made, clips drawn and accepted, seconds spent."""

    items: int = 0
    draws: int = 0
    accepted: int = 0
    draw_seconds: float = 0.0
    judge_seconds: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        """Accepted / drawn clips (NaN before any draw)."""
        return self.accepted / self.draws if self.draws else float("nan")

    @property
    def seconds_per_item(self) -> float:
        """Synthesis plus judging time per delivered item (NaN before any item)."""
        return (self.draw_seconds + self.judge_seconds) / self.items if self.items else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {
            "items": self.items,
            "draws": self.draws,
            "accepted": self.accepted,
            "acceptance_rate": self.acceptance_rate,
            "seconds_per_item": self.seconds_per_item,
            "judge_seconds_per_item": self.judge_seconds / max(self.items, 1),
        }


def gated_draw(
    draw: Callable[[], np.ndarray],
    judge: Judge,
    species: str,
    sample_rate: int,
    min_confidence: float,
    max_draws: int,
    stats: GateStats,
    first: np.ndarray | None = None,
) -> np.ndarray:
    """Call ``draw()`` until ``judge`` gives the clip ``>= min_confidence`` for ``species``.

    ``first``: a clip already drawn (a batch's), judged before any call to ``draw``; its
    rendering is not counted in ``stats.draw_seconds`` (the gate's cost is redraws and judging).
    After ``max_draws`` rejected clips, the most convincing one is returned (a caller that
    must have only accepted clips checks ``stats.accepted``). ``draw`` keeps drawing from the
    clip's own generator, so a seeded gate is reproducible.
    """
    best, best_score = None, -np.inf
    for attempt in range(max_draws):
        started = time.perf_counter()
        clip = first if attempt == 0 and first is not None else draw()
        judged = time.perf_counter()
        score = float(judge(clip, sample_rate, species))
        stats.draw_seconds += judged - started
        stats.judge_seconds += time.perf_counter() - judged
        stats.draws += 1
        if score >= min_confidence:
            stats.accepted += 1
            best = clip
            break
        if score > best_score:
            best, best_score = clip, score
    stats.items += 1
    return best
