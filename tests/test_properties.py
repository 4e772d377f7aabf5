"""Property-based tests of the public entry points: any finite input gives finite output of the
promised shape, dtype and peak; any invalid argument gives a ValueError/TypeError naming it.

Example counts are bounded (``max_examples``) so the module runs in well under a minute on two
cores; the tiny ``small_bank`` of ``conftest.py`` keeps each synthesis cheap.
``DDSPBalancedDataset.__getitem__`` properties live with the dataset's tests.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ddsp_augment.augment.ddsp_synth import DDSPSynth
from ddsp_augment.io import AudioError, load_audio
from ddsp_augment.sampling.scene import SceneConfig, apply_scene

# Fixtures are module-scoped (the bank is trained once); hypothesis only needs telling.
FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
RATES = st.sampled_from([8000, 16000, 22050, 32000, 44100, 48000])


def _audio(min_size: int, max_size: int, channels: int | None = None, bound: float = 1.0):
    """Finite float32 audio ``[time]`` or ``[channels, time]`` with at least one non-zero."""

    @st.composite
    def build(draw):
        n_channels = channels if channels is not None else draw(st.sampled_from([0, 1, 2]))
        n = draw(st.integers(min_size, max_size))
        shape = (n,) if n_channels == 0 else (n_channels, n)
        floats = st.floats(-bound, bound, width=32, allow_subnormal=False)
        audio = draw(arrays(np.float32, shape, elements=floats))
        # Mostly-structured signals: hypothesis' arrays are often constant; add a seeded tone.
        tone = np.sin(np.arange(n) * draw(st.floats(0.01, 3.0))) * draw(st.floats(0.0, bound))
        return np.clip(audio + tone.astype(np.float32), -bound, bound).astype(np.float32)

    return build()


@FAST
@pytest.mark.filterwarnings("ignore:.*clipped")  # full-scale random samples look clipped
@given(
    audio=_audio(1, 3000, bound=1.0),
    rate=RATES,
    target=st.none() | RATES,
    subtype=st.sampled_from(["PCM_16", "FLOAT"]),
    mono=st.booleans(),
)
def test_load_audio_gives_finite_float32_of_the_promised_shape(audio, rate, target, subtype, mono):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.wav"
        sf.write(path, audio.T, rate, subtype=subtype)
        stored, _ = sf.read(path, dtype="float32", always_2d=True)
        if not np.any(stored):
            with pytest.raises(AudioError, match="all samples are zero"):
                load_audio(path, target, mono)
            return
        out, out_rate = load_audio(path, target, mono)
    assert out_rate == (target or rate)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    channels = 1 if audio.ndim == 1 else audio.shape[0]
    assert out.ndim == (1 if mono else 2)
    if not mono:
        assert out.shape[0] == channels
    expected = audio.shape[-1] * out_rate / rate
    assert abs(out.shape[-1] - expected) <= 1
    if out_rate == rate:
        np.testing.assert_array_equal(out, stored.mean(axis=1) if mono else stored.T)


@pytest.mark.parametrize(
    ("sample_rate", "error"), [(0, ValueError), (-8000, ValueError), (16000.5, TypeError)]
)
def test_load_audio_names_a_bad_sample_rate(tmp_path, sample_rate, error):
    sf.write(tmp_path / "x.wav", np.ones(100, np.float32) * 0.1, 16000)
    with pytest.raises(error, match="sample_rate"):
        load_audio(tmp_path / "x.wav", sample_rate)


@FAST
@given(
    n=st.integers(1, 2),
    seconds=st.floats(0.001, 0.3),
    rate=RATES | st.integers(1000, 96000),
    seed=st.none() | st.integers(0, 2**63 - 1),
    species=st.sampled_from(["Parus_major", "Fringilla_coelebs"]),
)
def test_sample_gives_finite_clips_of_the_promised_shape_and_peak(
    small_bank, n, seconds, rate, seed, species
):
    out = small_bank.sample(species, n=n, seconds=seconds, sample_rate=rate, seed=seed)
    assert out.shape == (n, round(seconds * rate)) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= 0.99


_BAD_SAMPLE_ARGS = st.sampled_from(
    [
        ("n", 0),
        ("n", -3),
        ("n", 1.5),
        ("n", True),
        ("n", "2"),
        ("seconds", 0.0),
        ("seconds", -1.0),
        ("seconds", float("nan")),
        ("seconds", float("inf")),
        ("seconds", None),
        ("seconds", 1e-9),
        ("sample_rate", 0),
        ("sample_rate", 44100.5),
        ("sample_rate", None),
        ("seed", -1),
        ("seed", 0.5),
        ("seed", "0"),
    ]
)


@FAST
@given(bad=_BAD_SAMPLE_ARGS)
def test_sample_names_each_invalid_argument(small_bank, bad):
    name, value = bad
    with pytest.raises((ValueError, TypeError), match=name):
        small_bank.sample("Parus_major", **{name: value})


@FAST
@given(
    audio=_audio(1, 4000, bound=4.0),
    rate=RATES,
    mode=st.sampled_from(["resynth", "mix"]),
    seed=st.integers(0, 2**32),
    pcm=st.booleans(),
)
def test_ddsp_synth_gives_finite_float32_within_the_input_peak(
    small_bank, audio, rate, mode, seed, pcm
):
    if pcm:  # integer PCM: compared against its float reading
        audio = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
        reference = audio / np.float32(32768)
    else:
        reference = audio
    synth = DDSPSynth(small_bank, "Parus_major", mode=mode, p=1.0, seed=seed)
    out = synth(audio, rate)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert np.max(np.abs(out)) <= max(0.99, float(np.max(np.abs(reference)))) * (1 + 1e-6)


@FAST
@given(
    audio=_audio(16, 4000, channels=0, bound=1.0),
    rate=RATES,
    seed=st.integers(0, 2**32),
    distance=st.none() | st.floats(0.5, 200.0),
    rt60=st.none() | st.floats(0.05, 3.0),
    p_wind=st.sampled_from([0.0, 1.0]),
    p_rain=st.sampled_from([0.0, 1.0]),
    background=st.sampled_from(["none", "measured"]),
    snr_db=st.none() | st.floats(-10.0, 40.0),
)
def test_scene_gives_finite_float32_of_the_input_length(
    small_bank, audio, rate, seed, distance, rt60, p_wind, p_rain, background, snr_db
):
    scene = SceneConfig(
        distance_m=None if distance is None else (distance, distance),
        rt60_s=None if rt60 is None else (rt60, rt60),
        p_wind=p_wind,
        p_rain=p_rain,
        background=background,
        snr_db=None if snr_db is None else (snr_db, snr_db),
    )
    spectra = small_bank.entry("Parus_major").backgrounds
    out, params = apply_scene(
        audio, rate, scene, np.random.default_rng(seed), background_spectra=spectra
    )
    assert out.shape == audio.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert ("rt60_s" in params) == (rt60 is not None)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"audio": np.zeros((2, 100), np.float32)}, "audio"),
        ({"audio": np.array([0.1, np.nan], np.float32)}, "audio"),
        ({"audio": np.zeros(0, np.float32)}, "audio"),
        ({"sample_rate": 0}, "sample_rate"),
    ],
)
def test_scene_names_an_invalid_argument(kwargs, name):
    args = {"audio": np.ones(100, np.float32) * 0.1, "sample_rate": 16000, **kwargs}
    with pytest.raises(ValueError, match=name):
        apply_scene(
            args["audio"],
            args["sample_rate"],
            SceneConfig(background="none"),
            np.random.default_rng(0),
        )
