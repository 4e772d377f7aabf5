"""Numbers the product reports: F0 accuracy, loudness error, spectral and distribution distances.

Spectra come from :mod:`..dsp.spectral` (librosa's STFT with zero centre padding, Slaney mel
filters), the distribution distances from scipy.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.spatial.distance
import scipy.stats

from ..constants import ACTIVE_RANGE_DB
from ..dsp.spectral import frame_signal, hann_window, log_mel, magnitude_spectrogram

__all__ = [
    "SPECTRAL_FFT_SIZES",
    "diversity",
    "f0_accuracy",
    "frechet_distance",
    "log_mel_distance",
    "log_mel_embedding",
    "log_mel_embeddings",
    "loudness_mae_db",
    "nearest_distance",
    "octave_error_rate",
    "spectral_distance",
    "wasserstein",
]

SPECTRAL_FFT_SIZES: tuple[int, ...] = (2048, 1024, 512, 256, 128)
_LOG_FLOOR = 1e-5


def _signal(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _check_same_frames(arrays: dict[str, np.ndarray]) -> None:
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 1:
        raise ValueError(f"expected 1-D arrays of one length (one value per frame), got {shapes}")


# --- contours ------------------------------------------------------------------------------


def _voiced_cents_error(
    reference_hz: np.ndarray, estimate_hz: np.ndarray, voiced: np.ndarray
) -> np.ndarray:
    _check_same_frames({"reference_hz": reference_hz, "estimate_hz": estimate_hz, "voiced": voiced})
    mask = np.asarray(voiced, bool)
    if not mask.any():
        raise ValueError("needs at least one voiced frame")
    reference, estimate = np.asarray(reference_hz)[mask], np.asarray(estimate_hz)[mask]
    if not (np.isfinite(reference).all() and np.isfinite(estimate).all()):
        raise ValueError("F0 must be finite in voiced frames")
    if (reference <= 0).any() or (estimate <= 0).any():
        raise ValueError("F0 must be > 0 in voiced frames")
    return np.abs(1200.0 * np.log2(estimate.astype(np.float64) / reference))


def f0_accuracy(
    reference_hz: np.ndarray, estimate_hz: np.ndarray, voiced: np.ndarray, cents: float = 50.0
) -> float:
    """Fraction of ``voiced`` frames whose estimate is within ±``cents`` of the reference.

    All three are ``[frames]``; ``voiced`` is a boolean mask (e.g. reference confidence above a
    threshold). Raises ValueError without a voiced frame.
    """
    if cents < 0:
        raise ValueError(f"cents must be >= 0, got {cents}")
    return float(np.mean(_voiced_cents_error(reference_hz, estimate_hz, voiced) <= cents))


def octave_error_rate(
    reference_hz: np.ndarray, estimate_hz: np.ndarray, voiced: np.ndarray
) -> float:
    """Fraction of ``voiced`` frames off by a whole number (≥ 1) of octaves, ±100 cents.

    The tracker's typical failure — locking onto a harmonic or subharmonic — as opposed to
    being slightly off or plainly wrong.
    """
    error = _voiced_cents_error(reference_hz, estimate_hz, voiced)
    octaves = np.round(error / 1200.0)
    return float(np.mean((octaves >= 1) & (np.abs(error - 1200.0 * octaves) <= 100.0)))


def loudness_mae_db(a: np.ndarray, b: np.ndarray, active: np.ndarray | None = None) -> float:
    """Mean absolute difference (dB) of two loudness curves ``[frames]`` over the ``active``
    frames (boolean mask; all frames when None)."""
    arrays = {"a": a, "b": b} if active is None else {"a": a, "b": b, "active": active}
    _check_same_frames(arrays)
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    if active is not None:
        diff = diff[np.asarray(active, bool)]
    if diff.size == 0:
        raise ValueError("loudness_mae_db needs at least one (active) frame")
    return float(diff.mean())


# --- spectra -------------------------------------------------------------------------------


def _frame_power_db(audio: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Mean square of each centred, Hann-windowed frame in dB ``[frames]``."""
    frames = frame_signal(audio, n_fft, hop_length) * hann_window(n_fft)
    return 10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-20)


