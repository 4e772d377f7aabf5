"""F0 and voicing confidence of birdsong, on the frame grid of :mod:`..dsp.spectral`.

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
  presented as if recorded at ``sr / k`` (``k = ceil(f_max / 1900)``), which moves 1-12 kHz into
  range, and the estimate is multiplied back. The relabelled signal is resampled to CREPE's 16 kHz
  with the hop scaled to match, so the frame count and the cost are those of the original hop.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import soxr
import torch

from ..constants import F0_MAX_HZ, F0_MIN_HZ, HOP_LENGTH
from ..dsp.spectral import frame_count, frame_signal, hann_window, power_blocks
from ._peak_tracker import track_peaks

__all__ = ["F0Method", "estimate_f0"]

F0Method = Literal["numba", "crepe"]

_F0_WINDOWS_SECONDS = (0.004, 0.008)
_SHORT_WINDOW_MARGIN_DB = 2.0  # the short window must beat the long one's contrast by this
_TONALITY_DB = (15.0, 25.0)  # contrast mapped onto confidence 0..1 (see the module doc)
_RING_HZ = 1500.0  # neighbourhood of a peak, beyond its main lobe, that sets its noise level
_RING_QUANTILE = 0.25
_SUBHARMONIC_RATIO = 0.1  # a clear partial at f/2 or f/3 within 10 dB of f is the fundamental
_CREPE_TOP_HZ = 1900.0  # relabelled f_max stays below CREPE's 2006 Hz top bin
_CREPE_RATE = 16000


def _track_one_window(
    audio: np.ndarray, sample_rate: int, hop_length: int, f_min: float, f_max: float, seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """Peak tracker on one window length → ``(f0_hz, contrast_db)``, each ``[n_frames]``."""
    window = max(16, 2 * round(seconds * sample_rate / 2))
    n_fft = 1 << math.ceil(math.log2(2 * window))  # >= 2x zero padding for the interpolation
    frames = frame_signal(audio, window, hop_length)
    bin_hz = sample_rate / n_fft
    first = max(2, math.floor(f_min / bin_hz) - 1)
    last = min(n_fft // 2 - 2, math.ceil(f_max / bin_hz) + 1)
    lobe = math.ceil(2 * n_fft / window)  # Hann main lobe half-width: 2 unpadded bins
    ring = max(4, round(_RING_HZ / bin_hz))
    # Below this the frame is digital silence (or -150 dBFS): no peak worth reporting.
    floor_power = 1e-15 * window * float(np.sum(hann_window(window) ** 2))
    lo, hi = _TONALITY_DB
    f0_bin = np.empty(frames.shape[0], np.float64)
    contrast_db = np.empty(frames.shape[0], np.float32)
    for rows, power in power_blocks(frames, n_fft):
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
    audio: np.ndarray, sample_rate: int, hop_length: int, f_min: float, f_max: float
) -> tuple[np.ndarray, np.ndarray]:
    short_f0, short_contrast = _track_one_window(
        audio, sample_rate, hop_length, f_min, f_max, _F0_WINDOWS_SECONDS[0]
    )
    long_f0, long_contrast = _track_one_window(
        audio, sample_rate, hop_length, f_min, f_max, _F0_WINDOWS_SECONDS[1]
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
    audio: np.ndarray, sample_rate: int, hop_length: int, f_min: float, f_max: float, model: str
) -> tuple[np.ndarray, np.ndarray]:
    import torchcrepe  # heavy import, only for this tracker

    k = max(1, math.ceil(f_max / _CREPE_TOP_HZ))
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
            fmin=max(f_min / scale, 32.0),
            fmax=min(f_max / scale, 2006.0),
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
    f_min: float = F0_MIN_HZ,
    f_max: float = F0_MAX_HZ,
    method: F0Method = "numba",
    crepe_model: Literal["tiny", "full"] = "tiny",
) -> tuple[np.ndarray, np.ndarray]:
    """F0 and voicing confidence of mono ``audio [samples]``.

    Args:
        audio: Mono float audio ``[samples]`` at any rate.
        sample_rate: Its rate. ``f_max`` above 0.47 * ``sample_rate`` is lowered to that (a
            22.05 kHz file with the default ``f_max`` is searched up to 10.4 kHz).
        hop_length: Frame hop in samples (the grid of ARCHITECTURE.md).
        f_min, f_max: Search band in Hz.
        method: ``"numba"`` (spectral peak, ~400x real time on one core at a 2 ms hop) or
            ``"crepe"`` (relabelled torchcrepe; its cost is per frame: ~0.7x real time on one
            core at a 2 ms hop with ``"tiny"``, ~0.03x with ``"full"``).
        crepe_model: ``"tiny"`` or ``"full"`` (weights ship with torchcrepe).

    Returns:
        ``(f0_hz, confidence)``, each float32 ``[n_frames]``, ``n_frames = len // hop + 1``.
        ``f0_hz`` is the tracker's best guess in **every** frame: finite, within
        ``[f_min, f_max]``, never 0 or NaN (in noise, the most peak-like of the strongest in-band
        peaks; in digital silence ``f_min``), so it can drive a synthesiser directly.
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
    f_max = min(f_max, 0.47 * sample_rate)
    if not 0 < f_min < f_max:
        raise ValueError(f"need 0 < f_min < f_max (<= 0.47 * sample_rate), got {f_min}, {f_max}")
    if method == "numba":
        f0, confidence = _estimate_f0_numba(audio, sample_rate, hop_length, f_min, f_max)
    else:
        f0, confidence = _estimate_f0_crepe(
            audio, sample_rate, hop_length, f_min, f_max, crepe_model
        )
    f0 = np.nan_to_num(f0, nan=f_min, posinf=f_max, neginf=f_min)
    return np.clip(f0, f_min, f_max).astype(np.float32), confidence
