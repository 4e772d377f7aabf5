"""Jittered contours: new, plausible songs from a species' real F0/loudness stretches.

Sampling starts from real segments (see :mod:`ddsp_augment.contours`) and varies them: pitch
shift, tempo (time-stretch of the contours, not of audio), vibrato, loudness gain and envelope
warp, syllable edits (reorder, drop, repeat) and recombination of phrases from different
recordings. Defaults come from the species' own measured variation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .constants import LOUDNESS_FLOOR_DB

__all__ = ["JitterConfig", "compose_song", "jitter_contours", "split_syllables"]

_F0_RANGE_HZ = (250.0, 15000.0)
_SYLLABLE_RANGE_DB = 30.0


class _Segment(Protocol):
    f0_hz: np.ndarray
    loudness_db: np.ndarray
    confidence: np.ndarray
    recording: str


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max <= {high}, got {value}")


@dataclass(frozen=True)
class JitterConfig:
    """How far a sampled song may stray from the real ones. Ranges are drawn uniformly.

    Attributes:
        pitch_cents: Maximum pitch shift of a phrase, ± cents.
        tempo: (min, max) tempo factor; 1.25 plays the contours 25 % faster.
        vibrato_cents: (min, max) depth of added sinusoidal frequency modulation, cents.
        vibrato_hz: (min, max) rate of that modulation, Hz.
        gain_db: (min, max) loudness offset of a phrase, dB.
        envelope_warp_db: Standard deviation of a smooth random loudness curve added to a phrase.
        p_drop: Probability of dropping each syllable (at least one is kept).
        p_repeat: Probability of repeating each syllable.
        p_reorder: Probability of shuffling a phrase's syllable order.
        recombine: Build a song from phrases of different recordings (else one recording).
        gap_seconds: (min, max) silence between phrases.
    """

    pitch_cents: float = 100.0
    tempo: tuple[float, float] = (0.9, 1.1)
    vibrato_cents: tuple[float, float] = (0.0, 20.0)
    vibrato_hz: tuple[float, float] = (5.0, 30.0)
    gain_db: tuple[float, float] = (-6.0, 6.0)
    envelope_warp_db: float = 2.0
    p_drop: float = 0.15
    p_repeat: float = 0.15
    p_reorder: float = 0.3
    recombine: bool = True
    gap_seconds: tuple[float, float] = (0.05, 0.5)

    def __post_init__(self) -> None:
        if not 0 <= self.pitch_cents <= 1200:
            raise ValueError(f"pitch_cents must be in [0, 1200], got {self.pitch_cents}")
        _check_range("tempo", self.tempo, 0.25, 4.0)
        _check_range("vibrato_cents", self.vibrato_cents, 0.0, 600.0)
        _check_range("vibrato_hz", self.vibrato_hz, 0.0, 100.0)
        _check_range("gain_db", self.gain_db, -60.0, 60.0)
        _check_range("gap_seconds", self.gap_seconds, 0.0, 10.0)
        if self.envelope_warp_db < 0:
            raise ValueError(f"envelope_warp_db must be >= 0, got {self.envelope_warp_db}")
        for name in ("p_drop", "p_repeat", "p_reorder"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")

    @classmethod
    def from_segments(cls, segments: Sequence[_Segment], frame_rate: float = 500.0) -> JitterConfig:
        """Defaults scaled to a species' own variation.

        Pitch range: the spread (std, cents) of the segments' median voiced F0, in [25, 200];
        tempo range: half the coefficient of variation of syllable durations, in [±5 %, ±20 %].
        """
        medians, durations = [], []
        for segment in segments:
            voiced = segment.confidence >= 0.5
            if voiced.sum() >= 3:
                medians.append(np.median(segment.f0_hz[voiced]))
            durations += [end - start for start, end in split_syllables(segment.loudness_db)]
        spread = float(np.std(1200 * np.log2(np.asarray(medians) / np.median(medians)))) if len(medians) > 1 else 50.0
        cv = float(np.std(durations) / np.mean(durations)) if len(durations) > 1 else 0.1
        stretch = float(np.clip(cv / 2, 0.05, 0.2))
        return cls(pitch_cents=float(np.clip(spread, 25.0, 200.0)), tempo=(1 - stretch, 1 + stretch))


def split_syllables(
    loudness_db: np.ndarray, threshold_db: float = _SYLLABLE_RANGE_DB
) -> list[tuple[int, int]]:
    """Syllables ``[(start, end), ...]``: runs of frames within ``threshold_db`` of the maximum."""
    loudness_db = np.asarray(loudness_db)
    if loudness_db.size == 0:
        return []
    active = (loudness_db >= loudness_db.max() - threshold_db).astype(np.int8)
    edges = np.diff(np.concatenate([[0], active, [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _stretch(values: np.ndarray, length: int) -> np.ndarray:
    if values.shape[0] == length:
        return values
    source = np.linspace(0.0, values.shape[0] - 1, length)
    return np.interp(source, np.arange(values.shape[0]), values).astype(np.float32)


def jitter_contours(
    f0_hz: np.ndarray,
    loudness_db: np.ndarray,
    confidence: np.ndarray,
    config: JitterConfig,
    rng: np.random.Generator,
    frame_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tempo, pitch, vibrato, gain and envelope jitter of one phrase ``[frames]`` ×3.

    Tempo changes the length (``round(frames / tempo)``); everything else keeps it.
    """
    tempo = rng.uniform(*config.tempo)
    length = max(1, int(round(f0_hz.shape[0] / tempo)))
    log_f0 = _stretch(np.log2(f0_hz), length)
    loud = _stretch(loudness_db, length)
    conf = _stretch(confidence, length)
    t = np.arange(length) / frame_rate
    depth = rng.uniform(*config.vibrato_cents)
    rate = rng.uniform(*config.vibrato_hz)
    cents = rng.uniform(-config.pitch_cents, config.pitch_cents)
    cents = cents + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    f0 = np.clip(2.0 ** (log_f0 + cents / 1200.0), *_F0_RANGE_HZ)
    # A smooth random gain curve through a few knots: real phrases swell and fade.
    knots = max(2, int(length / frame_rate * 4) + 2)
    warp = np.interp(
        np.linspace(0, knots - 1, length), np.arange(knots), rng.normal(0, config.envelope_warp_db, knots)
    )
    gain = rng.uniform(*config.gain_db) + warp
    loud = np.where(loud > LOUDNESS_FLOOR_DB, np.maximum(loud + gain, LOUDNESS_FLOOR_DB), loud)
    return f0.astype(np.float32), loud.astype(np.float32), conf.astype(np.float32)


