"""Recording scenes: distance, reverb, noises and SNR against known acoustics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ddsp_augment.io import save_audio
from ddsp_augment.sampling.scene import (
    DeferredNoise,
    SceneConfig,
    _add_gusts,
    _draw_gusts,
    air_absorption_db_per_m,
    apply_scene,
    apply_scenes_torch,
    distance,
    draw_scene,
    mix_at_snr,
    rain_noise,
    reverb,
    wind_noise,
)

SR = 32000


def _db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR).astype(np.float32)


def _song(seed: int = 0, seconds: float = 3.0) -> np.ndarray:
    """Tone bursts of 100 ms with 150 ms of silence between: a sparse song."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    on = (t % 0.25) < 0.1
    sweep = np.sin(2 * np.pi * (3000 * t + 4000 * (t % 0.25) ** 2))
    return (0.3 * on * sweep + 1e-6 * rng.standard_normal(n)).astype(np.float32)


def _active_power_db(x: np.ndarray) -> float:
    """The reference definition: frames of 256 samples within 20 dB of the loudest."""
    frames = x[: x.shape[0] // 256 * 256].reshape(-1, 256).astype(np.float64)
    power = (frames**2).mean(1)
    return 10 * np.log10(power[power >= power.max() / 100].mean())


def test_air_absorption_matches_iso_9613_table():
    # ISO 9613-1 Table 1, 20 °C, 70 % RH, dB/km.
    freqs = np.array([1000.0, 2000.0, 4000.0])
    expected = np.array([4.98, 9.04, 22.9]) / 1000
    np.testing.assert_allclose(air_absorption_db_per_m(freqs, 20.0, 70.0), expected, rtol=0.03)


def test_distance_doubling_is_minus_6_db_and_high_frequencies_fade_faster():
    low = _tone(100.0)
    assert _db(distance(low, SR, 2.0)) - _db(low) == pytest.approx(-6.02, abs=0.05)
    far = 100.0
    loss = {f: _db(_tone(f)) - _db(distance(_tone(f), SR, far)) for f in (1000.0, 10000.0)}
    assert loss[10000.0] > loss[1000.0] + 5
    for f, value in loss.items():
        expected = 40.0 + air_absorption_db_per_m(np.array([f]))[0] * (far - 1.0)
        assert value == pytest.approx(expected, abs=0.1)


def _schroeder_rt60(ir: np.ndarray) -> float:
    """RT60 from the −5 to −25 dB slope of the backward-integrated energy decay (T20 × 3)."""
    energy = np.cumsum(ir[::-1].astype(np.float64) ** 2)[::-1]
    edc = 10 * np.log10(energy / energy[0])
    fit = (edc <= -5) & (edc >= -25)
    slope = np.polyfit(np.flatnonzero(fit) / SR, edc[fit], 1)[0]
    return -60.0 / slope


@pytest.mark.parametrize("rt60", [0.3, 1.2])
def test_reverb_decays_at_the_requested_rt60(rt60):
    impulse = np.zeros(int(2 * rt60 * SR), np.float32)
    impulse[0] = 1.0
    ir = reverb(impulse, SR, rt60, wet=1.0, rng=np.random.default_rng(0))
    assert _schroeder_rt60(ir) == pytest.approx(rt60, rel=0.2)


def test_reverb_mix_and_predelay():
    song = _song()
    np.testing.assert_allclose(
        reverb(song, SR, 0.5, 0.0, np.random.default_rng(0)), song, atol=1e-5
    )
    impulse = np.zeros(SR // 2, np.float32)
    impulse[0] = 1.0
    wet = reverb(impulse, SR, 0.3, 0.5, np.random.default_rng(0), predelay_s=0.01)
    assert wet[0] == pytest.approx(0.5, abs=1e-4)  # the dry half
    assert np.abs(wet[1:300]).max() < 1e-4  # 10 ms of silence before the tail
    assert np.abs(wet[320:400]).max() > 1e-3


@pytest.mark.parametrize("snr_db", [-5.0, 10.0, 30.0])
def test_mix_at_snr_achieves_the_snr_on_active_frames(snr_db):
    song = _song()
    noise = np.random.default_rng(1).standard_normal(SR).astype(np.float32)  # shorter: tiled
    mixed = mix_at_snr(song, noise, snr_db)
    assert mixed.shape == song.shape and mixed.dtype == np.float32
    added = mixed - song
    assert _active_power_db(song) - _db(added) == pytest.approx(snr_db, abs=0.1)
    np.testing.assert_array_equal(mix_at_snr(song, np.zeros(10), 10.0), song)


def test_wind_is_low_frequency_heavy_and_gusty():
    rng = np.random.default_rng(0)
    calm, gusty = wind_noise(3 * SR, SR, rng, gusts=0.0), wind_noise(3 * SR, SR, rng, gusts=0.9)
    for wind in (calm, gusty):
        assert np.sqrt(np.mean(wind**2)) == pytest.approx(1.0, rel=1e-3)
        power = np.abs(np.fft.rfft(wind)) ** 2
        freqs = np.fft.rfftfreq(wind.shape[0], 1 / SR)
        assert power[freqs < 500].sum() / power.sum() > 0.9

    def envelope_spread(x: np.ndarray) -> float:
        return float(np.std(np.sqrt((x.reshape(-1, SR // 8) ** 2).mean(1))))

    assert envelope_spread(gusty) > 2 * envelope_spread(calm)


def test_rain_is_hiss_plus_clicks():
    rng = np.random.default_rng(0)
    hiss = rain_noise(3 * SR, SR, rng, drops_per_s=0.0)
    rain = rain_noise(3 * SR, SR, rng, drops_per_s=30.0)

    def kurtosis(x: np.ndarray) -> float:
        return float(np.mean(x**4) / np.mean(x**2) ** 2)

    assert kurtosis(hiss) == pytest.approx(3.0, abs=0.2)  # Gaussian
    assert kurtosis(rain) > 10  # impulsive drops
    for x in (hiss, rain):
        assert np.sqrt(np.mean(x**2)) == pytest.approx(1.0, rel=0.05)


FULL_SCENE = SceneConfig(
    distance_m=(5.0, 20.0),
    rt60_s=(0.2, 1.0),
    p_wind=1.0,
    p_rain=1.0,
    background="measured",
    snr_db=(5.0, 30.0),
)


def _spectra() -> np.ndarray:
    return np.geomspace(1e-2, 1e-4, 1025, dtype=np.float32)[None].repeat(3, 0)


def test_apply_scene_is_deterministic_finite_and_keeps_length(tmp_path):
    song = _song()
    clip = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    save_audio(tmp_path / "bg.wav", 0.1 * clip, SR)
    scenes = [
        (FULL_SCENE, {"background_spectra": _spectra()}),
        (dataclasses.replace(FULL_SCENE, background="files"), {"background_clips": [clip]}),
        (
            dataclasses.replace(
                FULL_SCENE, background="files", background_files=(tmp_path / "bg.wav",)
            ),
            {},
        ),
        (SceneConfig(background="none", p_rain=1.0, rain_drops_per_s=(0.0, 0.0)), {}),
        (SceneConfig(background="none"), {}),
    ]
    for scene, kwargs in scenes:
        a, params_a = apply_scene(song, SR, scene, np.random.default_rng(7), **kwargs)
        b, params_b = apply_scene(song, SR, scene, np.random.default_rng(7), **kwargs)
        np.testing.assert_array_equal(a, b)
        assert params_a == params_b
        assert a.shape == song.shape and a.dtype == np.float32 and np.isfinite(a).all()
    c, params_c = apply_scene(song, SR, FULL_SCENE, np.random.default_rng(8), _spectra())
    assert params_c != params_a or not np.array_equal(c, a)
    assert {"distance_m", "rt60_s", "wet", "snr_db", "wind_snr_db", "rain_snr_db"} <= set(params_c)
    assert params_a["background"] == "none"
    np.testing.assert_array_equal(a, song)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_batched_torch_scene_mixes_the_numpy_scenes(device):
    """apply_scenes_torch on a batch == apply_scene clip by clip, from the same draws, for every
    kind of scene: filtered or not, noises at an SNR or as recorded, time-domain extras."""
    clip = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    songs = [_song(seed, seconds=1.0) for seed in range(4)] + [np.zeros(SR, np.float32)]
    scenes = [
        (FULL_SCENE, {"background_spectra": _spectra()}),
        (dataclasses.replace(FULL_SCENE, background="files"), {"background_clips": [clip]}),
        (SceneConfig(rt60_s=(0.3, 0.3), p_rain=1.0), {"background_spectra": _spectra()}),
        (SceneConfig(background="none", p_wind=1.0), {}),
        (SceneConfig(background="none"), {}),
    ]
    for scene, kwargs in scenes:
        expected = [
            apply_scene(song, SR, scene, np.random.default_rng(i), **kwargs)[0]
            for i, song in enumerate(songs)
        ]
        draws = [
            draw_scene(scene, SR, SR, np.random.default_rng(i), **kwargs) for i in range(len(songs))
        ]
        batch = torch.from_numpy(np.stack(songs)).to(device)
        mixed = apply_scenes_torch(batch, SR, draws).cpu().numpy()
        assert mixed.shape == (5, SR) and mixed.dtype == np.float32
        for got, want in zip(mixed, expected, strict=True):
            assert np.abs(got - want).max() <= 1e-5 * max(np.abs(want).max(), 1e-6)
    with pytest.raises(ValueError, match="one draw per clip"):
        apply_scenes_torch(batch, SR, draws[:2])


def test_apply_scene_realises_the_drawn_snr():
    song = _song()
    scene = SceneConfig(distance_m=(10.0, 10.0), background="measured", snr_db=(0.0, 20.0))
    for seed in range(3):
        out, params = apply_scene(song, SR, scene, np.random.default_rng(seed), _spectra())
        bird = distance(song, SR, 10.0)
        snr = _active_power_db(bird) - _db(out - bird)
        assert snr == pytest.approx(params["snr_db"], abs=0.5)


def test_apply_scene_needs_its_backgrounds():
    song = _song(seconds=0.5)
    with pytest.raises(ValueError, match="background_spectra"):
        apply_scene(song, SR, SceneConfig(background="measured"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="background_files"):
        apply_scene(song, SR, SceneConfig(background="files"), np.random.default_rng(0))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"background": "forest"}, "background"),
        ({"background_files": ("a.wav",)}, "background_files"),
        ({"p_wind": 2.0}, "p_wind"),
        ({"distance_m": (0.0, 10.0)}, "distance_m"),
        ({"distance_m": (10.0, 5.0)}, "distance_m"),
        ({"rt60_s": (0.5, 30.0)}, "rt60_s"),
        ({"wet": (0.2, 1.5)}, "wet"),
        ({"wind_gusts": (0.5, 1.0)}, "wind_gusts"),
        ({"snr_db": (20.0, 10.0)}, "snr_db"),
    ],
)
def test_scene_config_validation_names_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        SceneConfig(**overrides)


def test_bad_arguments_are_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="distance"):
        distance(_tone(100.0), SR, 0.0)
    with pytest.raises(ValueError, match="wet"):
        reverb(_tone(100.0), SR, 0.5, 1.5, rng)
    with pytest.raises(ValueError, match="NaN"):
        distance(np.full(10, np.nan), SR, 2.0)
    with pytest.raises(ValueError, match="gusts"):
        wind_noise(100, SR, rng, gusts=1.0)


def _band_db(audio: np.ndarray, bands: int = 16) -> np.ndarray:
    """Power in ``bands`` equal-width bands of the mean periodogram of clips ``[clips, n]``."""
    power = np.abs(np.fft.rfft(audio, axis=-1)) ** 2
    return 10 * np.log10(power.mean(0)[1:].reshape(bands, -1).mean(-1))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_device_drawn_scenes_match_the_host_draws_in_distribution(device):
    """draws="device": the same parameters and reverb, the bulk white spectra drawn from each
    clip's torch generator; realised SNRs as the host's, noise spectra within 0.25 dB per band
    (16 bands, 24 clips; measured 0.06); bit-identical for the same generator seeds, clip by
    clip (on CUDA to float rounding)."""
    songs = np.stack([_song(seed, seconds=1.0) for seed in range(24)])
    silence = np.zeros_like(songs)
    scenes = [
        (FULL_SCENE, songs, 0.5),  # every noise at an SNR: the clips' power as the host's
        (SceneConfig(background="measured"), silence, 0.25),  # floor as recorded: its spectrum
        (SceneConfig(background="none", p_wind=1.0, wind_snr_db=(0, 0)), songs, 0.25),
    ]
    for scene, audio, tolerance_db in scenes:
        kwargs = {"background_spectra": _spectra()}
        host = [draw_scene(scene, SR, SR, np.random.default_rng(i), **kwargs) for i in range(24)]
        deferred = [
            draw_scene(scene, SR, SR, np.random.default_rng(i), draws="device", **kwargs)
            for i in range(24)
        ]
        assert [d.params for d in deferred] == [d.params for d in host]
        assert all(d.deferred for d in deferred) and not any(d.deferred for d in host)
        for a, b in zip(host, deferred, strict=True):
            if a.reverb_ir is not None:
                np.testing.assert_array_equal(a.reverb_ir, b.reverb_ir)

        def generators(n: int) -> list[torch.Generator]:
            return [torch.Generator(device).manual_seed(1000 + i) for i in range(n)]

        batch = torch.from_numpy(audio).to(device)
        want = apply_scenes_torch(batch, SR, host).cpu().numpy()
        got = apply_scenes_torch(batch, SR, deferred, generators(24)).cpu().numpy()
        again = apply_scenes_torch(batch[:3], SR, deferred[:3], generators(3)).cpu().numpy()
        if device == "cpu":
            np.testing.assert_array_equal(again, got[:3])
        else:  # cuFFT plans for 3 and 24 clips round differently: 1.1e-8 apart on an H200
            np.testing.assert_allclose(again, got[:3], rtol=0, atol=1e-6)
        assert np.isfinite(got).all() and got.dtype == np.float32
        if audio is songs:  # levels clip by clip (noise set by the SNR)
            levels = [_db(g) - _db(w) for g, w in zip(got, want, strict=True)]
            assert np.abs(levels).max() <= tolerance_db
        else:  # the noise alone: its spectrum
            assert np.abs(_band_db(got) - _band_db(want)).max() <= tolerance_db
    with pytest.raises(ValueError, match="generators"):
        apply_scenes_torch(batch, SR, deferred)
    with pytest.raises(ValueError, match="draws"):
        draw_scene(scene, SR, SR, np.random.default_rng(0), draws="gpu")


def test_gusts_move_the_spectrum_alike_in_numpy_and_torch():
    rng = np.random.default_rng(4)
    carrier = (rng.standard_normal(1001) + 1j * rng.standard_normal(1001)).astype(np.complex64)
    gusts = _draw_gusts(SR, 2000, rng, 0.7)
    assert len(gusts) == 2 and all(b >= 1 for b, _ in gusts)
    assert sum(2 * abs(c) for _, c in gusts) == pytest.approx(0.7, rel=1e-6)
    numpy_wind = _add_gusts(carrier, gusts)
    torch_wind = _add_gusts(torch.from_numpy(carrier), gusts).numpy()
    np.testing.assert_allclose(torch_wind, numpy_wind, rtol=0, atol=1e-5)
    assert not np.allclose(numpy_wind, carrier)
    assert DeferredNoise(np.ones(3, np.float32), gusts).gusts == gusts


def test_measured_background_as_recorded_keeps_its_absolute_level():
    """snr_db=None: the floor is rendered at its measured level, whatever the bird's level."""
    spectra = _spectra()
    scene = SceneConfig(background="measured")
    quiet = np.zeros(SR, np.float32)
    quiet[100] = 1e-3
    loud = quiet * 1000
    a, params = apply_scene(quiet, SR, scene, np.random.default_rng(0), spectra)
    b, _ = apply_scene(loud, SR, scene, np.random.default_rng(0), spectra)
    assert "snr_db" not in params
    np.testing.assert_allclose(a - quiet, b - loud, atol=1e-6)
    expected = apply_scene(np.zeros(SR, np.float32), SR, scene, np.random.default_rng(0), spectra)[
        0
    ]
    assert np.std(expected) > 0
