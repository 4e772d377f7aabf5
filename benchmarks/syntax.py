"""Does composition keep each species' song syntax? Prints one JSON object.

For each species of the bundled ``benchmarks/data/xc-germany`` (``--species``, default all 20),
its recordists
are split into two disjoint halves (whole recordists, greedily balancing file counts): the
contours of the first half (``training.preprocess`` analysis, numba F0; no decoder is trained:
syntax lives in the contours) form the contour bank songs are composed from, and the second
half is held out. Syllable types come from the training half's clustering
(``sampling.syllables.learn_syntax``) and read every set with the same alphabet.

Per species, distances to the held-out real phrases (``evaluation.syntax``):

- ``real_vs_real``: the training half's own phrases (what real songs of other birds score);
- ``markov`` / ``shuffle``: ``--songs`` songs of ``--seconds`` composed with that ``syntax``
  (phrases cut by a clip edge left out);
- ``markov_vs_training`` / ``shuffle_vs_training``: the same songs against the training half
  they were composed from (how faithfully each copies what it learned from).

``transition_js`` is the Jensen-Shannon divergence (bits) of syllable-bigram distributions
with phrase start/end; ``syllable_w_s``, ``gap_w_s``, ``phrase_w_s`` Wasserstein distances of
durations (s). ``mean`` averages over species; ``closer_than_shuffle`` counts species where
``markov`` is nearer the held-out songs than ``shuffle``.

    python benchmarks/syntax.py [--species Fringilla_coelebs Parus_major ...]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from collections import defaultdict

import numpy as np
from _common import BUNDLED_DATA, pin_threads, print_json

MODES = ("markov", "shuffle")


def _halves(species: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(path, recordist)`` files of two recordist-disjoint halves of ``species``."""
    with open(BUNDLED_DATA / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["species"] == species]
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        groups[row["recordist"]].append((row["path"], row["recordist"]))
    halves: tuple[list, list] = ([], [])
    for _, files in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        min(halves, key=len).extend(files)
    return halves


def _segments(species: str, files: list[tuple[str, str]]) -> list:
    from ddsp_augment.features.contours import Segment
    from ddsp_augment.training.preprocess import PreprocessSettings, preprocess_file

    segments = []
    for path, recordist in files:
        rec = preprocess_file(BUNDLED_DATA / path, species, recordist, PreprocessSettings())
        segments += [
            Segment(rec.f0_hz[a:b], rec.loudness_db[a:b], rec.confidence[a:b], rec.name)
            for a, b in rec.segments
        ]
    return segments


def _species(species: str, n_songs: int, seconds: float) -> dict:
    from ddsp_augment.constants import HOP_LENGTH, SAMPLE_RATE
    from ddsp_augment.evaluation.syntax import song_statistics, syntax_distances
    from ddsp_augment.sampling.jitter import JitterConfig, compose_song
    from ddsp_augment.sampling.syllables import learn_syntax

    rate = SAMPLE_RATE / HOP_LENGTH
    train_files, held_files = _halves(species)
    train, held = _segments(species, train_files), _segments(species, held_files)
    syntax = learn_syntax(train, rate)

    def stats(songs, drop_cut=False):
        return song_statistics(songs, syntax, drop_cut=drop_cut)

    as_songs = lambda segments: [(s.f0_hz, s.loudness_db, s.confidence) for s in segments]  # noqa: E731
    held_stats, train_stats = stats(as_songs(held)), stats(as_songs(train))
    result = {
        "recordings": [len(train_files), len(held_files)],
        "syllable_types": syntax.n_types,
        "phrases_held_out": len(held_stats.sequences),
        "real_vs_real": syntax_distances(held_stats, train_stats, syntax.n_types),
    }
    base = JitterConfig.from_segments(train)
    for mode in MODES:
        config = dataclasses.replace(base, syntax=mode)
        songs = [
            compose_song(
                train, int(seconds * rate), config, np.random.default_rng(seed), rate, syntax
            )[:3]  # the contours, without the source frames
            for seed in range(n_songs)
        ]
        generated = stats(songs, drop_cut=True)
        result[mode] = syntax_distances(held_stats, generated, syntax.n_types)
        result[f"{mode}_vs_training"] = syntax_distances(train_stats, generated, syntax.n_types)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", nargs="+", default=None)
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    pin_threads(1)
    species = args.species or sorted(p.name for p in BUNDLED_DATA.iterdir() if p.is_dir())
    per_species = {name: _species(name, args.songs, args.seconds) for name in species}
    keys = ("real_vs_real", *MODES)
    metrics = list(per_species[species[0]]["real_vs_real"])
    mean = {
        k: {m: float(np.mean([r[k][m] for r in per_species.values()])) for m in metrics}
        for k in keys
    }
    closer = {
        m: sum(r["markov"][m] < r["shuffle"][m] for r in per_species.values()) for m in metrics
    }
    print_json(
        {
            "species": per_species,
            "mean": mean,
            "closer_than_shuffle": closer,
            "n_species": len(per_species),
            "songs": args.songs,
            "seconds": args.seconds,
        }
    )


if __name__ == "__main__":
    main()
