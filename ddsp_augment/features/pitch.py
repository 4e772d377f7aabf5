"""Frame features for birdsong: A-weighted loudness, F0 + voicing confidence, log-mel, noise floor.

Frame grid (ARCHITECTURE.md): a signal of ``n`` samples has ``n // hop_length + 1`` frames and
frame ``i`` is centred at sample ``i * hop_length`` (analysis windows are zero padded at the ends).

F0 trackers (:func:`estimate_f0`):

- ``"numba"`` (default, fast): spectral-peak tracker. Birdsong is mostly near-pure tones at
  1-10 kHz with widely spaced partials, which a short-time spectrum resolves and an
  autocorrelation tracker (a few samples per period at 32 kHz) does not. Each frame is analysed
  with a 4 ms and an 8 ms Hann window (2x zero padded); in each, the strongest local maximum that
  stands out from its neighbourhood (contrast: its power over the lower quartile of the bins
  0.5-2 kHz to either side, the louder side) is the candidate, moved to 1/2 or 1/3 of its
  frequency when a clear partial sits there (octave guard), and refined by parabolic
  interpolation on the log power. The window with the higher contrast wins (the 8 ms one unless
  the 4 ms one is 2 dB better): the long window resolves weak fundamentals and averages over
  buzzy notes, the short one follows 60 Hz trills of ±800 Hz. Confidence maps the contrast
  linearly from 15 dB (0; broadband noise rarely exceeds 19 dB) to 25 dB (1; a whistle 10 dB
  above white noise scores ~30 dB).
- ``"crepe"``: torchcrepe with sample-rate relabelling. CREPE covers ~31-2006 Hz; the signal is
  presented as if recorded at ``sr / k`` (``k = ceil(fmax / 1900)``), which moves 1-12 kHz into
  range, and the estimate is multiplied back. The relabelled signal is resampled to CREPE's 16 kHz
  with the hop scaled to match, so the frame count and the cost are those of the original hop.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import librosa
import numpy as np
import scipy.fft as sfft
import soxr
import torch

from ..constants import F0_MAX_HZ, F0_MIN_HZ, HOP_LENGTH, LOUDNESS_FLOOR_DB
from ._peak_tracker import track_peaks

__all__ = [
    "VOICED_THRESHOLD",
    "estimate_f0",
    "frame_count",
    "log_mel",
    "loudness_db",
]

VOICED_THRESHOLD = 0.5
"""``confidence >= VOICED_THRESHOLD`` marks a voiced frame, for either tracker."""

_F0_WINDOWS_SECONDS = (0.004, 0.008)
_SHORT_WINDOW_MARGIN_DB = 2.0  # the short window must beat the long one's contrast by this
_TONALITY_DB = (15.0, 25.0)  # contrast mapped onto confidence 0..1 (see the module doc)
_RING_HZ = 1500.0  # neighbourhood of a peak, beyond its main lobe, that sets its noise level
_RING_QUANTILE = 0.25
_SUBHARMONIC_RATIO = 0.1  # a clear partial at f/2 or f/3 within 10 dB of f is the fundamental
_INACTIVE_MARGIN_DB = 3.0
_HALF_NORMAL_MEDIAN = 0.6744897501960817  # median of |N(0, 1)|
_CREPE_TOP_HZ = 1900.0  # relabelled fmax stays below CREPE's 2006 Hz top bin
_CREPE_RATE = 16000
_BLOCK_FRAMES = 4096  # frames per FFT block: bounds memory on long recordings


def frame_count(n_samples: int, hop_length: int) -> int:
    """Frames of a signal of ``n_samples``: ``n_samples // hop_length + 1``."""
    return n_samples // hop_length + 1


def _hann(window: int) -> np.ndarray:
    """Periodic Hann window ``[window]``, peak at index ``window // 2`` (the frame centre)."""
    return np.hanning(window + 1)[:-1].astype(np.float32)


def _centred_frames(audio: np.ndarray, hop_length: int, window: int) -> np.ndarray:
    """Read-only view ``[n_frames, window]``; frame ``i`` is centred at sample ``i * hop_length``
    (samples outside the signal are zeros)."""
    audio = np.asarray(audio, np.float32)
    n_frames = frame_count(audio.shape[0], hop_length)
    padded = np.zeros((n_frames - 1) * hop_length + window, np.float32)
    start = window // 2
    length = min(audio.shape[0], padded.shape[0] - start)
    padded[start : start + length] = audio[:length]
    return np.lib.stride_tricks.sliding_window_view(padded, window)[::hop_length][:n_frames]


