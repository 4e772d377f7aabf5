"""Syllables and song syntax: a species' syllable types and the order it sings them in.

A phrase (one contour-bank segment) splits into syllables (:func:`split_syllables`); each
syllable is described by a few contour features (:func:`syllable_features`), the species'
syllables are clustered into types (seeded k-means), and :func:`learn_syntax` counts the
first-order transitions between types, with a start/end state, and the silent gaps between
consecutive syllables. :func:`~ddsp_augment.sampling.jitter.compose_song` walks that chain to
sing phrases in the species' own order, and :mod:`ddsp_augment.evaluation.syntax` uses the same
types to compare real and generated songs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..constants import VOICED_THRESHOLD

__all__ = [
    "PHRASE_GAP_S",
    "SYLLABLE_FEATURES",
    "SyntaxModel",
    "kmeans",
    "learn_syntax",
    "phrase_breaks",
    "split_syllables",
    "syllable_features",
]

# Syllables are runs of frames within this many dB of a segment's loudest frame.
SYLLABLE_THRESHOLD_DB = 30.0
# Shortest gap that splits two syllables and shortest syllable, in frames (10 ms at 2 ms).
_MIN_GAP = 5
_MIN_LENGTH = 5

#: Columns of :func:`syllable_features`, and the unit each is divided by before clustering: a
#: difference of one unit is roughly what tells two syllable types apart by ear (a third of an
#: octave in pitch, a factor e^0.5 in duration, a quarter of the syllable in where its energy is,
#: 6 dB in how peaked its loudness is). Fixed units, not the data's own spread: a feature that
#: hardly varies within a species must not be blown up into a type boundary.
SYLLABLE_FEATURES: dict[str, float] = {
    "median_log2_f0": 1 / 3,
    "f0_slope_octaves": 1 / 3,
    "f0_range_octaves": 1 / 3,
    "log_duration_s": 0.5,
    "loudness_centre": 0.25,
    "peak_minus_mean_db": 6.0,
}
_SCALE = np.array(list(SYLLABLE_FEATURES.values()))
# k is the smallest number of types that leaves at most this share of the syllables' spread
# (the k = 1 within-cluster sum of squares) unexplained, at most _MAX_TYPES and one type per
# _SYLLABLES_PER_TYPE syllables, so a species with few recordings does not get a type per
# syllable.
_UNEXPLAINED = 0.2
_MAX_TYPES = 8
_SYLLABLES_PER_TYPE = 3
_KMEANS_ITERATIONS = 50
#: A silence longer than this (s) between two syllables ends a phrase: the gap that
#: :func:`~ddsp_augment.features.contours.find_segments` bridges within a segment by default.
PHRASE_GAP_S = 0.15


class SegmentLike(Protocol):
    """What the jitter needs of a contour-bank segment (``contours.Segment`` satisfies it)."""

    f0_hz: np.ndarray
    loudness_db: np.ndarray
    confidence: np.ndarray
    recording: str


def _syllable_bounds(
    loudness_db: np.ndarray, threshold_db: float, min_gap: int, min_length: int
) -> tuple[np.ndarray, np.ndarray]:
    if threshold_db < 0 or min_gap < 1 or min_length < 1:
        raise ValueError(
            f"need threshold_db >= 0, min_gap >= 1, min_length >= 1; "
            f"got {threshold_db}, {min_gap}, {min_length}"
        )
    if loudness_db.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    peak = float(loudness_db.max())
    # 10th percentile (np.partition: a tenth of np.percentile's cost on a phrase).
    background = float(np.partition(loudness_db, loudness_db.size // 10)[loudness_db.size // 10])
    level = max(peak - threshold_db, (peak + background) / 2)
    # Rising and falling edges of the above-level runs, zero-padded at both ends (np.diff with
    # prepend/append costs 6x as much on a phrase, and this runs for every phrase sampled).
    above = np.zeros(loudness_db.size + 2, np.int8)
    above[1:-1] = loudness_db >= level
    edges = above[1:] - above[:-1]
    starts, ends = (edges == 1).nonzero()[0], (edges == -1).nonzero()[0]
    # Keep a boundary only where the gap before the next syllable is long enough.
    split = starts[1:] - ends[:-1] >= min_gap
    starts = np.concatenate([starts[:1], starts[1:][split]])
    ends = np.concatenate([ends[:-1][split], ends[-1:]])
    long_enough = ends - starts >= min_length
    return starts[long_enough], ends[long_enough]


def split_syllables(
    loudness_db: np.ndarray,
    threshold_db: float = SYLLABLE_THRESHOLD_DB,
    min_gap: int = _MIN_GAP,
    min_length: int = _MIN_LENGTH,
) -> list[tuple[int, int]]:
    """Syllables of a segment ``[frames]`` → ``[(start, end), ...]`` (end exclusive).

    A syllable frame is within ``threshold_db`` of the segment's loudest frame and above the
    midpoint (in dB) between that peak and the segment's background (its 10th-percentile
    loudness): in noisy recordings the background itself sits within ``threshold_db`` of the
    peak. Dips shorter than ``min_gap`` frames (amplitude flicker inside a note) do not split
    a syllable; runs shorter than ``min_length`` frames (clicks, noise) are not syllables and
    count as gap. Defaults: 5 frames, 10 ms on the 2 ms grid.
    """
    starts, ends = _syllable_bounds(np.asarray(loudness_db), threshold_db, min_gap, min_length)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def syllable_features(
    f0_hz: np.ndarray,
    loudness_db: np.ndarray,
    confidence: np.ndarray,
    bounds: Sequence[tuple[int, int]],
    frame_rate: float,
) -> np.ndarray:
    """Contour features of the syllables ``bounds`` of a phrase ``[frames]`` ×3 → ``[n, 6]``.

    Columns (see :data:`SYLLABLE_FEATURES`): median log2 F0 over the syllable's voiced frames
    (all its frames when fewer than 3 are voiced), F0 slope (mean log2 F0 of the last third
    minus the first third, octaves), F0 range (90th − 10th percentile, octaves), log duration
    (s), where the syllable's energy lies (its power-weighted mean time: 0 = onset, 1 = end;
    a crescendo is late, a decaying note early) and peak minus mean loudness (dB).
    """
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
    log_f0 = np.log2(np.asarray(f0_hz, np.float64))
    loud = np.asarray(loudness_db, np.float64)
    voiced_all = np.asarray(confidence) >= VOICED_THRESHOLD
    rows = []
    for start, end in bounds:
        if not 0 <= start < end <= log_f0.shape[0]:
            raise ValueError(f"bounds ({start}, {end}) outside a {log_f0.shape[0]}-frame phrase")
        pitch = log_f0[start:end]
        voiced = voiced_all[start:end]
        if voiced.sum() >= 3:
            pitch = pitch[voiced]
        third = max(1, pitch.shape[0] // 3)
        level = loud[start:end]
        # Relative to the syllable's peak, so the sum cannot overflow.
        power = 10.0 ** ((level - level.max()) / 10.0)
        rows.append(
            [
                np.median(pitch),
                pitch[-third:].mean() - pitch[:third].mean(),
                np.percentile(pitch, 90) - np.percentile(pitch, 10),
                np.log((end - start) / frame_rate),
                (power * np.linspace(0.0, 1.0, end - start)).sum() / power.sum(),
                level.max() - level.mean(),
            ]
        )
    return np.array(rows, np.float64).reshape(-1, len(SYLLABLE_FEATURES))


def kmeans(
    x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = _KMEANS_ITERATIONS
) -> tuple[np.ndarray, np.ndarray, float]:
    """Lloyd's k-means with k-means++ seeding: ``x [n, d]`` → centroids ``[k, d]``, labels
    ``[n]`` and the within-cluster sum of squares. A cluster left empty is re-seeded at the
    point farthest from its centroid, so exactly ``k`` clusters come back (``1 <= k <= n``)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or not 1 <= k <= x.shape[0]:
        raise ValueError(f"need x [n, d] and 1 <= k <= n, got shape {x.shape} and k={k}")
    centroids = x[[rng.integers(x.shape[0])]]
    for _ in range(1, k):
        nearest = ((x[:, None] - centroids[None]) ** 2).sum(-1).min(1)
        # Points that coincide with a centroid have weight 0; all-equal data picks uniformly.
        p = nearest / nearest.sum() if nearest.sum() > 0 else None
        centroids = np.vstack([centroids, x[rng.choice(x.shape[0], p=p)]])
    for _ in range(iterations):
        distances = ((x[:, None] - centroids[None]) ** 2).sum(-1)
        labels = distances.argmin(1)
        moved = centroids.copy()
        for j in range(k):
            members = labels == j
            if members.any():
                moved[j] = x[members].mean(0)
            else:
                moved[j] = x[distances.min(1).argmax()]
        if np.array_equal(moved, centroids):
            break
        centroids = moved
    distances = ((x[:, None] - centroids[None]) ** 2).sum(-1)
    return centroids, distances.argmin(1), float(distances.min(1).sum())