def _edit_syllables(
    segment: _Segment, config: JitterConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reorder, drop and repeat a segment's syllables, each keeping the gap that followed it."""
    n = segment.f0_hz.shape[0]
    syllables = split_syllables(segment.loudness_db)
    if len(syllables) < 2:
        return segment.f0_hz, segment.loudness_db, segment.confidence
    starts = [s for s, _ in syllables] + [n]
    pieces = [(syllables[i][0], starts[i + 1]) for i in range(len(syllables))]
    keep = [p for p in pieces if rng.random() >= config.p_drop] or [pieces[rng.integers(len(pieces))]]
    edited = [p for p in keep for _ in range(2 if rng.random() < config.p_repeat else 1)]
    if rng.random() < config.p_reorder:
        edited = [edited[i] for i in rng.permutation(len(edited))]
    index = np.concatenate([np.arange(a, b) for a, b in edited])
    return segment.f0_hz[index], segment.loudness_db[index], segment.confidence[index]


def compose_song(
    segments: Sequence[_Segment],
    n_frames: int,
    config: JitterConfig,
    rng: np.random.Generator,
    frame_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A new song ``[n_frames]`` ×3 (f0, loudness, confidence) from real segments.

    Phrases (edited, jittered segments) are laid end to end with random silent gaps, after a
    random lead-in so songs do not all start at frame 0. Silent frames have the loudness floor,
    zero confidence and an F0 held from the neighbouring phrase (finite, > 0).
    """
    if not segments:
        raise ValueError("compose_song needs at least one segment")
    f0 = np.full(n_frames, np.nan, np.float32)
    loud = np.full(n_frames, LOUDNESS_FLOOR_DB, np.float32)
    conf = np.zeros(n_frames, np.float32)
    pool = list(segments)
    if not config.recombine:
        recording = pool[rng.integers(len(pool))].recording
        pool = [s for s in pool if s.recording == recording]
    position = int(rng.uniform(0, config.gap_seconds[1]) * frame_rate)
    while position < n_frames:
        phrase = _edit_syllables(pool[rng.integers(len(pool))], config, rng)
        p_f0, p_loud, p_conf = jitter_contours(*phrase, config, rng, frame_rate)
        end = min(n_frames, position + p_f0.shape[0])
        f0[position:end] = p_f0[: end - position]
        loud[position:end] = p_loud[: end - position]
        conf[position:end] = p_conf[: end - position]
        position = end + int(rng.uniform(*config.gap_seconds) * frame_rate)
    known = np.flatnonzero(~np.isnan(f0))
    if known.size == 0:  # the lead-in filled the whole clip
        f0[:] = np.median(np.concatenate([s.f0_hz for s in segments]))
    else:
        f0 = np.interp(np.arange(n_frames), known, f0[known]).astype(np.float32)
    return f0, loud, conf
