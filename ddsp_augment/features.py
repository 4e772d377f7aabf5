"""Frame features for birdsong: A-weighted loudness, F0 + voicing confidence, log-mel.

Frame ``i`` is centred at sample ``i * hop_length``; a signal of ``n`` samples has
``n // hop_length + 1`` frames.

F0 trackers:
- ``"numba"`` (default, fast): spectral-peak tracker on an 8 ms Hann window, parabolic
  interpolation on the log spectrum, and a subharmonic check against octave errors. Birdsong is
  mostly near-pure tones at 1–10 kHz whose partials are far apart, where a short-window peak
  tracker follows kHz-per-millisecond sweeps that autocorrelation trackers blur.
- ``"crepe"``: torchcrepe with sample-rate relabelling. CREPE covers ~31–2006 Hz; presenting the
  signal as if recorded at ``sr / k`` moves 1–10 kHz into range, the estimate is multiplied by
  ``k``, and the hop is given at the relabelled rate so the frame count (and cost) stays that of
  the original hop.
"""

from __future__ import annotations

import functools
import math

import librosa
import numpy as np
import scipy.fft as sfft
import torch
from numba import njit

from .constants import F0_MAX_HZ, F0_MIN_HZ, HOP_LENGTH, LOUDNESS_FLOOR_DB

__all__ = ["estimate_f0", "frame_count", "log_mel", "loudness_db"]

_WINDOW_SECONDS = 0.008
_CREPE_MAX_HZ = 1900.0  # stay below CREPE's 2006 Hz top bin


def frame_count(n_samples: int, hop_length: int) -> int:
    return n_samples // hop_length + 1


def _frames(audio: np.ndarray, hop_length: int, window: int) -> np.ndarray:
    """Centred frames ``[n_frames, window]`` (zero padded at both ends)."""
    audio = np.asarray(audio, np.float32)
    n_frames = frame_count(audio.shape[0], hop_length)
    padded = np.zeros((n_frames - 1) * hop_length + window, np.float32)
    start = window // 2
    length = min(audio.shape[0], padded.shape[0] - start)
    padded[start : start + length] = audio[:length]
    view = np.lib.stride_tricks.sliding_window_view(padded, window)[::hop_length]
    return view[:n_frames]


@functools.lru_cache(maxsize=16)
def _analysis(sample_rate: int) -> tuple[int, int, np.ndarray]:
    window = 2 ** round(math.log2(_WINDOW_SECONDS * sample_rate))
    n_fft = 2 * window  # zero padding halves the bin spacing for the interpolation
    return window, n_fft, np.hanning(window + 1)[:-1].astype(np.float32)


