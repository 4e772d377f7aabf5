"""A synthetic species with a known song syntax, for the syllable, jitter and syntax tests."""

from __future__ import annotations

import dataclasses

import numpy as np

from ddsp_augment.constants import LOUDNESS_FLOOR_DB

FRAME_RATE = 500.0
#: Syllable types A, B, C: steady notes of distinct pitch, always sung in the order A→B→C.
ABC_HZ = (2000.0, 3000.0, 4500.0)
#: Recorded gaps between syllables, frames (all shorter than a phrase break, 0.15 s).
GAP_FRAMES = (15, 30)


@dataclasses.dataclass(frozen=True)
class Segment:
    f0_hz: np.ndarray
    loudness_db: np.ndarray
    confidence: np.ndarray
    recording: str


def abc_segment(rng: np.random.Generator, recording: str) -> Segment:
    """One phrase A→B→C: notes of 30–49 frames at -20 dB (±1 dB), 1 % pitch scatter, gaps of
    ``GAP_FRAMES`` at the loudness floor, 10 silent frames before the first note."""
    pieces = [(np.full(10, ABC_HZ[0]), np.full(10, LOUDNESS_FLOOR_DB), np.zeros(10))]
    for hz in ABC_HZ:
        n, gap = int(rng.integers(30, 50)), int(rng.integers(*GAP_FRAMES))
        note = hz * (1 + 0.01 * rng.standard_normal())
        pieces.append((np.full(n, note), -20 + rng.normal(0, 1, n), np.full(n, 0.9)))
        pieces.append((np.full(gap, note), np.full(gap, LOUDNESS_FLOOR_DB), np.zeros(gap)))
    f0, loud, conf = (np.concatenate(part).astype(np.float32) for part in zip(*pieces, strict=True))
    return Segment(f0, loud, conf, recording)


def abc_species(n: int = 12, seed: int = 0) -> list[Segment]:
    """``n`` A→B→C phrases from three recordings."""
    rng = np.random.default_rng(seed)
    return [abc_segment(rng, f"rec{i % 3}") for i in range(n)]


def note_type(f0_hz: np.ndarray) -> int:
    """Which of A, B, C a sung stretch is (nearest in log frequency to its median F0)."""
    return int(np.argmin(np.abs(np.log2(np.median(f0_hz) / np.array(ABC_HZ)))))