def _power_blocks(frames: np.ndarray, n_fft: int) -> Iterator[tuple[slice, np.ndarray]]:
    """Hann-windowed power spectra of ``frames [n, window]`` in blocks of rows:
    ``(rows, power [rows, n_fft // 2 + 1] float32)``, so long recordings never hold a whole
    spectrogram."""
    hann = _hann(frames.shape[1])
    for lo in range(0, frames.shape[0], _BLOCK_FRAMES):
        block = frames[lo : lo + _BLOCK_FRAMES]
        spectrum = sfft.rfft(block * hann, n_fft, axis=1, workers=1)
        yield slice(lo, lo + block.shape[0]), spectrum.real**2 + spectrum.imag**2


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
    frames = _centred_frames(audio, hop_length, window)
    weights = _a_weights(sample_rate, window)
    weighted = np.empty(frames.shape[0], np.float32)
    for rows, power in _power_blocks(frames, window):
        weighted[rows] = power @ weights
    # Summed one-sided power of a unit sine through the window: n_fft * sum(w^2) / 4 (Parseval).
    reference = window * float(np.sum(_hann(window).astype(np.float64) ** 2)) / 4.0
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(weighted / reference)
    return np.maximum(db, LOUDNESS_FLOOR_DB).astype(np.float32)