@functools.lru_cache(maxsize=16)
def _a_weights(sample_rate: int, n_fft: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    weights = 10 ** (librosa.A_weighting(np.maximum(freqs, 1.0)) / 10)
    weights[0] = 0.0
    return weights.astype(np.float32)


def _power_spectra(audio: np.ndarray, sample_rate: int, hop_length: int) -> tuple[np.ndarray, int, np.ndarray]:
    window, n_fft, hann = _analysis(sample_rate)
    frames = _frames(audio, hop_length, window) * hann
    spectrum = sfft.rfft(frames, n_fft, axis=1, workers=1)
    return (spectrum.real**2 + spectrum.imag**2).astype(np.float32), n_fft, hann


def loudness_db(
    audio: np.ndarray, sample_rate: int, hop_length: int = HOP_LENGTH
) -> np.ndarray:
    """A-weighted loudness ``[n_frames]`` in dB, floor -100 dB.

    Calibration: a full-scale (peak 1.0) 1 kHz sine reads 0 dB; -20 dBFS reads -20 dB.
    """
    power, n_fft, hann = _power_spectra(audio, sample_rate, hop_length)
    weighted = power @ _a_weights(sample_rate, n_fft)
    # One-sided energy of a unit sine through the window: n_fft * sum(w^2) / 4.
    reference = n_fft * float(np.sum(hann.astype(np.float64) ** 2)) / 4.0
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(weighted / reference)
    return np.maximum(db, LOUDNESS_FLOOR_DB).astype(np.float32)


@njit(cache=True, nogil=True)
def _track_peaks(power, bin_hz, first_bin, last_bin):  # pragma: no cover
    n_frames, n_bins = power.shape
    f0 = np.empty(n_frames, np.float32)
    confidence = np.empty(n_frames, np.float32)
    last_bin = min(last_bin, n_bins - 2)
    for i in range(n_frames):
        row = power[i]
        total = 1e-20
        best, best_bin = -1.0, first_bin
        for k in range(first_bin, last_bin + 1):
            total += row[k]
            if row[k] > best:
                best, best_bin = row[k], k
        # Octave guard: a partial at half the peak's frequency with a fair share of its energy
        # means the peak is the 2nd harmonic of a harmonic-rich note.
        half = best_bin // 2
        if half >= first_bin:
            low_best, low_bin = -1.0, half
            for k in range(max(first_bin, half - 2), min(last_bin, half + 2) + 1):
                if row[k] > low_best:
                    low_best, low_bin = row[k], k
            is_peak = row[low_bin] >= row[low_bin - 1] and row[low_bin] >= row[low_bin + 1]
            if is_peak and low_best > 0.25 * best:
                best, best_bin = low_best, low_bin
        a = math.log(row[best_bin - 1] + 1e-20)
        b = math.log(row[best_bin] + 1e-20)
        c = math.log(row[best_bin + 1] + 1e-20)
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom < 0 else 0.0
        offset = min(0.5, max(-0.5, offset))
        f0[i] = (best_bin + offset) * bin_hz
        # Voicing: share of in-band energy in the peak's main lobe and at its harmonics. A
        # tone scores near 1, broadband noise near (lobe width / band width).
        lobe = 0.0
        for h in range(1, 6):
            centre = int(round((best_bin + offset) * h))
            if centre - 3 > last_bin:
                break
            for k in range(max(first_bin, centre - 3), min(last_bin, centre + 3) + 1):
                lobe += row[k]
        confidence[i] = min(1.0, lobe / total)
    return f0, confidence


def _estimate_f0_numba(
    audio: np.ndarray, sample_rate: int, hop_length: int, fmin: float, fmax: float
) -> tuple[np.ndarray, np.ndarray]:
    power, n_fft, _ = _power_spectra(audio, sample_rate, hop_length)
    bin_hz = sample_rate / n_fft
    first = max(1, int(math.floor(fmin / bin_hz)))
    last = int(math.ceil(fmax / bin_hz))
    f0, confidence = _track_peaks(power, bin_hz, first, last)
    # Make confidence a voicing probability: 0 for a lobe share at chance level, 1 for a tone.
    chance = 7.0 / max(1, last - first)
    confidence = np.clip((confidence - 2 * chance) / (0.8 - 2 * chance), 0.0, 1.0)
    return f0, confidence.astype(np.float32)


def _estimate_f0_crepe(
    audio: np.ndarray, sample_rate: int, hop_length: int, fmin: float, fmax: float, model: str
) -> tuple[np.ndarray, np.ndarray]:
    import torchcrepe

    k = max(1, math.ceil(fmax / _CREPE_MAX_HZ))
    relabelled_sr = sample_rate / k
    with torch.no_grad():
        pitch, periodicity = torchcrepe.predict(
            torch.from_numpy(np.asarray(audio, np.float32))[None],
            int(round(relabelled_sr)),
            hop_length=hop_length,
            fmin=max(fmin / k, 32.0),
            fmax=min(fmax / k, 2006.0),
            model=model,
            decoder=torchcrepe.decode.weighted_argmax,
            return_periodicity=True,
            batch_size=512,
            device="cpu",
            pad=True,
        )
    n = frame_count(audio.shape[0], hop_length)
    f0 = pitch[0].numpy().astype(np.float32) * k
    confidence = periodicity[0].numpy().astype(np.float32)
    f0 = np.pad(f0, (0, max(0, n - f0.size)), mode="edge")[:n]
    confidence = np.pad(confidence, (0, max(0, n - confidence.size)))[:n]
    return f0, confidence


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

    Returns:
        ``(f0_hz, confidence)``, each float32 ``[n_frames]``. ``f0_hz`` is the tracker's best
        guess in **every** frame (finite, within ``[fmin, fmax]``, never 0 or NaN), so it can be
        fed to a synthesiser directly; ``confidence`` in [0, 1] says whether the frame is voiced
        (use ``confidence >= 0.5``).
    """
    if method not in ("numba", "crepe"):
        raise ValueError(f"method must be 'numba' or 'crepe', got {method!r}")
    if not 0 < fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax <= {sample_rate / 2}, got {fmin}, {fmax}")
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise ValueError(f"estimate_f0 expects mono [samples], got shape {audio.shape}")
    if method == "numba":
        f0, confidence = _estimate_f0_numba(audio, sample_rate, hop_length, fmin, fmax)
    else:
        if crepe_model not in ("tiny", "full"):
            raise ValueError(f"crepe_model must be 'tiny' or 'full', got {crepe_model!r}")
        f0, confidence = _estimate_f0_crepe(audio, sample_rate, hop_length, fmin, fmax, crepe_model)
    f0 = np.nan_to_num(f0, nan=fmin)
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
    """Log-mel spectrogram ``[n_mels, n_frames]`` (natural log of power + 1e-6)."""
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
