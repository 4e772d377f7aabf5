"""The quality gate: SpeciesBank.sample(..., judge=, min_confidence=) and the judges."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TEST_DATA

from ddsp_augment.evaluation.clip_judge import RealClipJudge
from ddsp_augment.io import load_audio
from ddsp_augment.sampling.bank import SpeciesBank
from ddsp_augment.sampling.gate import GateStats, gated_draw


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))


def test_gated_draw_redraws_until_accepted():
    values = iter([0.1, 0.3, 0.7, 0.9])
    stats = GateStats()
    clip = gated_draw(
        lambda: np.full(4, next(values)), lambda a, sr, sp: a[0], "x", 1, 0.5, 8, stats
    )
    assert clip[0] == pytest.approx(0.7)
    assert (stats.items, stats.draws, stats.accepted) == (1, 3, 1)
    assert stats.acceptance_rate == pytest.approx(1 / 3)
    # Never accepted: the most convincing of max_draws clips comes back, counted as rejected.
    values = iter([0.2, 0.4, 0.3])
    clip = gated_draw(
        lambda: np.full(4, next(values)), lambda a, sr, sp: a[0], "x", 1, 0.5, 3, stats
    )
    assert clip[0] == pytest.approx(0.4)
    assert (stats.items, stats.draws, stats.accepted) == (2, 6, 1)
    assert stats.as_dict()["acceptance_rate"] == pytest.approx(1 / 6)


def test_sample_keeps_only_clips_the_judge_accepts(small_bank_path):
    bank = SpeciesBank.load(small_bank_path)
    plain = bank.sample("Parus_major", n=6, seconds=0.5, seed=3)
    # A judge that accepts the louder half of what the model sings.
    threshold = float(np.median([_rms(c) for c in plain]))
    judged: list[str] = []

    def loud_enough(audio, sample_rate, species):
        judged.append(species)
        return float(_rms(audio) >= threshold)

    gated = bank.sample(
        "Parus_major", n=6, seconds=0.5, seed=3, judge=loud_enough, min_confidence=0.5
    )
    stats = bank.gate_stats
    assert all(_rms(c) >= threshold for c in gated) and stats.accepted == 6
    assert stats.items == 6 and stats.draws == len(judged) > 6 and set(judged) == {"Parus_major"}
    # An accepted first draw is the ungated clip (each clip draws from its own generator).
    for clip, first in zip(gated, plain, strict=True):
        if _rms(first) >= threshold:
            np.testing.assert_array_equal(clip, first)
    again = SpeciesBank.load(small_bank_path).sample(
        "Parus_major", n=6, seconds=0.5, seed=3, judge=loud_enough, min_confidence=0.5
    )
    np.testing.assert_array_equal(again, gated)


def test_sample_gate_arguments_are_checked(small_bank):
    with pytest.raises(ValueError, match="both judge and min_confidence"):
        small_bank.sample("Parus_major", min_confidence=0.5)
    with pytest.raises(ValueError, match="min_confidence"):
        small_bank.sample("Parus_major", judge=lambda *a: 1.0, min_confidence=1.5)


def test_real_clip_judge_names_a_held_out_great_tit(tonal_clips):
    clips = {s: [load_audio(p, 32000)[0] for p in paths] for s, paths in tonal_clips.items()}
    judge = RealClipJudge(clips, 32000)
    assert judge.species == ["Fringilla_coelebs", "Parus_major"]
    held_out = load_audio(sorted((TEST_DATA / "Parus_major").glob("*.wav"))[3], 32000)[0]
    tit = judge.confidence(held_out, 32000, "Parus_major")
    assert tit > 0.9
    assert judge.confidence(held_out, 32000, "Fringilla_coelebs") == pytest.approx(1 - tit)
    # Each band is measured above the clip's own floor, so another recordist's level and hiss
    # do not change the verdict: the clip 20 dB quieter, or under white noise 21 dB below its
    # RMS (plain log-mel statistics gave those 0.83 and 0.05: a chaffinch).
    hiss = 0.003 * np.random.default_rng(0).standard_normal(held_out.shape).astype(np.float32)
    for version in (0.1 * held_out, held_out + hiss):
        assert judge.confidence(version, 32000, "Parus_major") > 0.9
    with pytest.raises(ValueError, match="not fitted on 'Turdus_merula'"):
        judge.confidence(held_out, 32000, "Turdus_merula")
    with pytest.raises(ValueError, match="two species"):
        RealClipJudge({"Parus_major": clips["Parus_major"]}, 32000)
