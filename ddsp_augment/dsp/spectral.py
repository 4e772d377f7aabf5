"""The spectral front end: windows, framing, STFT magnitudes, mel filterbank, log-mel, noise.

Every analysis in the package (loudness, the F0 tracker's spectra, background floors, the
training loss, evaluation metrics, plots) goes through these functions, so one convention holds
everywhere: periodic Hann windows, frame ``i`` centred on sample ``i * hop_length`` with zeros
outside the signal (``n_frames = n_samples // hop_length + 1``) unless ``center=False``.
numpy analyses are librosa's (``stft(center=True, pad_mode="constant")``, Slaney mel filters);
the training loss uses ``torch.stft``. Only the blocked power spectra are written here: they keep
a long recording's 2 ms-hop spectrogram out of memory.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import librosa
import numpy as np
import scipy.fft as sfft
import scipy.signal
import torch
from torch import Tensor

__all__ = [
    "BLOCK_FRAMES",
    "frame_count",
    "frame_signal",
    "hann_window",
    "log_mel",
    "magnitude_spectrogram",
    "mel_filterbank",
    "power_blocks",
    "stft_magnitude",
    "uniform_noise",
    "white_noise_spectrum",
]

BLOCK_FRAMES = 4096
"""Frames per FFT block in :func:`power_blocks`: bounds memory on long recordings."""
_MEL_FLOOR = 1e-6


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def frame_count(n_samples: int, hop_length: int) -> int:
    """Centred frames of a signal of ``n_samples``: ``n_samples // hop_length + 1``."""
    return n_samples // hop_length + 1


@functools.lru_cache(maxsize=32)
def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window ``[length]`` float32 (read-only), peak at ``length // 2``."""
    return _frozen(scipy.signal.get_window("hann", length).astype(np.float32))


def frame_signal(audio: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Centred frames of mono ``audio [samples]`` → read-only view ``[n_frames, frame_length]``.

    Frame ``i`` is centred on sample ``i * hop_length`` (zeros outside the signal), and
    ``n_frames = n_samples // hop_length + 1``.
    """
    audio = np.asarray(audio, np.float32)
    n_frames = frame_count(audio.shape[0], hop_length)
    padded = np.zeros((n_frames - 1) * hop_length + frame_length, np.float32)
    start = frame_length // 2
    length = min(audio.shape[0], padded.shape[0] - start)
    padded[start : start + length] = audio[:length]
    return np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length]


def power_blocks(
    frames: np.ndarray, n_fft: int, block_frames: int = BLOCK_FRAMES
) -> Iterator[tuple[slice, np.ndarray]]:
    """Hann-windowed power spectra of ``frames [n, window]`` (``n_fft >= window``, zero padded
    at the end), in blocks of rows: yields ``(rows, power [rows, n_fft // 2 + 1])`` float32.

    The caller reduces each block (a weighted sum, a peak search) before the next is made, so a
    long recording never holds its whole spectrogram.
    """
    window = hann_window(frames.shape[1])
    for lo in range(0, frames.shape[0], block_frames):
        block = frames[lo : lo + block_frames]
        spectrum = sfft.rfft(block * window, n_fft, axis=1, workers=1)
        yield slice(lo, lo + block.shape[0]), spectrum.real**2 + spectrum.imag**2


def magnitude_spectrogram(
    audio: np.ndarray, n_fft: int, hop_length: int, center: bool = True, power: float = 1.0
) -> np.ndarray:
    """``|STFT|**power`` of ``audio [..., samples]`` → ``[..., n_fft // 2 + 1, n_frames]`` float32.

    librosa's STFT with a periodic Hann window of ``n_fft``. ``center=True``: frames as in
    :func:`frame_signal` (zero padding); ``False``: frame ``i`` starts at sample
    ``i * hop_length`` (a signal shorter than ``n_fft`` is zero padded to one frame).
    """
    audio = np.asarray(audio, np.float32)
    if not center and audio.shape[-1] < n_fft:
        audio = np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, n_fft - audio.shape[-1])])
    spectrum = librosa.stft(
        audio, n_fft=n_fft, hop_length=hop_length, window="hann", center=center, pad_mode="constant"
    )
    magnitude = np.abs(spectrum)
    return magnitude if power == 1.0 else magnitude**power


@functools.lru_cache(maxsize=16)
def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None = None
) -> np.ndarray:
    """Slaney-normalised triangular mel filters ``[n_mels, n_fft // 2 + 1]`` float32
    (``librosa.filters.mel``; ``f_max`` None: Nyquist), read-only."""
    filters = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max
    )
    return _frozen(filters.astype(np.float32))


def log_mel(
    audio: np.ndarray,
    sample_rate: int,
    hop_length: int = 256,
    n_fft: int = 1024,
    n_mels: int = 64,
    f_min: float = 500.0,
    f_max: float | None = None,
) -> np.ndarray:
    """Log-mel spectrogram of ``audio [..., samples]`` → ``[..., n_mels, n_frames]`` float32:
    ``log(mel power + 1e-6)``.

    Centred frames (``n_frames = len // hop_length + 1``), periodic Hann window of ``n_fft``,
    Slaney mel filters from ``f_min`` to ``f_max`` (None: Nyquist). Birdsong lives above
    500 Hz, the default ``f_min``. A batch of clips takes one STFT, and each clip's values
    equal its own call's bit for bit.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    power = magnitude_spectrogram(audio, n_fft, hop_length, power=2.0)
    filters = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
    if power.ndim == 2:
        return np.log(filters @ power + _MEL_FLOOR).astype(np.float32)
    # One product per clip on the column-major [bins, frames] librosa gives a single clip: BLAS
    # rounds differently by layout, and a batch must give each clip's single-call values.
    clips = power.reshape(-1, *power.shape[-2:])
    mel = np.stack([np.log(filters @ np.asfortranarray(p) + _MEL_FLOOR) for p in clips])
    return mel.reshape(*power.shape[:-2], n_mels, -1).astype(np.float32)


def stft_magnitude(audio: Tensor, n_fft: int) -> Tensor:
    """Differentiable ``[batch, samples]`` → ``[batch, n_fft // 2 + 1, frames]`` (torch.stft:
    periodic Hann, hop ``n_fft // 4``, centred with reflection padding)."""
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(
        audio, n_fft, hop_length=n_fft // 4, window=window, center=True, return_complex=True
    )
    return spec.abs()


def uniform_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance noise ``[n]`` float32: uniform over 256 levels, from raw bytes.

    A third of the cost of ``rng.random`` and a sixth of ``standard_normal``. Every use sums
    many of these values (an FFT, a decaying filter tail), which makes the result Gaussian
    anyway, and 256 levels put the quantisation 48 dB below the noise itself.
    """
    noise = np.frombuffer(rng.bytes(n), np.int8).astype(np.float32)
    # int8 is uniform on -128..127: mean -1/2, variance (256² - 1) / 12.
    noise += np.float32(0.5)
    noise *= np.float32(1.0 / np.sqrt((256**2 - 1) / 12.0))
    return noise


def white_noise_spectrum(n_fft: int, rng: np.random.Generator) -> np.ndarray:
    """rfft ``[n_fft // 2 + 1]`` complex64 of unit-variance white noise of ``n_fft`` samples."""
    # Real and imaginary parts of variance n_fft / 2 each give E|X_k|² = n_fft, the spectrum of
    # unit-variance white noise.
    parts = uniform_noise(2 * (n_fft // 2 + 1), rng)
    parts *= np.float32(np.sqrt(n_fft / 2))
    return parts.view(np.complex64)
