"""The spectral front end: framing, blocked power spectra, mel filters, log-mel, STFT."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from ddsp_augment.dsp.spectral import (
    frame_count,
    frame_signal,
    hann_window,
    log_mel,
    magnitude_spectrogram,
    mel_filterbank,
    power_blocks,
    stft_magnitude,
    uniform_noise,
    white_noise_spectrum,
)

SR = 32000


def test_frames_are_centred_on_the_hop_grid_with_zeros_outside():
    audio = np.arange(1, 11, dtype=np.float32)  # 10 samples
    frames = frame_signal(audio, 4, 3)
    assert frames.shape == (frame_count(10, 3), 4) == (4, 4)
    # Frame i covers samples i*3 - 2 .. i*3 + 1 (centre index 2 = sample i*3).
    np.testing.assert_array_equal(frames[0], [0, 0, 1, 2])
    np.testing.assert_array_equal(frames[1], [2, 3, 4, 5])
    np.testing.assert_array_equal(frames[3], [8, 9, 10, 0])
    np.testing.assert_allclose(hann_window(4), [0.0, 0.5, 1.0, 0.5], atol=1e-7)


def test_power_blocks_match_one_fft_and_librosa():
    x = np.random.default_rng(0).standard_normal(3000).astype(np.float32)
    frames = frame_signal(x, 256, 64)
    full = np.empty((frames.shape[0], 257), np.float32)
    for rows, power in power_blocks(frames, 512, block_frames=7):  # uneven blocks
        full[rows] = power
    expected = np.abs(np.fft.rfft(frames * hann_window(256), 512, axis=1)) ** 2
    np.testing.assert_allclose(full, expected, rtol=1e-4, atol=1e-4)
    # The same centred, zero-padded frames as librosa's STFT.
    magnitude = magnitude_spectrogram(x, 256, 64)
    assert magnitude.shape == (129, 3000 // 64 + 1)
    reference = np.abs(np.fft.rfft(frames * hann_window(256), axis=1)).T
    np.testing.assert_allclose(magnitude, reference, rtol=1e-3, atol=1e-4)
    uncentred = magnitude_spectrogram(x, 256, 64, center=False)
    assert uncentred.shape == (129, (3000 - 256) // 64 + 1)


def test_mel_filterbank_and_log_mel_of_a_tone():
    filters = mel_filterbank(SR, 1024, 64, 500.0)
    np.testing.assert_array_equal(
        filters, librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, fmin=500.0)
    )
    assert filters[:, : int(np.floor(500.0 / (SR / 1024)))].sum() == 0.0  # nothing below f_min
    t = np.arange(SR // 2) / SR
    mel = log_mel((0.5 * np.sin(2 * np.pi * 4000 * t)).astype(np.float32), SR, hop_length=256)
    assert mel.shape == (64, SR // 2 // 256 + 1) and mel.dtype == np.float32
    centres = librosa.mel_frequencies(64 + 2, fmin=500.0, fmax=SR / 2)[1:-1]
    assert abs(centres[int(np.argmax(mel[:, 30]))] - 4000) < 250
    silence = log_mel(np.zeros(SR // 4, np.float32), SR)
    np.testing.assert_allclose(silence, np.log(1e-6), rtol=1e-6)


def test_stft_magnitude_of_a_sine_peaks_at_its_bin():
    n_fft = 256
    t = torch.arange(4096) / SR
    audio = torch.sin(2 * torch.pi * 2000 * t)[None].repeat(2, 1)
    magnitude = stft_magnitude(audio, n_fft)
    assert magnitude.shape == (2, n_fft // 2 + 1, 4096 // (n_fft // 4) + 1)
    assert int(magnitude[0, :, 10].argmax()) == round(2000 / (SR / n_fft))  # bin 16
    # A unit sine through a Hann window of sum n/2 peaks at n/4.
    assert float(magnitude[0, 16, 10]) == pytest.approx(n_fft / 4, rel=1e-5)


def test_noise_primitives_have_unit_variance():
    rng = np.random.default_rng(0)
    noise = uniform_noise(200_000, rng)
    assert noise.dtype == np.float32
    assert abs(float(noise.mean())) < 0.01 and abs(float(noise.var()) - 1.0) < 0.01
    spectrum = white_noise_spectrum(4096, rng)
    assert spectrum.shape == (2049,) and spectrum.dtype == np.complex64
    # E|X_k|² = n_fft for unit-variance white noise.
    assert abs(float(np.mean(np.abs(spectrum) ** 2)) / 4096 - 1.0) < 0.1
