"""A recording's stationary background: measured as a noise floor, rendered as matching noise.

The species model renders a clean bird; each training recording's background (hiss, wind,
traffic, the recorder's bandwidth) is measured here apart from it. Training power-adds the floor
to the model's spectrum (`losses`), evaluation and generation render noise with the same floor.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["FLOOR_FFT_SIZE", "noise_floor", "render_noise_floor", "stft_magnitude"]

FLOOR_FFT_SIZE = 2048
# RMS / 20th percentile of a Rayleigh variable: sqrt(2) / sqrt(-2 ln 0.8).
_RAYLEIGH_RMS_PER_P20 = float(np.sqrt(2.0) / np.sqrt(-2.0 * np.log(0.8)))


def stft_magnitude(audio: Tensor, n_fft: int) -> Tensor:
    """``[batch, samples]`` → ``[batch, n_fft // 2 + 1, frames]`` (Hann, 75 % overlap, centred)."""
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(
        audio, n_fft, hop_length=n_fft // 4, window=window, center=True, return_complex=True
    )
    return spec.abs()


def noise_floor(audio: np.ndarray, n_fft: int = FLOOR_FFT_SIZE) -> np.ndarray:
    """Background magnitude per bin of a recording ``[samples]`` → ``[n_fft // 2 + 1]``.

    Minimum statistics: per bin, the 20th percentile of the magnitude over time, scaled to the
    RMS of Rayleigh-distributed noise (×2.12). A bird occupies a few narrow bands at any moment,
    so even dense song leaves each bin quiet most of the time; a per-frame "quietest frames"
    estimate instead mistakes pre-segmented song for background and teaches the model silence.
    """
    mag = stft_magnitude(torch.from_numpy(np.asarray(audio, np.float32))[None], n_fft)[0].numpy()
    return (_RAYLEIGH_RMS_PER_P20 * np.percentile(mag, 20, axis=1)).astype(np.float32)


def render_noise_floor(floor: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary noise ``[n_samples]`` whose Hann-STFT magnitude matches ``floor`` on average.

    ``floor`` is ``[n_fft // 2 + 1]`` as returned by :func:`noise_floor`. White noise of unit
    variance analysed with a Hann window of ``n_fft`` has ``E|X|² = Σw²`` per bin, so the filter
    gain is ``floor / sqrt(Σw²)``, interpolated onto the clip's own FFT grid.
    """
    floor = np.asarray(floor, np.float64)
    n_fft = 2 * (floor.shape[0] - 1)
    window_power = np.sum(np.hanning(n_fft + 1)[:-1] ** 2)
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.linspace(0.0, 1.0, spectrum.shape[0])
    gain = np.interp(freqs, np.linspace(0.0, 1.0, floor.shape[0]), floor) / np.sqrt(window_power)
    return np.fft.irfft(spectrum * gain, n_samples).astype(np.float32)
