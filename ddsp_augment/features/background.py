"""A recording's stationary background: measured as a noise floor, rendered as matching noise.

The species model renders a clean bird; each training recording's background (hiss, wind,
traffic, the recorder's bandwidth) is measured here apart from it. Training power-adds the floor
to the model's spectrum (`losses`), evaluation and generation render noise with the same floor.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft as sfft
import torch

from ..dsp.spectral import stft_magnitude, white_noise_spectrum

__all__ = [
    "FLOOR_FFT_SIZE",
    "floor_gain",
    "floor_noise_spectrum",
    "noise_floor",
    "recorded_band_edge",
    "render_noise_floor",
]

FLOOR_FFT_SIZE = 2048
# A recording's floor this far under its typical level (90th percentile over the bird band)
# means no signal at all: a 22.05 kHz file resampled to 32 kHz reads ~100 dB lower above
# 11 kHz, while a real background's tilt towards Nyquist stays within ~40 dB.
_EMPTY_BAND_DB = 60.0
# RMS / 20th percentile of a Rayleigh variable: sqrt(2) / sqrt(-2 ln 0.8).
_RAYLEIGH_RMS_PER_P20 = float(np.sqrt(2.0) / np.sqrt(-2.0 * np.log(0.8)))


def noise_floor(audio: np.ndarray, n_fft: int = FLOOR_FFT_SIZE) -> np.ndarray:
    """Background magnitude per bin of a recording ``[samples]`` → ``[n_fft // 2 + 1]``.

    Minimum statistics: per bin, the 20th percentile of the magnitude over time, scaled to the
    RMS of Rayleigh-distributed noise (×2.12). A bird occupies a few narrow bands at any moment,
    so even dense song leaves each bin quiet most of the time; a per-frame "quietest frames"
    estimate instead mistakes pre-segmented song for background and teaches the model silence.
    """
    mag = stft_magnitude(torch.from_numpy(np.asarray(audio, np.float32))[None], n_fft)[0].numpy()
    return (_RAYLEIGH_RMS_PER_P20 * np.percentile(mag, 20, axis=1)).astype(np.float32)


def recorded_band_edge(
    floor: np.ndarray, sample_rate: int, f_min: float = 500.0, drop_db: float = _EMPTY_BAND_DB
) -> float:
    """The highest frequency (Hz) a recording carries, from its noise ``floor [K]``.

    A recording made or stored at a lower rate (22.05 kHz, resampled to the model's 32 kHz), or
    low-passed, holds digital silence above its old Nyquist, and so does its floor (the floor
    of :func:`noise_floor`, any FFT size: band ``k`` at ``k·sample_rate / (2(K−1))``). The edge
    is the highest band whose floor is within ``drop_db`` of the floor's 90th percentile (in
    dB) over the bands at or above ``f_min``; ``sample_rate / 2`` when nothing is missing.
    """
    floor = _check_floor(floor)
    n_bands = floor.shape[0]
    freqs = np.arange(n_bands) * (sample_rate / (2.0 * (n_bands - 1)))
    floor_db = 20 * np.log10(np.maximum(floor.astype(np.float64), 1e-30))
    band = freqs >= f_min
    if not band.any():
        raise ValueError(f"f_min must be under Nyquist ({sample_rate / 2} Hz), got {f_min}")
    reference = float(np.percentile(floor_db[band], 90))
    carried = np.flatnonzero(floor_db >= reference - drop_db)
    return float(freqs[carried[-1]])


def _check_floor(floor: np.ndarray) -> np.ndarray:
    floor = np.asarray(floor, np.float32)
    if floor.ndim != 1 or floor.shape[0] < 2:
        raise ValueError(f"floor must be [bands] with at least 2 bands, got shape {floor.shape}")
    if not np.isfinite(floor).all() or (floor < 0).any():
        raise ValueError("floor magnitudes must be finite and >= 0")
    return floor


@functools.lru_cache(maxsize=64)
def _floor_gain(floor_bytes: bytes, n_fft: int) -> np.ndarray:
    """Band magnitudes (float32 bytes) → filter gain on the ``n_fft`` rfft grid (see
    :func:`render_noise_floor`). Cached by content: a species' measured backgrounds recur."""
    floor = np.frombuffer(floor_bytes, np.float32)
    n_bands = floor.shape[0]
    # A periodic Hann window of 2(K-1) samples has sum(w²) = 3·2(K-1)/8.
    window_power = 3.0 * 2 * (n_bands - 1) / 8.0
    positions = np.linspace(0.0, n_bands - 1, n_fft // 2 + 1)
    gain = (np.interp(positions, np.arange(n_bands), floor) / np.sqrt(window_power)).astype(
        np.float32
    )
    gain.setflags(write=False)
    return gain


def floor_gain(floor: np.ndarray, n_fft: int) -> np.ndarray:
    """The zero-phase gain ``[n_fft // 2 + 1]`` float32 (read-only, cached) that shapes unit
    white noise into :func:`render_noise_floor` noise, on the ``n_fft`` rfft grid."""
    return _floor_gain(_check_floor(floor).tobytes(), n_fft)


def floor_noise_spectrum(floor: np.ndarray, n_fft: int, rng: np.random.Generator) -> np.ndarray:
    """rfft ``[n_fft // 2 + 1]`` complex64 of ``n_fft`` samples of :func:`render_noise_floor`
    noise, for callers that mix in the frequency domain (``sampling.scene``)."""
    return white_noise_spectrum(n_fft, rng) * floor_gain(floor, n_fft)


def render_noise_floor(floor: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary noise ``[n_samples]`` float32 whose Hann-STFT magnitude matches ``floor``.

    Convention (that of :func:`noise_floor`): ``floor[k]`` is the RMS magnitude, in band ``k``
    (frequency ``k·sr / (2(K−1))``, the bins of a ``2(K−1)``-point FFT), of the noise's STFT
    with a periodic Hann window of ``2(K−1)`` samples and no normalisation. The noise is
    unit-variance white noise filtered by the zero-phase gain ``floor / sqrt(Σ w²) =
    floor / sqrt(3(K−1)/4)``, linearly interpolated between bands, so analysing it like the
    recording gives ``floor`` back. Sample-rate free: band ``K−1`` is always Nyquist.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    n_fft = sfft.next_fast_len(n_samples, real=True)
    noise = sfft.irfft(floor_noise_spectrum(floor, n_fft, rng), n_fft, workers=1)
    return noise[:n_samples].astype(np.float32, copy=False)