@dataclass(frozen=True)
class SyntaxModel:
    """A species' syllable types and a first-order Markov chain over them.

    Attributes:
        centroids: ``[k, 6]`` type centres in the scaled feature units of
            :data:`SYLLABLE_FEATURES`.
        transitions: ``[k + 1, k + 1]`` row-stochastic; ``transitions[i, j]`` is how often type
            ``j`` follows type ``i`` in a phrase. Index ``k`` is the phrase boundary: row ``k``
            is the first syllable of a phrase, column ``k`` the end of a phrase.
        syllables: per type, ``[n_t, 3]`` int rows ``(segment index, start, end)``: the real
            syllables of that type, to sing again.
        gaps: ``[m]`` frames of silence between consecutive syllables of a phrase, as recorded.
        phrase_gaps: ``[p]`` frames of silence between phrases within a segment, as recorded
            (may be empty: a recording's pauses between segments are not kept).
        frame_rate: control frames per second of the segments it was learned from.
    """

    centroids: np.ndarray
    transitions: np.ndarray
    syllables: tuple[np.ndarray, ...]
    gaps: np.ndarray
    phrase_gaps: np.ndarray
    frame_rate: float

    @property
    def n_types(self) -> int:
        return int(self.centroids.shape[0])

    def assign(self, features: np.ndarray) -> np.ndarray:
        """Syllable type of each row of ``features [n, 6]`` (nearest centroid) → ``[n]`` int."""
        scaled = np.asarray(features, np.float64).reshape(-1, _SCALE.shape[0]) / _SCALE
        return ((scaled[:, None] - self.centroids[None]) ** 2).sum(-1).argmin(1)


