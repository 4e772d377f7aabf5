"""Outputs for fixed seeds, pinned: a trained model, sampled songs and a balanced dataset item.

These numbers were recorded before the package was reorganised (issue 10) and must not move
unless a change means them to (then the commit says by how much and why). Issue 11 moved them
on purpose: loudness contours and segments now measure the bird above the noise floor
(features/activity.py), and two recordings validate on held-out stretches of both. The recorded
residual (features/residual.py) added pins for songs rendered with it; the decoder-noise pins
stayed as they were. Each pin is
a set of fingerprints (sums of magnitudes, a few samples) compared at a relative tolerance of
1e-4, far below any audible or trainable difference yet far above thread-order rounding.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import TEST_DATA
from safetensors.numpy import load_file
from torch.utils.data import Dataset

from ddsp_augment import (
    DDSPBalancedDataset,
    SceneConfig,
    SpeciesBank,
    TrainSettings,
    load_audio,
)
from ddsp_augment.training.preprocess import PreprocessSettings, preprocess_file
from ddsp_augment.training.train import train_species

RTOL = 1e-4
PARUS = sorted((TEST_DATA / "Parus_major").glob("*.wav"))[:2]

# Moved on purpose (issue: the tutorial's great tit collapsed): the test clips are 22.05 kHz
# files, silent above 11 kHz at 32 kHz, and the loss now leaves that band out
# (features.background.recorded_band_edge). Two Adam steps then land elsewhere: sums move by
# 0.0-0.9 %, the reverb's by +2.6 % (51.450 -> 52.808).
# Moved on purpose (issue 11, session 12): the decoder renders nothing where the input loudness
# reads the floor (model.decoder._level), in training too: the floor frames of the crops no longer
# pull on the weights (sums move by at most 5e-4 %, the reverb's by +0.01 %); the songs and
# items by +0.1 to +0.4 % (see PINNED_SAMPLE and PINNED_ITEM).
PINNED_WEIGHTS = {
    "decoder.core.0.depthwise.bias": 2.1288485527038574,
    "decoder.core.0.depthwise.weight": 9.257814407348633,
    "decoder.core.0.pointwise.bias": 1.7914466857910156,
    "decoder.core.0.pointwise.weight": 11.048491477966309,
    "decoder.input.bias": 2.4300241470336914,
    "decoder.input.weight": 6.219418525695801,
    "decoder.output.bias": 756.3382568359375,
    "decoder.output.weight": 141.10787963867188,
    "reverb.ir": 52.81349182128906,
}
# By noise source. "model" (the decoder's noise branch) is the pin from before recorded residuals
# existed, unchanged; "recorded" (the default since, issue 11) renders the residual instead.
# Issue 13 moved "recorded" on purpose (abs_sum 768.831 -> 769.467, rms 0.004886 -> 0.004275 and
# 0.12384 -> 0.12254): the residual is rendered with 4 frames pooled, at 8 ms hops, so its noise
# is another waveform. Over 30 noise draws these clips' RMS is -48.3 ± 1.1 dB and -18.9 ± 1.7 dB
# rendered at 2 ms, -48.0 ± 0.9 and -18.8 ± 1.7 at 8 ms: the moves are one draw's scatter.
# The band-edge loss (see PINNED_WEIGHTS) moved both: "model" abs_sum 473.315 -> 549.421, rms
# 0.001321 -> 0.001316 and 0.07560 -> 0.08012 (+0.5 dB); "recorded" 769.467 -> 880.442, rms
# 0.004275 -> 0.004272 and 0.12254 -> 0.12962 (+0.5 dB): the second, louder song comes out
# louder (the first steps no longer pull the level down); peaks stay where they were.
# Residual version 2 moved "recorded" on purpose (abs_sum 880.442 -> 669.939, rms 0.004272 ->
# 0.002931 and 0.12962 -> 0.10183: -3.3 and -2.1 dB; peaks 13198 -> 13184, 12864 -> 12543): the
# residual is measured against the harmonics through the reverb and added after it, so it no
# longer holds the reverb's share of the notes nor goes through the reverb twice. Over 10 seeds
# the second song's level with the residual went from +2.7 dB over the decoder's noise to +0.9.
# Moved on purpose (issue 11, session 9: abs_sum 669.939 -> 666.607, rms 0.002931 -> 0.002121
# and 0.10183 -> 0.10199, first peak 13184 -> 13814): after a tempo change the residual moves by
# the jitter's own pitch shift and gain, measured against the source contours interpolated
# where each frame sits, not against the nearest source frame, whose level differed by up to
# the 20 dB clamp at note onsets and whose F0 by a jumpy track's step: the quiet first song
# loses that spurious noise (-2.8 dB), the loud second keeps its level (+0.01 dB).
# Moved on purpose (issue 11, session 9) by the new jitter defaults, tempo on the gaps between
# syllables and no reordering: "model" abs_sum 549.421 -> 557.698, rms 0.0013159 -> 0.0013636
# and 0.080119 -> 0.080673 (+0.3 and +0.06 dB), first peak 13815 -> 13712; "recorded" 666.607
# -> 666.636, rms 0.0021213 -> 0.0020389 and 0.10199 -> 0.10015 (-0.3 and -0.2 dB), peaks
# [13814, 12543] -> [13712, 12524]: the same phrases, their notes at recorded length.
# Moved on purpose (issue 11, session 10): the residual is rendered as an STFT at 4 ms hops with
# a Griffin-Lim phase instead of filtered noise at 8 ms: "recorded" abs_sum 666.636 -> 720.098,
# rms 0.0020389 -> 0.0020491 and 0.10015 -> 0.11086 (+0.04 and +0.9 dB), peaks [13712, 12524]
# -> [13604, 12845]: another noise waveform. Over 20 seeds the two songs' mean levels moved
# +0.2 and +0.4 dB (their spread across seeds: 13 dB).
# The floor gate (see PINNED_WEIGHTS) moved "model" abs_sum 557.698 -> 559.729, rms 0.0013636
# -> 0.0013633 and 0.080673 -> 0.080813, "recorded" 720.098 -> 721.774 (+0.02 dB at most).
# Moved on purpose (same session): a song's lead-in takes at most half the clip, so these 0.5 s
# songs start within 0.25 s instead of 0.5 s (a 0.5 s song could be all lead-in, silent): "model"
# abs_sum 559.729 -> 870.015, rms 0.0013633 -> 0.0030122 and 0.080813 -> 0.108360, peaks
# [13712, 12089] -> [14409, 9231]; "recorded" 721.774 -> 953.115, rms 0.0020485 -> 0.0039874
# and 0.110918 -> 0.117123, peaks [13604, 12845] -> [14198, 9121]: more song in the clip.
PINNED_SAMPLE = {
    "model": {
        "abs_sum": 870.0150146484375,
        "rms": [0.003012233316112579, 0.10836022105143402],
        "peak_index": [14409, 9231],
    },
    "recorded": {
        "abs_sum": 953.11474609375,
        "rms": [0.003987380978896064, 0.11712260675274483],
        "peak_index": [14198, 9121],
    },
}
# Moved on purpose (issue 10) from 1512.8150634765625 when DDSPBalancedDataset's defaults became
# the benchmark's validated song settings: dataset backgrounds and a 1-3x distance with reverb
# make the song quieter (0-9.5 dB) and place it over the dataset's floors; the old settings
# (scene=SceneConfig(background="measured"), backgrounds="species") summed 1512.815. Issue 11
# moved both (675.107 -> 433.885, 1512.815 -> 1020.619): the model learns bird-only contours.
# Both are with the dataset's default noise="model" (the decoder's noise branch); with the
# recorded residual (noise="recorded", SpeciesBank.sample's default) the item sums 727.521
# (710.514 before issue 13 rendered the residual at 8 ms hops: another noise waveform, +0.2 dB).
# The band-edge loss (see PINNED_WEIGHTS) moved the three sums 433.885 -> 503.937, 1020.619 ->
# 1224.166 and 727.521 -> 779.845 (+1.4, +1.6, +0.6 dB): the song is louder. Residual version
# 2 (see PINNED_SAMPLE) moved the recorded item 779.845 -> 565.731 (-2.8 dB), the others not;
# the residual following the jitter's own shift (see PINNED_SAMPLE) 565.731 -> 564.770. The
# jitter defaults of session 9 (see PINNED_SAMPLE) moved all three: 503.937 -> 509.174,
# 1224.166 -> 1265.245, 564.770 -> 533.883 (+0.09, +0.29, -0.49 dB). The residual's Griffin-Lim
# phase (see PINNED_SAMPLE) moved the recorded item 533.883 -> 543.248 (+0.15 dB).
# The floor gate (see PINNED_WEIGHTS) moved the three: 509.174 -> 510.573, 1265.245 ->
# 1268.886, 543.248 -> 544.594 (+0.02 to +0.03 dB).
PINNED_ITEM = {
    "meta": ("Parus_major", 22050, (1, 22050)),
    "abs_sum": 510.5732116699219,
    "abs_sum_species_backgrounds": 1268.8857421875,
    "abs_sum_recorded": 544.5935668945312,
}


@pytest.fixture(scope="module")
def pinned_model_dir(tmp_path_factory):
    recordings = [
        preprocess_file(path, "Parus_major", f"recordist{i}", PreprocessSettings())
        for i, path in enumerate(PARUS)
    ]
    settings = TrainSettings(
        epochs=1,
        steps_per_epoch=2,
        batch_size=2,
        crop_seconds=0.25,
        decoder={"hidden": 8, "n_layers": 1},
        seed=0,
        threads=1,
        device="cpu",  # the pins are CPU numerics: CUDA kernels round differently
    )
    models = tmp_path_factory.mktemp("pinned-models")
    train_species(recordings, models / "Parus_major", settings, progress=False, log=lambda _: None)
    return models


def _close(name: str, got: float, want: float) -> None:
    assert got == pytest.approx(want, rel=RTOL, abs=1e-7), f"{name}: got {got!r}, pinned {want!r}"


def test_trained_weights_are_pinned(pinned_model_dir):
    weights = load_file(pinned_model_dir / "Parus_major" / "weights.safetensors")
    fingerprint = {name: float(np.abs(w).sum()) for name, w in sorted(weights.items())}
    assert sorted(fingerprint) == sorted(PINNED_WEIGHTS)
    for name, want in PINNED_WEIGHTS.items():
        _close(name, fingerprint[name], want)


@pytest.mark.parametrize("noise", ["model", "recorded"])
def test_sampled_songs_are_pinned(pinned_model_dir, noise):
    bank = SpeciesBank.load(pinned_model_dir)
    songs = bank.sample("Parus_major", n=2, seconds=0.5, sample_rate=32000, seed=0, noise=noise)
    assert songs.shape == (2, 16000) and songs.dtype == np.float32
    pinned = PINNED_SAMPLE[noise]
    _close("sum |songs|", float(np.abs(songs).sum()), pinned["abs_sum"])
    for i, want in enumerate(pinned["rms"]):
        _close(f"rms[{i}]", float(np.sqrt(np.mean(songs[i].astype(np.float64) ** 2))), want)
    assert [int(np.argmax(np.abs(s))) for s in songs] == pinned["peak_index"]


class _Clips(Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_balanced_dataset_item_is_pinned(pinned_model_dir):
    # Two clips of a species with no model and one of Parus major: item 3 is a synthetic song.
    clips = []
    for path, label in [
        (PARUS[0], "Turdus_merula"),
        (PARUS[1], "Turdus_merula"),
        (PARUS[0], "Parus_major"),
    ]:
        audio, rate = load_audio(path)
        clips.append((torch.from_numpy(audio[:rate])[None, :], rate, label))
    old_defaults = {"scene": SceneConfig(background="measured"), "backgrounds": "species"}
    cases = [
        ({}, "abs_sum"),
        (old_defaults, "abs_sum_species_backgrounds"),
        ({"noise": "recorded"}, "abs_sum_recorded"),
    ]
    for options, pin in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = DDSPBalancedDataset(
                _Clips(clips), pinned_model_dir, seed=0, progress=False, **options
            )
        assert len(dataset) == 4
        waveform, sample_rate, label = dataset[3]
        assert (label, sample_rate, tuple(waveform.shape)) == PINNED_ITEM["meta"]
        _close(f"sum |item| ({pin})", float(waveform.abs().sum()), PINNED_ITEM[pin])
