"""Syntax statistics: exact answers on constructed song sets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _songs import FRAME_RATE, abc_segment, abc_species

from ddsp_augment.evaluation.syntax import (
    bigram_distribution,
    jensen_shannon,
    song_statistics,
    syntax_distances,
)
from ddsp_augment.sampling.syllables import learn_syntax

FIELDS = ("f0_hz", "loudness_db", "confidence")


def _songs(segments):
    return [tuple(getattr(s, f) for f in FIELDS) for s in segments]


def _without_c(segment):
    """The phrase cut where its last note (C) starts."""
    sung = np.flatnonzero(segment.loudness_db > segment.loudness_db.min())
    cut = int(sung[np.flatnonzero(np.diff(sung) > 1)[-1] + 1])
    return dataclasses.replace(segment, **{f: getattr(segment, f)[:cut] for f in FIELDS})


def test_jensen_shannon_known_values():
    p = np.array([0.2, 0.3, 0.5])
    assert jensen_shannon(p, p) == 0.0
    assert jensen_shannon([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    # p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4):
    # KL(p||m) = log2(4/3), KL(q||m) = 1/2 log2(2/3) + 1/2 log2(2).
    want = (np.log2(4 / 3) + 0.5 * np.log2(2 / 3) + 0.5) / 2
    assert jensen_shannon([1.0, 0.0], [0.5, 0.5]) == pytest.approx(want)
    assert jensen_shannon([2.0, 0.0], [1.0, 1.0]) == pytest.approx(want)  # normalised
    with pytest.raises(ValueError, match="one shape"):
        jensen_shannon([1.0, 0.0], [1.0])


def test_bigram_distribution_counts_phrase_boundaries():
    # Phrases "0 1" and "1": start→0, 0→1, 1→end, start→1, 1→end (5 transitions).
    got = bigram_distribution([np.array([0, 1]), np.array([1])], n_types=2)
    want = np.zeros((3, 3))
    want[2, 0] = want[0, 1] = want[2, 1] = 1 / 5
    want[1, 2] = 2 / 5
    np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match="types must be in"):
        bigram_distribution([np.array([2])], n_types=2)


def test_identical_sets_are_at_distance_zero():
    segments = abc_species()
    model = learn_syntax(segments, FRAME_RATE)
    stats = song_statistics(_songs(segments), model)
    assert len(stats.sequences) == 12 and stats.syllable_s.shape == (36,)
    assert stats.gap_s.shape == (24,) and stats.phrase_s.shape == (12,)
    assert syntax_distances(stats, stats, model.n_types) == {
        "transition_js": 0.0,
        "syllable_w_s": 0.0,
        "gap_w_s": 0.0,
        "phrase_w_s": 0.0,
    }


def test_a_known_difference():
    segments = abc_species()
    model = learn_syntax(segments, FRAME_RATE)
    real = song_statistics(_songs(segments), model)
    # The same phrases with C left out: every phrase ends after B, and B→C becomes B→end.
    short = song_statistics(_songs([_without_c(s) for s in segments]), model)
    # Real bigrams: start→A, A→B, B→C, C→end, 1/4 each; without C: start→A, A→B, B→end, 1/3
    # each. Shared mass: start→A and A→B, with m = 7/24; B→C and C→end only in the first (m =
    # 1/8) and B→end only in the second (m = 1/6).
    kl_real = 2 * 0.25 * np.log2(0.25 / (7 / 24)) + 2 * 0.25 * np.log2(2)
    kl_short = 2 / 3 * np.log2((1 / 3) / (7 / 24)) + 1 / 3 * np.log2(2)
    distances = syntax_distances(real, short, model.n_types)
    assert distances["transition_js"] == pytest.approx((kl_real + kl_short) / 2)
    # Every phrase loses C and the gap before it: equal-size samples, so the Wasserstein
    # distance is the mean difference of the sorted durations.
    lost = np.sort(real.phrase_s) - np.sort(short.phrase_s)
    assert lost.min() > 0.06  # C is at least 30 frames, the gap 15
    assert distances["phrase_w_s"] == pytest.approx(float(lost.mean()))


def test_cut_phrases_can_be_left_out():
    rng = np.random.default_rng(1)
    segment = abc_segment(rng, "rec")
    model = learn_syntax(abc_species(), FRAME_RATE)
    # One phrase A B C A B C whose first note is cut by the clip's start.
    song = tuple(
        np.concatenate([c[20:], c])
        for c in (segment.f0_hz, segment.loudness_db, segment.confidence)
    )
    assert len(song_statistics([song], model).sequences) == 1  # one active stretch
    with pytest.raises(ValueError, match="no syllable"):
        song_statistics([song], model, drop_cut=True)