def _track_one_window(
    audio: np.ndarray, sample_rate: int, hop_length: int, fmin: float, fmax: float, seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """Peak tracker on one window length → ``(f0_hz, contrast_db)``, each ``[n_frames]``."""
    window = max(16, 2 * round(seconds * sample_rate / 2))
    n_fft = 1 << math.ceil(math.log2(2 * window))  # >= 2x zero padding for the interpolation
    frames = _centred_frames(audio, hop_length, window)
    bin_hz = sample_rate / n_fft
    first = max(2, math.floor(fmin / bin_hz) - 1)
    last = min(n_fft // 2 - 2, math.ceil(fmax / bin_hz) + 1)
    lobe = math.ceil(2 * n_fft / window)  # Hann main lobe half-width: 2 unpadded bins
    ring = max(4, round(_RING_HZ / bin_hz))
    # Below this the frame is digital silence (or -150 dBFS): no peak worth reporting.
    floor_power = 1e-15 * window * float(np.sum(_hann(window) ** 2))
    lo, hi = _TONALITY_DB
    f0_bin = np.empty(frames.shape[0], np.float64)
    contrast_db = np.empty(frames.shape[0], np.float32)
    for rows, power in _power_blocks(frames, n_fft):
        f0_bin[rows], contrast_db[rows] = track_peaks(
            power,
            first,
            last,
            lobe,
            ring,
            n_fft // window,
            _RING_QUANTILE,
            0.5 * (lo + hi),
            lo,
            _SUBHARMONIC_RATIO,
            floor_power,
        )
    return f0_bin * bin_hz, contrast_db


def _estimate_f0_numba(
    audio: np.ndarray, sample_rate: int, hop_length: int, fmin: float, fmax: float
) -> tuple[np.ndarray, np.ndarray]:
    short_f0, short_contrast = _track_one_window(
        audio, sample_rate, hop_length, fmin, fmax, _F0_WINDOWS_SECONDS[0]
    )
    long_f0, long_contrast = _track_one_window(
        audio, sample_rate, hop_length, fmin, fmax, _F0_WINDOWS_SECONDS[1]
    )
    # Per frame, the window that concentrates the partial best: the long one resolves weak
    # fundamentals and averages over buzzy notes, the short one follows fast trills.
    use_short = short_contrast > long_contrast + _SHORT_WINDOW_MARGIN_DB
    f0 = np.where(use_short, short_f0, long_f0)
    contrast = np.where(use_short, short_contrast, long_contrast)
    lo, hi = _TONALITY_DB
    confidence = np.clip((contrast - lo) / (hi - lo), 0.0, 1.0)
    return f0.astype(np.float32), confidence.astype(np.float32)


def _estimate_f0_crepe(
    audio: np.ndarray, sample_rate: int, hop_length: int, fmin: float, fmax: float, model: str
) -> tuple[np.ndarray, np.ndarray]:
    import torchcrepe  # heavy import, only for this tracker

    k = max(1, math.ceil(fmax / _CREPE_TOP_HZ))
    # Relabel to sr/k, then resample to 16 kHz: together one resampling by 16000 * k / sr. The
    # 16 kHz hop is rounded to whole samples and the resampling rate adjusted to it, so CREPE's
    # frames stay exactly on our grid; the F0 scale factor follows from the rate actually used.
    crepe_hop = max(1, round(hop_length * _CREPE_RATE * k / sample_rate))
    target_rate = sample_rate * crepe_hop / hop_length
    scale = target_rate / _CREPE_RATE  # = k up to the hop rounding
    resampled = soxr.resample(audio, sample_rate, target_rate).astype(np.float32)
    with torch.inference_mode():
        pitch, periodicity = torchcrepe.predict(
            torch.from_numpy(resampled)[None],
            _CREPE_RATE,
            hop_length=crepe_hop,
            fmin=max(fmin / scale, 32.0),
            fmax=min(fmax / scale, 2006.0),
            model=model,
            decoder=torchcrepe.decode.weighted_argmax,
            return_periodicity=True,
            batch_size=2048,
            device="cpu",
            pad=True,
        )
    n = frame_count(audio.shape[0], hop_length)
    f0 = pitch[0].numpy().astype(np.float64) * scale
    confidence = periodicity[0].numpy()
    # Resampled length rounding can leave CREPE a frame short or long.
    f0 = np.pad(f0, (0, max(0, n - f0.size)), mode="edge")[:n]
    confidence = np.pad(confidence, (0, max(0, n - confidence.size)))[:n]
    return f0.astype(np.float32), np.clip(confidence, 0.0, 1.0).astype(np.float32)


def estimate_f0(
    audio: np.ndarray,
    sample_rate: int,
    hop_length: int = HOP_LENGTH,
    fmin: float = F0_MIN_HZ,
    fmax: float = F0_MAX_HZ,
    method: str = "numba",
    crepe_model: str = "tiny",
) -> tuple[np.ndarray, np.ndarray]:
    """F0 and voicing confidence of mono ``audio [samples]``.

    Args:
        audio: Mono float audio ``[samples]`` at any rate.
        sample_rate: Its rate. ``fmax`` above 0.47 * ``sample_rate`` is lowered to that (a
            22.05 kHz file with the default ``fmax`` is searched up to 10.4 kHz).
        hop_length: Frame hop in samples (the grid of ARCHITECTURE.md).
        fmin, fmax: Search band in Hz.
        method: ``"numba"`` (spectral peak, ~400x real time on one core at a 2 ms hop) or
            ``"crepe"`` (relabelled torchcrepe; its cost is per frame: ~0.7x real time on one
            core at a 2 ms hop with ``"tiny"``, ~0.03x with ``"full"``).
        crepe_model: ``"tiny"`` or ``"full"`` (weights ship with torchcrepe).

    Returns:
        ``(f0_hz, confidence)``, each float32 ``[n_frames]``, ``n_frames = len // hop + 1``.
        ``f0_hz`` is the tracker's best guess in **every** frame: finite, within
        ``[fmin, fmax]``, never 0 or NaN (in noise, the most peak-like of the strongest in-band
        peaks; in digital silence ``fmin``), so it can drive a synthesiser directly.
        ``confidence`` in [0, 1] says whether the frame is voiced: the peak's contrast over its
        neighbourhood (15 dB → 0, 25 dB → 1) for ``"numba"``, CREPE's periodicity for
        ``"crepe"``; use ``confidence >= VOICED_THRESHOLD``.
        Noise-only frames score low with both.
    """
    if method not in ("numba", "crepe"):
        raise ValueError(f"method must be 'numba' or 'crepe', got {method!r}")
    if crepe_model not in ("tiny", "full"):
        raise ValueError(f"crepe_model must be 'tiny' or 'full', got {crepe_model!r}")
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise ValueError(f"estimate_f0 expects mono [samples], got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("estimate_f0: audio contains NaN or infinite samples")
    fmax = min(fmax, 0.47 * sample_rate)
    if not 0 < fmin < fmax:
        raise ValueError(f"need 0 < fmin < fmax (<= 0.47 * sample_rate), got {fmin}, {fmax}")
    if method == "numba":
        f0, confidence = _estimate_f0_numba(audio, sample_rate, hop_length, fmin, fmax)
    else:
        f0, confidence = _estimate_f0_crepe(audio, sample_rate, hop_length, fmin, fmax, crepe_model)
    f0 = np.nan_to_num(f0, nan=fmin, posinf=fmax, neginf=fmin)
    return np.clip(f0, fmin, fmax).astype(np.float32), confidence


def log_mel(
    audio: np.ndarray,
    sample_rate: int,
    hop_length: int = 4 * HOP_LENGTH,
    n_fft: int = 1024,
    n_mels: int = 64,
    fmin: float = 500.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Log-mel spectrogram ``[n_mels, n_frames]`` float32: ``log(mel power + 1e-6)``.

    Centred frames (``n_frames = len // hop_length + 1``), Hann window of ``n_fft``, Slaney mel
    filters from ``fmin`` to ``fmax`` (None: Nyquist).
    """
    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, np.float32),
        sr=sample_rate,
        n_fft=n_fft,
        hop_length=hop_length,
        n_mels=n_mels,
        fmin=fmin,
        fmax=fmax,
        center=True,
    )
    return np.log(mel + 1e-6).astype(np.float32)
