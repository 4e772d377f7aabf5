"""Song syntax statistics: do generated songs sing a species' syllables in its order and rhythm?

Songs (real or generated contours) are cut into active stretches by the contour bank's own rule
(:func:`~ddsp_augment.features.contours.find_segments`), those into syllables
(:func:`~ddsp_augment.sampling.syllables.split_syllables`) and phrases (runs of syllables
without a pause over :data:`~ddsp_augment.sampling.syllables.PHRASE_GAP_S`, as the syntax model
learns them), and each syllable gets the type
of the species' clustering (:class:`~ddsp_augment.sampling.syllables.SyntaxModel`), so real and
generated songs are read with the same alphabet. Two sets of songs are then compared by the
Jensen–Shannon divergence of their syllable-bigram distributions (phrase start and end
included) and the Wasserstein distances of their syllable, gap and phrase durations. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..features.contours import find_segments
from ..sampling.syllables import SyntaxModel, phrase_breaks, split_syllables, syllable_features
from .metrics import wasserstein

__all__ = [
    "SongStatistics",
    "bigram_distribution",
    "jensen_shannon",
    "song_statistics",
    "syntax_distances",
]

Contours = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class SongStatistics:
    """What a set of songs says about syntax.

    Attributes:
        sequences: per phrase, its syllable types in order (``[syllables]`` int).
        syllable_s: ``[n]`` syllable durations, s.
        gap_s: ``[m]`` silences between consecutive syllables of a phrase, s.
        phrase_s: ``[p]`` phrase durations (first syllable onset to last offset), s.
    """

    sequences: tuple[np.ndarray, ...]
    syllable_s: np.ndarray
    gap_s: np.ndarray
    phrase_s: np.ndarray


def song_statistics(
    songs: Sequence[Contours], syntax: SyntaxModel, drop_cut: bool = False
) -> SongStatistics:
    """Syntax statistics of ``songs``, each ``(f0_hz, loudness_db, confidence)`` ``[frames]``.

    ``drop_cut`` leaves out phrases that touch the first or last frame of their song: a clip's
    edges cut phrases short (generated songs end mid-phrase), which would bias phrase lengths
    and start/end transitions. Contour-bank segments are whole phrases: keep them.
    """
    rate = syntax.frame_rate
    sequences, syllables, gaps, phrases = [], [], [], []
    for f0, loud, conf in songs:
        loud = np.asarray(loud)
        for a, b in find_segments(loud, rate):
            bounds = split_syllables(loud[a:b])
            if not bounds:
                continue
            types = syntax.assign(syllable_features(f0[a:b], loud[a:b], conf[a:b], bounds, rate))
            starts, ends = np.array(bounds).T
            pieces = np.split(np.arange(starts.size), phrase_breaks(starts, ends, rate))
            for i, phrase in enumerate(pieces):
                cut = (a == 0 and i == 0) or (b == loud.shape[0] and i == len(pieces) - 1)
                if drop_cut and cut:
                    continue
                first, last = phrase[0], phrase[-1]
                sequences.append(types[phrase])
                syllables.append((ends[phrase] - starts[phrase]) / rate)
                gaps.append((starts[phrase][1:] - ends[phrase][:-1]) / rate)
                phrases.append((ends[last] - starts[first]) / rate)
    if not sequences:
        raise ValueError(f"song_statistics: no syllable found in {len(songs)} songs")
    return SongStatistics(
        sequences=tuple(sequences),
        syllable_s=np.concatenate(syllables),
        gap_s=np.concatenate(gaps),
        phrase_s=np.array(phrases, np.float64),
    )


def bigram_distribution(sequences: Sequence[np.ndarray], n_types: int) -> np.ndarray:
    """Share of each transition ``[n_types + 1, n_types + 1]`` over all phrases (sums to 1).

    Index ``n_types`` is the phrase boundary: ``[n_types, j]`` counts phrases opening with type
    ``j`` and ``[i, n_types]`` phrases closing with type ``i``.
    """
    counts = np.zeros((n_types + 1, n_types + 1))
    for sequence in sequences:
        sequence = np.asarray(sequence, np.int64)
        if sequence.size and (sequence.min() < 0 or sequence.max() >= n_types):
            raise ValueError(f"syllable types must be in [0, {n_types}), got {sequence}")
        path = np.concatenate([[n_types], sequence, [n_types]])
        np.add.at(counts, (path[:-1], path[1:]), 1)
    if counts.sum() == 0:
        raise ValueError("bigram_distribution needs at least one phrase")
    return counts / counts.sum()


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits (0: identical, 1: disjoint supports) between two
    distributions of the same shape (each normalised to sum 1)."""
    p, q = np.asarray(p, np.float64).ravel(), np.asarray(q, np.float64).ravel()
    if p.shape != q.shape or (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError(
            f"jensen_shannon needs two non-negative, non-zero distributions of one shape, "
            f"got sizes {p.size} and {q.size}"
        )
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / m[nz])).sum())

    return max(0.0, (kl(p) + kl(q)) / 2)


def syntax_distances(a: SongStatistics, b: SongStatistics, n_types: int) -> dict[str, float]:
    """How far song set ``b`` is from ``a``: ``transition_js`` (bits, bigrams with phrase
    boundaries) and ``syllable_w_s``, ``gap_w_s``, ``phrase_w_s`` (Wasserstein, seconds; a gap
    distance of 0 when neither set has a phrase of two syllables, NaN-free)."""
    both_gaps = a.gap_s.size > 0 and b.gap_s.size > 0
    gap = wasserstein(a.gap_s, b.gap_s) if both_gaps else 0.0
    if not both_gaps and a.gap_s.size + b.gap_s.size > 0:
        # One set has gaps, the other none: as far as the gaps that exist are from nothing.
        gap = float(np.mean(np.concatenate([a.gap_s, b.gap_s])))
    return {
        "transition_js": jensen_shannon(
            bigram_distribution(a.sequences, n_types), bigram_distribution(b.sequences, n_types)
        ),
        "syllable_w_s": wasserstein(a.syllable_s, b.syllable_s),
        "gap_w_s": gap,
        "phrase_w_s": wasserstein(a.phrase_s, b.phrase_s),
    }
