"""A-weighted loudness per control frame: the level contour the species model is driven by."""

from __future__ import annotations

import functools

import librosa
import numpy as np

from ..constants import HOP_LENGTH, LOUDNESS_FLOOR_DB
from ..dsp.spectral import frame_signal, hann_window, power_blocks

__all__ = ["loudness_db"]


@functools.lru_cache(maxsize=16)
def _a_weights(sample_rate: int, n_fft: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    weights = 10 ** (librosa.A_weighting(np.maximum(freqs, 1.0)) / 10)
    weights[0] = 0.0  # DC is inaudible (and offsets from cheap recorders would dominate)
    return weights.astype(np.float32)


def loudness_db(audio: np.ndarray, sample_rate: int, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """A-weighted loudness of mono ``audio [samples]`` → ``[n_frames]`` float32 dB.

    Power of each centred frame (Hann window of ``4 * hop_length`` samples, 8 ms at the defaults)
    weighted by the A-curve per FFT bin. Calibration: dB relative to a full-scale sine at 1 kHz,
    i.e. a sine of peak 1.0 at 1 kHz reads 0 dB, a -20 dBFS one -20 dB (A-weighting is 0 dB at
    1 kHz; other frequencies read lower or higher by the A-curve, e.g. 100 Hz about -19 dB).
    Digital silence reads the floor, -100 dB.
    """
    window = 4 * hop_length
    frames = frame_signal(audio, window, hop_length)
    weights = _a_weights(sample_rate, window)
    weighted = np.empty(frames.shape[0], np.float32)
    for rows, power in power_blocks(frames, window):
        weighted[rows] = power @ weights
    # Summed one-sided power of a unit sine through the window: n_fft * sum(w^2) / 4 (Parseval).
    reference = window * float(np.sum(hann_window(window).astype(np.float64) ** 2)) / 4.0
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(weighted / reference)
    return np.maximum(db, LOUDNESS_FLOOR_DB).astype(np.float32)