def phrase_breaks(starts: np.ndarray, ends: np.ndarray, frame_rate: float) -> np.ndarray:
    """Where a segment's syllables ``[n]`` split into phrases → indices ``[b]`` of the
    syllables that open a new phrase (the gap before them exceeds :data:`PHRASE_GAP_S`)."""
    return (
        np.flatnonzero(np.asarray(starts)[1:] - np.asarray(ends)[:-1] > PHRASE_GAP_S * frame_rate)
        + 1
    )


def learn_syntax(segments: Sequence[SegmentLike], frame_rate: float, seed: int = 0) -> SyntaxModel:
    """Cluster a species' syllables into types and count their order and gaps.

    A phrase is a run of a segment's syllables with no silence longer than
    :data:`PHRASE_GAP_S` between them (:func:`phrase_breaks`). The number of types is the
    smallest k whose k-means leaves at most 20 % of the syllables' spread unexplained (at most
    8 types and one per 3 syllables).
    Deterministic for a given ``seed``.
    """
    features, where, gaps, pauses, lengths = [], [], [], [], []
    for index, segment in enumerate(segments):
        starts, ends = _syllable_bounds(
            np.asarray(segment.loudness_db), SYLLABLE_THRESHOLD_DB, _MIN_GAP, _MIN_LENGTH
        )
        if starts.size == 0:
            continue
        bounds = list(zip(starts.tolist(), ends.tolist(), strict=True))
        features.append(
            syllable_features(
                segment.f0_hz, segment.loudness_db, segment.confidence, bounds, frame_rate
            )
        )
        where.append(np.stack([np.full(starts.size, index), starts, ends], 1))
        breaks = phrase_breaks(starts, ends, frame_rate)
        silences = starts[1:] - ends[:-1]
        gaps.append(np.delete(silences, breaks - 1))
        pauses.append(silences[breaks - 1])
        lengths += np.diff(np.concatenate([[0], breaks, [starts.size]])).tolist()
    if not features:
        raise ValueError(
            f"learn_syntax: no syllable of at least {_MIN_LENGTH} frames in any of the "
            f"{len(segments)} segments"
        )
    x = np.concatenate(features) / _SCALE
    rng = np.random.default_rng(seed)
    largest = max(1, min(_MAX_TYPES, x.shape[0] // _SYLLABLES_PER_TYPE))
    centroids, labels, total = kmeans(x, 1, rng)
    for k in range(2, largest + 1):
        if total == 0:
            break
        fit = kmeans(x, k, rng)
        centroids, labels = fit[0], fit[1]
        if fit[2] <= _UNEXPLAINED * total:
            break
    k = centroids.shape[0]
    counts = np.zeros((k + 1, k + 1))
    for sequence in np.split(labels, np.cumsum(lengths)[:-1]):
        path = np.concatenate([[k], sequence, [k]])
        np.add.at(counts, (path[:-1], path[1:]), 1)
    rows = np.concatenate(where)
    return SyntaxModel(
        centroids=centroids,
        transitions=counts / counts.sum(1, keepdims=True),
        syllables=tuple(rows[labels == j] for j in range(k)),
        gaps=np.concatenate(gaps).astype(np.int64),
        phrase_gaps=np.concatenate(pauses).astype(np.int64),
        frame_rate=float(frame_rate),
    )
