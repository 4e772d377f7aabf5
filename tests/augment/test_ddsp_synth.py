import json
import pickle
import random

import numpy as np
import pytest
import torch
from audiomentations import AddGaussianSNR, Compose, Gain, OneOf, SomeOf
from torch.utils.data import DataLoader, Dataset

from ddsp_augment.augment.ddsp_synth import DDSPSynth
from ddsp_augment.features.loudness import loudness_db
from ddsp_augment.io import load_audio
from ddsp_augment.sampling.bank import SpeciesBank


@pytest.fixture(scope="module")
def song(tonal_clips):
    """A real great tit song at its own rate (22.05 kHz)."""
    audio, rate = load_audio(tonal_clips["Parus_major"][0])
    return audio, rate


def rms(x, axis=None):
    return np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=axis))


def test_resynth_keeps_length_level_and_follows_the_input_envelope(song, small_bank_path):
    audio, rate = song
    synth = DDSPSynth(small_bank_path, "Parus_major", p=1.0, seed=0)
    out = synth(audio, rate)
    assert out.dtype == np.float32 and out.shape == audio.shape
    assert not np.allclose(out, audio)
    assert rms(out) == pytest.approx(rms(audio), rel=1e-3)
    # The song is re-sung from the input's loudness contour: its envelope follows the input's
    # far more closely than the input follows a time-shifted copy of itself.
    envelope = loudness_db(audio, rate, hop_length=256)
    follows = np.corrcoef(envelope, loudness_db(out, rate, hop_length=256))[0, 1]
    shifted = np.corrcoef(envelope, loudness_db(np.roll(audio, rate // 2), rate, 256))[0, 1]
    assert follows > 0.7 and follows > shifted + 0.2


def test_keep_background_keeps_the_input_background_spectrum(song, small_bank_path):
    audio, rate = song
    n = 512
    frames = audio[: audio.shape[0] // n * n].reshape(-1, n)
    energy = rms(frames, axis=1)
    gaps = energy <= np.percentile(energy, 20)  # between the input's syllables

    def gap_spectrum(x):
        x = x[: x.shape[0] // n * n].reshape(-1, n)[gaps] * np.hanning(n)
        return np.log(np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=0) + 1e-12)

    clean = DDSPSynth(small_bank_path, "Parus_major", p=1.0, seed=1)(audio, rate)
    kept = DDSPSynth(small_bank_path, "Parus_major", keep_background=True, p=1.0, seed=1)(
        audio, rate
    )
    # The same seed sings the same song: what keep_background added is what remains after
    # projecting the song out.
    added = kept - np.dot(kept, clean) / np.dot(clean, clean) * clean
    assert np.corrcoef(gap_spectrum(audio), gap_spectrum(added))[0, 1] > 0.85
    level = rms(added[: frames.size].reshape(-1, n)[gaps]) / rms(frames[gaps])
    assert 0.5 < level < 2.0


def test_mix_adds_a_song_at_the_drawn_snr(song, small_bank_path):
    audio, rate = song
    synth = DDSPSynth(small_bank_path, mode="mix", min_snr_db=3.0, max_snr_db=9.0, p=1.0, seed=4)
    out = synth(audio, rate)
    added = out - audio
    assert out.dtype == np.float32 and out.shape == audio.shape
    snr = synth.parameters["snr_db"]
    assert 3.0 <= snr <= 9.0
    assert 20 * np.log10(rms(audio) / rms(added)) == pytest.approx(snr, abs=0.01)
    assert synth.parameters["species"] in {"Parus_major", "Fringilla_coelebs"}


def test_mix_without_species_draws_among_bank_species(song, small_bank_path):
    audio, rate = song
    synth = DDSPSynth(small_bank_path, mode="mix", p=1.0, seed=0)
    drawn = set()
    for _ in range(20):
        synth.randomize_parameters(audio, rate)
        drawn.add(synth.parameters["species"])
    assert drawn == {"Parus_major", "Fringilla_coelebs"}


def test_one_species_bank_needs_no_species(small_bank_path):
    bank = SpeciesBank.load(small_bank_path, species=["Fringilla_coelebs"])
    assert DDSPSynth(bank).species == "Fringilla_coelebs"
    with pytest.raises(ValueError, match="needs species="):
        DDSPSynth(small_bank_path)


def test_same_seed_same_output_whatever_the_global_rngs(song, small_bank_path):
    audio, rate = song
    outputs = []
    for global_seed in (1, 2):
        random.seed(global_seed)
        np.random.seed(global_seed)  # noqa: NPY002 - the global RNG must not matter
        synth = DDSPSynth(small_bank_path, "Parus_major", p=0.5, seed=7)
        outputs.append([synth(audio, rate) for _ in range(4)])
    for a, b in zip(*outputs, strict=True):
        np.testing.assert_array_equal(a, b)
    other = DDSPSynth(small_bank_path, "Parus_major", p=1.0, seed=8)(audio, rate)
    assert not any(np.array_equal(other, a) for a in outputs[0])


def test_probability_draws_come_from_the_own_generator(song, small_bank_path):
    audio, rate = song
    assert DDSPSynth(small_bank_path, "Parus_major", p=0.0)(audio, rate) is audio
    synth = DDSPSynth(small_bank_path, "Parus_major", p=0.3, seed=0)
    applied = []
    for _ in range(500):
        synth.randomize_parameters(audio, rate)
        applied.append(synth.parameters["should_apply"])
    assert 0.24 < np.mean(applied) < 0.36


def test_freeze_parameters_repeats_the_same_effect(song, small_bank_path):
    audio, rate = song
    synth = DDSPSynth(small_bank_path, "Parus_major", p=1.0, seed=3)
    first = synth(audio, rate)
    synth.freeze_parameters()
    frozen = synth.parameters.copy()
    np.testing.assert_array_equal(synth(audio, rate), first)
    assert synth.parameters == frozen
    synth.unfreeze_parameters()
    assert not np.array_equal(synth(audio, rate), first)


def test_multichannel_resynth_and_mix(song, small_bank_path):
    audio, rate = song
    stereo = np.stack([audio, 0.25 * audio])
    resynth = DDSPSynth(small_bank_path, "Parus_major", p=1.0, seed=0)(stereo, rate)
    assert resynth.shape == stereo.shape and resynth.dtype == np.float32
    np.testing.assert_allclose(rms(resynth, axis=1), rms(stereo, axis=1), rtol=0.05)
    np.testing.assert_allclose(resynth[1], 0.25 * resynth[0], rtol=1e-5, atol=1e-7)
    mixed = DDSPSynth(small_bank_path, "Parus_major", mode="mix", p=1.0, seed=0)(stereo, rate)
    added = mixed - stereo
    assert mixed.shape == stereo.shape and mixed.dtype == np.float32
    np.testing.assert_allclose(added[0], added[1], atol=1e-6)
    assert rms(added) > 0


def test_works_inside_compose_oneof_and_someof(song, small_bank_path):
    audio, rate = song
    synth = DDSPSynth(small_bank_path, "Parus_major", p=1.0, seed=0)
    pipelines = [
        Compose([synth, AddGaussianSNR(min_snr_db=20, max_snr_db=30, p=1.0)]),
        OneOf([synth, Gain(p=1.0)], weights=[1.0, 0.0]),
        SomeOf(1, [synth]),
    ]
    for pipeline in pipelines:
        out = pipeline(samples=audio, sample_rate=rate)
        assert out.dtype == np.float32 and out.shape == audio.shape
        assert not np.allclose(out, audio)
    assert "DDSPSynth" in repr(pipelines[0])


def test_repr_serialisation_and_pickling(song, small_bank_path):
    audio, rate = song
    synth = DDSPSynth(small_bank_path, "Parus_major", max_pitch_cents=30.0, p=1.0, seed=5)
    text = repr(synth)
    assert text.startswith("DDSPSynth(") and "max_pitch_cents=30.0" in text and "seed" not in text
    state = synth.to_dict()["transform"]
    assert state["bank"] == str(small_bank_path) and state["species"] == "Parus_major"
    assert state["__class_fullname__"].endswith("DDSPSynth")
    json.dumps(state)
    out = synth(audio, rate)
    json.dumps(synth.serialize_parameters())
    synth.freeze_parameters()
    payload = pickle.dumps(synth)
    assert len(payload) < 5000
    clone = pickle.loads(payload)
    assert clone._bank is None
    np.testing.assert_array_equal(clone(audio, rate), out)


class _Draws(Dataset):
    """Each item: the synthesis seed the transform draws in the process serving it."""

    def __init__(self, synth, audio, rate):
        self.synth, self.audio, self.rate = synth, audio, rate

    def __len__(self):
        return 4

    def __getitem__(self, index):
        self.synth.randomize_parameters(self.audio, self.rate)
        return torch.utils.data.get_worker_info().id, self.synth.parameters["synth_seed"]


@pytest.mark.parametrize("seed", [None, 11])
def test_dataloader_workers_draw_differently(song, small_bank_path, seed):
    audio, rate = song
    synth = DDSPSynth(small_bank_path, "Parus_major", p=1.0, seed=seed)
    synth.randomize_parameters(audio, rate)  # a generator made before forking is not reused
    loader = DataLoader(_Draws(synth, audio, rate), batch_size=None, num_workers=2)
    first = {}
    for worker, draw in loader:
        first.setdefault(int(worker), int(draw))
    assert len(first) == 2 and len(set(first.values())) == 2
    assert synth.parameters["synth_seed"] not in first.values()


def test_silent_input_is_returned_unchanged(small_bank_path):
    silence = np.zeros(16000, np.float32)
    for mode in ("resynth", "mix"):
        out = DDSPSynth(small_bank_path, "Parus_major", mode=mode, p=1.0, seed=0)(silence, 16000)
        np.testing.assert_array_equal(out, silence)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "replace"}, "mode"),
        ({"backend": "cuda"}, "backend"),
        ({"p": 1.5}, "p must"),
        ({"min_snr_db": 10.0, "max_snr_db": 5.0}, "min_snr_db"),
        ({"species": "Corvus_corax"}, "not in the bank"),
        ({"max_pitch_cents": -10.0}, "max_pitch_cents"),
        ({"min_tempo": 1.2, "max_tempo": 0.8}, "min_tempo"),
        ({"min_vibrato_hz": 5.0}, "max_vibrato_hz"),
        ({"min_vibrato_cents": -5.0, "max_vibrato_cents": 5.0}, "vibrato_cents"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_arguments_raise_value_error(small_bank_path, kwargs, message):
    kwargs.setdefault("species", "Parus_major")
    with pytest.raises(ValueError, match=message):
        DDSPSynth(small_bank_path, **kwargs)


@pytest.mark.parametrize("mode", ["resynth", "mix"])
def test_noise_source_reaches_the_bank(song, small_bank_path, mode):
    """The decoder's noise by default (classifier training's validated default); "recorded"
    gives the bank's songs with the recorded residual for the same draws."""
    audio, rate = song
    outputs = {}
    for noise in ("model", "recorded"):
        synth = DDSPSynth(small_bank_path, "Parus_major", mode=mode, p=1.0, seed=5, noise=noise)
        outputs[noise] = synth(samples=audio, sample_rate=rate)
        assert np.isfinite(outputs[noise]).all() and np.abs(outputs[noise]).max() <= 0.99
    default = DDSPSynth(small_bank_path, "Parus_major", mode=mode, p=1.0, seed=5)
    default = default(samples=audio, sample_rate=rate)
    np.testing.assert_array_equal(default, outputs["model"])
    assert not np.array_equal(outputs["model"], outputs["recorded"])
    with pytest.raises(ValueError, match="noise"):
        DDSPSynth(small_bank_path, noise="pink")