def spectral_distance(
    x: np.ndarray,
    y: np.ndarray,
    sample_rate: int,
    active_frames_from: np.ndarray | None = None,
    f_max: float | None = None,
) -> float:
    """Multi-scale log-magnitude distance between a recording ``x`` and its resynthesis ``y``.

    Exactly: the mean over FFT sizes 2048, 1024, 512, 256 and 128 (hop = n_fft / 4, periodic
    Hann window, zero centre padding) of the mean over active frames and all bins of
    ``|log(|X| + 1e-5) − log(|Y| + 1e-5)|``. Active frames are those whose power (the mean
    square of the windowed frame, in dB) is within 40 dB of the loudest frame of ``x`` — or of
    ``active_frames_from``, a signal as long as ``x`` (e.g. a clean reference when ``x`` is
    noisy). ``x`` and ``y`` are cut to the shorter of the two. ``f_max`` (Hz): only bins at or
    under it count, for a recording that carries nothing above it
    (``features.background.recorded_band_edge``): there the log term compares the resynthesis
    with digital silence and would rank a silent model best.

    The FFT sizes are in samples, so values compare only at one rate (the model's 32 kHz);
    ``sample_rate`` is checked, not used.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    if f_max is not None and not f_max > 0:
        raise ValueError(f"f_max must be > 0 Hz, got {f_max}")
    x, y = _signal(x, "x"), _signal(y, "y")
    n = min(x.shape[0], y.shape[0])
    x, y = x[:n], y[:n]
    reference = x
    if active_frames_from is not None:
        reference = _signal(active_frames_from, "active_frames_from")
        if reference.shape[0] < n:
            raise ValueError(
                f"active_frames_from has {reference.shape[0]} samples, needs at least {n}"
            )
        reference = reference[:n]
    distances = []
    for n_fft in SPECTRAL_FFT_SIZES:
        hop = n_fft // 4
        power_db = _frame_power_db(reference, n_fft, hop)
        active = power_db >= power_db.max() - ACTIVE_RANGE_DB
        bins = n_fft // 2 + 1
        if f_max is not None:
            bins = min(bins, int(f_max * n_fft / sample_rate) + 1)
        log_x = np.log(magnitude_spectrogram(x, n_fft, hop)[:bins, active] + _LOG_FLOOR)
        log_y = np.log(magnitude_spectrogram(y, n_fft, hop)[:bins, active] + _LOG_FLOOR)
        distances.append(float(np.mean(np.abs(log_x - log_y))))
    return float(np.mean(distances))


def log_mel_distance(x: np.ndarray, y: np.ndarray, sample_rate: int) -> float:
    """Mean |Δ log-mel| between ``x`` and ``y`` (cut to the shorter): 64 mel bands from 500 Hz,
    n_fft 1024, hop 256, ``log(mel power + 1e-6)``."""
    x, y = _signal(x, "x"), _signal(y, "y")
    n = min(x.shape[0], y.shape[0])
    return float(np.mean(np.abs(log_mel(x[:n], sample_rate) - log_mel(y[:n], sample_rate))))


def log_mel_embedding(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A cheap clip embedding ``[128]`` float32 for distribution metrics: the mean and the
    standard deviation over time of each of the 64 log-mel bands (as in
    :func:`log_mel_distance`)."""
    return log_mel_embeddings(_signal(audio, "audio")[None], sample_rate)[0]


def log_mel_embeddings(clips: np.ndarray, sample_rate: int) -> np.ndarray:
    """:func:`log_mel_embedding` of each of ``clips [n, samples]`` → ``[n, 128]`` float32, bit
    for bit, through one STFT (a judge scores a clip's dozen windows at a time)."""
    clips = np.asarray(clips, np.float32)
    if clips.ndim != 2 or clips.size == 0:
        raise ValueError(f"clips must be a non-empty [n, samples] array, got shape {clips.shape}")
    if not np.isfinite(clips).all():
        raise ValueError("clips contain NaN or inf")
    mel = log_mel(clips, sample_rate)
    return np.concatenate([mel.mean(axis=-1), mel.std(axis=-1)], axis=-1).astype(np.float32)


# --- distributions -------------------------------------------------------------------------


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein (earth mover's) distance between two samples (any shape, flattened),
    in their own unit: how far the values of one must move to match the other."""
    a, b = np.ravel(a), np.ravel(b)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"wasserstein needs two non-empty samples, got {a.size} and {b.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("wasserstein samples must be finite")
    return float(scipy.stats.wasserstein_distance(a, b))


def _embeddings(x: np.ndarray, name: str, min_rows: int = 1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < min_rows or x.shape[1] == 0:
        raise ValueError(f"{name} must be [n >= {min_rows}, d >= 1], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def frechet_distance(emb_a: np.ndarray, emb_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to embeddings ``[n, d]`` and ``[m, d]``.

    ``|μa − μb|² + tr(Σa + Σb − 2·(Σa Σb)^½)`` (the FID formula), with ``eps`` added to both
    covariances' diagonals so the matrix square root exists for rank-deficient sets (fewer
    rows than dimensions), and its real part taken (rounding leaves tiny imaginary parts).
    """
    a, b = _embeddings(emb_a, "emb_a", 2), _embeddings(emb_b, "emb_b", 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding sizes differ: {a.shape[1]} and {b.shape[1]}")
    ridge = eps * np.eye(a.shape[1])
    cov_a = np.cov(a, rowvar=False).reshape(a.shape[1], a.shape[1]) + ridge
    cov_b = np.cov(b, rowvar=False).reshape(b.shape[1], b.shape[1]) + ridge
    covmean = np.real(scipy.linalg.sqrtm(cov_a @ cov_b))
    mean_term = float(np.sum(np.square(a.mean(axis=0) - b.mean(axis=0))))
    # Rounding can leave a tiny negative value for identical distributions.
    return max(0.0, mean_term + float(np.trace(cov_a + cov_b - 2.0 * covmean)))


def diversity(embeddings: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between the rows of ``[n, d]`` (NaN when n < 2): how
    spread out a set of clips is; a model that sings one song has low diversity."""
    x = _embeddings(embeddings, "embeddings")
    if x.shape[0] < 2:
        return float("nan")
    return float(np.mean(scipy.spatial.distance.pdist(x)))


def nearest_distance(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query row ``[n, d]`` to its nearest reference row
    ``[m, d]`` → ``[n]``. Near-zero distances flag a model that copies its training clips."""
    q, r = _embeddings(query, "query"), _embeddings(reference, "reference")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"embedding sizes differ: {q.shape[1]} and {r.shape[1]}")
    # In blocks of queries, so the distance matrix stays ~32 MB however large the sets.
    block = max(1, 4_000_000 // r.shape[0])
    return np.concatenate(
        [
            scipy.spatial.distance.cdist(q[i : i + block], r).min(axis=1)
            for i in range(0, q.shape[0], block)
        ]
    )
