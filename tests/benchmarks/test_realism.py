"""``benchmarks/realism.py``: generated songs as long as the held-out clips (no BirdNET run)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from conftest import BANK_SPECIES
from realism import (
    RATE,
    birdnet_targets,
    main,
    pool_runs,
    ratio_interval,
    sample_lengths,
    song_lengths,
)


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


class _WhereScreen:
    """Hears nothing; notes where it was told each recording was made."""

    name = "where"

    def __init__(self) -> None:
        self.locations = []

    def __call__(self, audio, sample_rate, species, location):
        self.locations.append(location)


def test_training_recordings_are_screened_at_their_manifest_location(tmp_path):
    """... and analysed in the run's band (``--band``)."""
    import soundfile as sf
    from realism import _analysed

    from ddsp_augment.training.preprocess import PreprocessSettings

    t = np.arange(RATE) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 3000 * t) * np.hanning(t.size)
    audio = np.concatenate([np.zeros(RATE // 2), tone, np.zeros(RATE // 2)])
    audio = audio + 0.003 * np.random.default_rng(0).standard_normal(audio.size)
    (tmp_path / "A").mkdir()
    sf.write(tmp_path / "A" / "a.wav", audio.astype(np.float32), RATE)
    sf.write(tmp_path / "A" / "b.wav", audio.astype(np.float32), RATE)
    (tmp_path / "manifest.csv").write_text("path,recordist,lat,lon\nA/a.wav,r1,-33.9,18.4\n")
    rows = [{"path": "A/a.wav", "recordist": "r1"}, {"path": "A/b.wav", "recordist": "r2"}]
    screen = _WhereScreen()
    recs = _analysed(tmp_path, "A", rows, PreprocessSettings(f_min=500.0, f_max=8000.0), screen)
    assert len(recs) == 2 and screen.locations == [(-33.9, 18.4), None]
    assert [r.band for r in recs] == [(500.0, 8000.0)] * 2


def test_the_target_ratios_come_with_a_bootstrap_interval_over_species():
    def row(generated, real):
        return {"generated": {"top1": generated}, "real": {"top1": real}}

    rows = [row(1.0, 1.0), row(1.0, 1.0), row(0.0, 1.0), row(0.0, 1.0), {"real": {"top1": 1.0}}]
    low, high = ratio_interval(rows, "top1")  # the point ratio is 0.5; a failed species is out
    assert 0.0 <= low < 0.5 < high <= 1.0
    assert ratio_interval(rows, "top1") == (low, high)  # seeded
    same = [row(0.45, 0.5)] * 6  # every species alike: no spread
    assert ratio_interval(same, "top1") == pytest.approx((0.9, 0.9))
    assert ratio_interval([{"real": {"top1": 1.0}}], "top1") is None


def _run(seed, scores, ratios):
    """A realism.json's content: ``scores`` = ``{species: (generated top-1, real top-1)}``."""
    rows = [
        {
            "species": name,
            "known": True,
            "generated": {"top1": g, "confidence": g / 2},
            "real": {"top1": r, "confidence": r / 2},
        }
        for name, (g, r) in scores.items()
    ]
    return {"settings": {"seed": seed}, "species": rows, "summary": {"targets": ratios}}


def test_pooled_runs_give_one_ratio_over_every_species_split_and_draw_species_whole():
    first = _run(0, {"A": (1.0, 1.0), "B": (0.5, 1.0)}, {"top1_ratio": 0.75, "tstr_ratio": 1.0})
    second = _run(1, {"A": (0.8, 1.0), "B": (0.7, 1.0)}, {"top1_ratio": 0.75})
    second["species"].append({"species": "C", "known": True, "real": {"top1": 1.0}})  # failed
    second["species"].append({"species": "D", "known": False, "real": {"top1": 0.0}})
    pooled = pool_runs([first, second])
    assert pooled["top1_ratio"] == pytest.approx(3.0 / 4.0)
    assert pooled["confidence_ratio"] == pytest.approx(3.0 / 4.0)
    assert not pooled["top1_holds"] and not pooled["confidence_holds"]  # 0.9 and 0.8
    assert (pooled["species"], pooled["species_splits"], pooled["left_out"]) == (2, 4, 1)
    assert pooled["per_run"] == [
        {"seed": 0, "top1_ratio": 0.75, "tstr_ratio": 1.0},
        {"seed": 1, "top1_ratio": 0.75},
    ]
    # Species are drawn with both their splits: A (1.8 of 2) and B (1.2 of 2) are the only
    # two draws' worth of spread, so the interval lies within [0.6, 0.9].
    low, high = pooled["top1_ratio_ci"]
    assert low == pytest.approx(0.6) and high == pytest.approx(0.9)


def test_pool_reads_finished_runs_and_names_a_missing_one(tmp_path, capsys):
    run = tmp_path / "seed0"
    run.mkdir()
    (run / "realism.json").write_text(json.dumps(_run(0, {"A": (0.9, 1.0)}, {})))
    assert main(["--pool", str(run), str(run / "realism.json")]) == 0
    pooled = json.loads(capsys.readouterr().out)
    assert pooled["top1_ratio"] == pytest.approx(0.9) and pooled["species_splits"] == 2
    with pytest.raises(SystemExit):
        main(["--pool", str(tmp_path / "nothing")])
    assert f"no realism.json at {tmp_path / 'nothing'}" in capsys.readouterr().err


def test_a_species_without_songs_does_not_move_the_target_ratio():
    sung = {"species": "A", "generated": {"top1": 0.8, "confidence": 0.4}}
    sung["real"] = {"top1": 1.0, "confidence": 0.5}
    failed = {"species": "B", "real": {"top1": 0.5, "confidence": 0.5}}  # its model failed
    targets = birdnet_targets([sung, failed])
    # Against both species' real clips the ratio would read 0.8 / 0.75 = 1.07: held.
    assert targets["top1_ratio"] == pytest.approx(0.8) and not targets["top1_holds"]
    assert targets["confidence_ratio"] == pytest.approx(0.8) and targets["confidence_holds"]
    assert targets["left_out"] == 1
    assert birdnet_targets([failed]) == {"left_out": 1}


def test_a_run_of_some_species_judges_the_recordings_a_full_run_does(tmp_path, capsys):
    from realism import draw_splits, main

    by_species = {
        name: [{"path": f"{name}/{i}.wav", "recordist": f"r{i % 4}"} for i in range(9)]
        for name in ("A_a", "B_b", "C_c")
    }
    full = draw_splits(by_species, 2, seed=2)
    assert [len(train) for train, _ in full.values()] == [2, 2, 2]
    # Drawn alone, C_c would take the generator's first draws and other recordings: a
    # --species run draws every species' split, as the full run does, and keeps its own.
    assert full["C_c"] != draw_splits({"C_c": by_species["C_c"]}, 2, seed=2)["C_c"]
    (tmp_path / "manifest.csv").write_text("path,species,recordist\nA_a/0.wav,A_a,r0\n")
    with pytest.raises(SystemExit):
        main(["--data_path", str(tmp_path), "--species", "Z_z", "--output_path", str(tmp_path)])
    assert "--species: not in" in capsys.readouterr().err
