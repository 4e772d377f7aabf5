"""Features: F0 trackers on signals of known pitch, loudness calibration, log-mel, noise floor."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from conftest import TEST_DATA

from ddsp_augment.constants import VOICED_THRESHOLD
from ddsp_augment.dsp.spectral import frame_count
from ddsp_augment.features.loudness import loudness_db
from ddsp_augment.features.pitch import estimate_f0
from ddsp_augment.io import load_audio

SR = 32000
HOP = 64


def _render(f_inst: np.ndarray, amps=(1.0,), sr: int = SR, pad_s: float = 0.05):
    """Harmonic tone with instantaneous frequency ``f_inst`` (10 ms fades), silence either side.

    Returns ``(audio, f_true, voiced)``: audio float32, true F0 and voicing per sample.
    """
    phase = 2 * np.pi * np.cumsum(f_inst) / sr
    x = sum(a * np.sin(h * phase) * (h * f_inst < 0.45 * sr) for h, a in enumerate(amps, 1))
    fade = int(0.01 * sr)
    env = np.ones(f_inst.size)
    env[:fade] = env[-fade:][::-1] = np.linspace(0, 1, fade)
    pad = int(pad_s * sr)
    audio = np.pad(x * env, pad)
    f_true = np.pad(f_inst, pad, mode="edge")
    voiced = np.pad(env >= 0.5, pad)
    return audio, f_true, voiced


def _add_noise(audio: np.ndarray, voiced: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(audio.size)
    signal_power = np.mean(audio[voiced] ** 2)
    return audio + noise * np.sqrt(signal_power / 10 ** (snr_db / 10))


def _within_cents(audio, f_true, voiced, sr=SR, hop=HOP, cents=50.0, **kwargs) -> float:
    audio = (0.3 * audio / np.abs(audio).max()).astype(np.float32)
    f0, confidence = estimate_f0(audio, sr, hop_length=hop, **kwargs)
    assert f0.shape == confidence.shape == (frame_count(audio.size, hop),)
    assert f0.dtype == confidence.dtype == np.float32
    assert np.all(np.isfinite(f0)) and np.all(f0 > 0)
    centres = np.minimum(np.arange(f0.size) * hop, audio.size - 1)
    mask = voiced[centres]
    error = 1200 * np.abs(np.log2(f0[mask] / f_true[centres][mask]))
    return float(np.mean(error <= cents))


def _seconds(s: float, sr: int = SR) -> int:
    return int(s * sr)


@pytest.mark.parametrize("freq", [1500.0, 3000.0, 6000.0, 9000.0])
@pytest.mark.parametrize("snr_db", [None, 10.0])
def test_steady_tones(freq: float, snr_db: float | None) -> None:
    audio, f_true, voiced = _render(np.full(_seconds(0.3), freq))
    if snr_db is not None:
        audio = _add_noise(audio, voiced, snr_db)
    assert _within_cents(audio, f_true, voiced) >= 0.95


@pytest.mark.parametrize("snr_db", [None, 10.0])
def test_sweep_fm_and_harmonic_rich(snr_db: float | None) -> None:
    t = np.arange(_seconds(0.4)) / SR
    cases = {
        "sweep 1->10 kHz in 0.3 s": (np.linspace(1000, 10000, _seconds(0.3)), (1.0,)),
        "4 kHz, 40 Hz FM +-300 Hz": (4000 + 300 * np.sin(2 * np.pi * 40 * t), (1.0,)),
        # 1/h partials up to Nyquist, and one whose 2nd harmonic is as strong as the fundamental.
        "2 kHz sawtooth-like": (np.full(t.size, 2000.0), tuple(1 / h for h in range(1, 8))),
        "1.2 kHz strong 2nd": (np.full(t.size, 1200.0), (1.0, 1.0, 0.6, 0.3)),
    }
    for name, (f_inst, amps) in cases.items():
        audio, f_true, voiced = _render(f_inst, amps)
        if snr_db is not None:
            audio = _add_noise(audio, voiced, snr_db)
        assert _within_cents(audio, f_true, voiced) >= 0.95, name


def test_other_rates_and_1ms_hop() -> None:
    for sr, hop in [(44100, 44), (22050, 32), (32000, 32)]:
        audio, f_true, voiced = _render(np.full(_seconds(0.3, sr), 5000.0), sr=sr)
        assert _within_cents(audio, f_true, voiced, sr=sr, hop=hop) >= 0.95, sr


def test_confidence_separates_tone_from_noise() -> None:
    rng = np.random.default_rng(1)
    white = rng.standard_normal(SR)
    # Pink-ish noise (3 dB/octave) and rumble-heavy noise (12 dB/octave low-pass at 800 Hz).
    freqs = np.maximum(np.fft.rfftfreq(SR, 1 / SR), 20.0)
    pink = np.fft.irfft(np.fft.rfft(rng.standard_normal(SR)) / np.sqrt(freqs), SR)
    rumble = scipy.signal.sosfilt(scipy.signal.butter(2, 800, fs=SR, output="sos"), white)
    for name, noise in {"white": white, "pink": pink, "rumble": rumble}.items():
        _, confidence = estimate_f0((0.1 * noise / noise.std()).astype(np.float32), SR)
        assert confidence.mean() < 0.1, name
        assert np.mean(confidence >= VOICED_THRESHOLD) < 0.03, name
    audio, _, voiced = _render(np.full(_seconds(0.5), 3000.0))
    audio = _add_noise(audio, voiced, 10.0)
    _, confidence = estimate_f0((0.3 * audio / np.abs(audio).max()).astype(np.float32), SR)
    centres = np.minimum(np.arange(confidence.size) * HOP, audio.size - 1)
    assert np.mean(confidence[voiced[centres]] >= VOICED_THRESHOLD) >= 0.95


def test_silence_and_frame_counts() -> None:
    for n in (0, 1, 63, 64, 1000, 32000):
        f0, confidence = estimate_f0(np.zeros(n, np.float32), SR, hop_length=HOP)
        assert f0.shape == (n // HOP + 1,)
        np.testing.assert_array_equal(f0, 1000.0)  # digital silence: fmin, never 0 or NaN
        np.testing.assert_array_equal(confidence, 0.0)
        assert loudness_db(np.zeros(n, np.float32), SR).shape == (n // HOP + 1,)
    assert frame_count(1000, 64) == 16
    with pytest.raises(ValueError, match="method"):
        estimate_f0(np.zeros(100, np.float32), SR, method="yin")
    with pytest.raises(ValueError, match="mono"):
        estimate_f0(np.zeros((2, 100), np.float32), SR)
    with pytest.raises(ValueError, match="NaN"):
        estimate_f0(np.full(100, np.nan, np.float32), SR)


def test_crepe_relabelling_recovers_4khz() -> None:
    t = np.arange(_seconds(0.2)) / SR
    audio = (0.3 * np.sin(2 * np.pi * 4000 * t)).astype(np.float32)
    f0, confidence = estimate_f0(audio, SR, method="crepe", crepe_model="tiny")
    assert f0.shape == confidence.shape == (frame_count(audio.size, HOP),)
    inner = slice(10, -10)  # frames whose CREPE window lies inside the tone
    assert np.all(np.abs(1200 * np.log2(f0[inner] / 4000)) < 50)
    assert np.all(confidence[inner] >= VOICED_THRESHOLD)


def test_numba_and_crepe_agree_on_real_song() -> None:
    path = TEST_DATA / "Parus_major" / "2021-B32-0415_05-11.wav"
    audio, sr = load_audio(path, SR)
    audio = audio[: 3 * SR]
    hop = 320  # 10 ms: CREPE costs per frame; agreement does not need the 2 ms grid
    f0_numba, conf_numba = estimate_f0(audio, sr, hop_length=hop)
    f0_crepe, conf_crepe = estimate_f0(audio, sr, hop_length=hop, method="crepe")
    both = (conf_numba >= VOICED_THRESHOLD) & (conf_crepe >= VOICED_THRESHOLD)
    assert both.sum() >= 40
    error = np.abs(1200 * np.log2(f0_numba[both] / f0_crepe[both]))
    assert np.mean(error <= 50) >= 0.85


def test_loudness_calibration_and_a_weighting() -> None:
    t = np.arange(SR) / SR
    inner = slice(10, -10)
    full = loudness_db(np.sin(2 * np.pi * 1000 * t).astype(np.float32), SR)
    quiet = loudness_db((0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), SR)
    low = loudness_db((0.1 * np.sin(2 * np.pi * 100 * t)).astype(np.float32), SR)
    assert full.shape == (SR // HOP + 1,) and full.dtype == np.float32
    assert np.all(np.abs(full[inner]) < 1.0)
    assert np.all(np.abs(quiet[inner] + 20) < 0.5)
    # A-weighting: -19 dB at 100 Hz (window leakage lets a little more through).
    assert np.all(low[inner] < -20 - 12)
    np.testing.assert_array_equal(loudness_db(np.zeros(1000, np.float32), SR), -100.0)
