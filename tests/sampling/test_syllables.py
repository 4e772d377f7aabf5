"""Syllable types and song syntax: k-means, the k rule, transitions and gaps of a known song."""

from __future__ import annotations

import numpy as np
import pytest
from _songs import ABC_HZ, FRAME_RATE, GAP_FRAMES, Segment, abc_species

from ddsp_augment.constants import LOUDNESS_FLOOR_DB
from ddsp_augment.sampling.syllables import (
    SYLLABLE_FEATURES,
    kmeans,
    learn_syntax,
    phrase_breaks,
    syllable_features,
)


def test_kmeans_finds_three_separated_blobs_deterministically():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(0, 0.1, (20, 2)) for c in centres])
    found, labels, inertia = kmeans(x, 3, np.random.default_rng(1))
    again = kmeans(x, 3, np.random.default_rng(1))
    np.testing.assert_array_equal(found, again[0])
    # Each blob is one cluster, each cluster one blob.
    assert sorted(len(set(labels[i : i + 20])) for i in (0, 20, 40)) == [1, 1, 1]
    assert len(set(labels)) == 3
    np.testing.assert_allclose(np.sort(found, axis=0), np.sort(centres, axis=0), atol=0.1)
    assert inertia == pytest.approx(60 * 2 * 0.01, rel=0.3)
    with pytest.raises(ValueError, match="k <= n"):
        kmeans(x, 61, np.random.default_rng(0))


def test_features_of_a_known_syllable():
    n = 100
    f0 = np.exp2(np.linspace(11.0, 12.0, n)).astype(np.float32)  # 2 kHz up an octave to 4 kHz
    loud = np.full(n, -20.0, np.float32)
    conf = np.full(n, 0.9, np.float32)
    (row,) = syllable_features(f0, loud, conf, [(0, n)], FRAME_RATE)
    values = dict(zip(SYLLABLE_FEATURES, row, strict=True))
    assert values["median_log2_f0"] == pytest.approx(11.5, abs=0.01)
    # Mean of the last 33 frames minus the first 33 of a 1-octave glide over 99 frame steps.
    assert values["f0_slope_octaves"] == pytest.approx(67 / 99)
    assert values["f0_range_octaves"] == pytest.approx(0.8, abs=0.01)
    assert values["log_duration_s"] == pytest.approx(np.log(0.2))
    assert values["loudness_centre"] == pytest.approx(0.5)
    assert values["peak_minus_mean_db"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="outside"):
        syllable_features(f0, loud, conf, [(10, n + 1)], FRAME_RATE)


def test_phrase_breaks_at_long_pauses():
    # Gaps of 10, 100 and 20 frames at 500 Hz: only 0.2 s exceeds the 0.15 s phrase gap.
    starts, ends = np.array([0, 30, 150, 190]), np.array([20, 50, 170, 200])
    np.testing.assert_array_equal(phrase_breaks(starts, ends, FRAME_RATE), [2])


def test_learned_syntax_of_an_abc_species():
    segments = abc_species()
    model = learn_syntax(segments, FRAME_RATE)
    assert model.n_types == 3
    # Name the types by their pitch: A, B, C in order, then the phrase boundary.
    order = np.argsort(model.centroids[:, 0])
    np.testing.assert_allclose(
        np.exp2(model.centroids[order, 0] * SYLLABLE_FEATURES["median_log2_f0"]),
        ABC_HZ,
        rtol=0.02,
    )
    states = np.append(order, 3)
    want = np.zeros((4, 4))
    want[3, 0] = want[0, 1] = want[1, 2] = want[2, 3] = 1.0  # start→A→B→C→end
    np.testing.assert_array_equal(model.transitions[np.ix_(states, states)], want)
    assert [len(model.syllables[t]) for t in order] == [12, 12, 12]
    # Gaps after A and B (C's is the segment's tail): 24 of them, in the recorded range.
    assert model.gaps.shape == (24,)
    assert GAP_FRAMES[0] <= model.gaps.min() and model.gaps.max() < GAP_FRAMES[1]
    assert model.phrase_gaps.size == 0
    again = learn_syntax(segments, FRAME_RATE)
    np.testing.assert_array_equal(model.centroids, again.centroids)


def test_learn_syntax_needs_a_syllable():
    flat = Segment(
        np.full(3, 2000.0, np.float32),
        np.full(3, LOUDNESS_FLOOR_DB, np.float32),
        np.zeros(3, np.float32),
        "rec",
    )
    with pytest.raises(ValueError, match="no syllable"):
        learn_syntax([flat], FRAME_RATE)
