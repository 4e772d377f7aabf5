"""``benchmarks/realism.py``: generated songs as long as the held-out clips (no BirdNET run)."""

from __future__ import annotations

import argparse

import numpy as np
from conftest import BANK_SPECIES
from realism import RATE, sample_lengths, song_lengths


def test_songs_take_the_held_out_lengths_in_turn_unless_seconds_is_given():
    args = argparse.Namespace(n=5, seconds=None)
    assert song_lengths(args, [100, 200]) == [100, 200, 100, 200, 100]
    # No held-out clip to match: 3 s songs.
    assert song_lengths(args, []) == [3 * RATE] * 5
    args.seconds = 0.5
    assert song_lengths(args, [100, 200]) == [RATE // 2] * 5


def test_sample_lengths_renders_each_length_and_is_seeded(small_bank):
    species = BANK_SPECIES[0]
    lengths = [RATE, 3 * RATE // 2, RATE]
    songs = sample_lengths(small_bank, species, lengths, seed=3)
    assert [s.shape[0] for s in songs] == [RATE, RATE, 3 * RATE // 2]
    assert all(np.all(np.isfinite(s)) and 0.01 < np.abs(s).max() <= 0.99 for s in songs)
    again = sample_lengths(small_bank, species, lengths, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(songs, again, strict=True))
    other = sample_lengths(small_bank, species, lengths, seed=4)
    assert not np.array_equal(songs[2], other[2])
