"""Numbers the product reports: F0 accuracy, loudness error, spectral and distribution distances."""

from __future__ import annotations

from collections.abc import Sequence

import librosa
import numpy as np
import scipy.linalg
import scipy.stats

__all__ = [
    "diversity",
    "f0_accuracy",
    "frechet_distance",
    "log_mel_distance",
    "log_mel_embedding",
    "loudness_mae_db",
    "nearest_distance",
    "octave_error_rate",
    "spectral_distance",
    "wasserstein",
]

SPECTRAL_FFT_SIZES: tuple[int, ...] = (2048, 1024, 512, 256, 128)


def _cents(reference_hz: np.ndarray, estimate_hz: np.ndarray) -> np.ndarray:
    return 1200.0 * np.log2(np.maximum(estimate_hz, 1e-3) / np.maximum(reference_hz, 1e-3))


def f0_accuracy(
    reference_hz: np.ndarray, estimate_hz: np.ndarray, voiced: np.ndarray, cents: float = 50.0
) -> float:
    """Fraction of ``voiced`` frames whose estimate is within ``±cents`` of the reference."""
    n = min(len(reference_hz), len(estimate_hz), len(voiced))
    mask = np.asarray(voiced[:n], bool)
    if not mask.any():
        raise ValueError("f0_accuracy needs at least one voiced frame")
    error = np.abs(_cents(reference_hz[:n][mask], estimate_hz[:n][mask]))
    return float(np.mean(error <= cents))


def octave_error_rate(reference_hz: np.ndarray, estimate_hz: np.ndarray, voiced: np.ndarray) -> float:
    """Fraction of voiced frames off by an octave or more (|error| within 100 cents of k·1200)."""
    n = min(len(reference_hz), len(estimate_hz), len(voiced))
    mask = np.asarray(voiced[:n], bool)
    if not mask.any():
        raise ValueError("octave_error_rate needs at least one voiced frame")
    error = np.abs(_cents(reference_hz[:n][mask], estimate_hz[:n][mask]))
    octaves = np.round(error / 1200.0)
    return float(np.mean((octaves >= 1) & (np.abs(error - 1200.0 * octaves) <= 100.0)))


def loudness_mae_db(a: np.ndarray, b: np.ndarray, active: np.ndarray | None = None) -> float:
    """Mean absolute loudness difference (dB) over ``active`` frames (all when None)."""
    n = min(len(a), len(b))
    diff = np.abs(np.asarray(a[:n], np.float64) - np.asarray(b[:n], np.float64))
    if active is not None:
        diff = diff[np.asarray(active[:n], bool)]
    return float(diff.mean())


def _stft_magnitude(x: np.ndarray, n_fft: int) -> np.ndarray:
    return np.abs(
        librosa.stft(x, n_fft=n_fft, hop_length=n_fft // 4, window="hann", center=True)
    )


def spectral_distance(x: np.ndarray, y: np.ndarray, sample_rate: int) -> float:
    """Mean over FFT sizes 2048…128 (75 % overlap, Hann) of mean |log(|X|+1e-5) − log(|Y|+1e-5)|
    over the active frames of ``x`` (frame RMS within 40 dB of ``x``'s loudest frame).

    ``x`` is the real recording, ``y`` the resynthesis; both are cropped to the shorter.
    ``sample_rate`` is accepted for symmetry with the other metrics (the FFT sizes are fixed in
    samples, so the distance is comparable only at one rate: the model's 32 kHz).
    """
    del sample_rate
    n = min(len(x), len(y))
    x = np.asarray(x[:n], np.float32)
    y = np.asarray(y[:n], np.float32)
    distances = []
    for n_fft in SPECTRAL_FFT_SIZES:
        mx, my = _stft_magnitude(x, n_fft), _stft_magnitude(y, n_fft)
        frame_db = 10 * np.log10(np.mean(mx**2, axis=0) + 1e-20)
        active = frame_db >= frame_db.max() - 40.0
        diff = np.abs(np.log(mx[:, active] + 1e-5) - np.log(my[:, active] + 1e-5))
        distances.append(float(diff.mean()))
    return float(np.mean(distances))


def _log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, np.float32), sr=sample_rate, n_fft=1024, hop_length=256, n_mels=64, fmin=500.0
    )
    return np.log(mel + 1e-6)


def log_mel_distance(x: np.ndarray, y: np.ndarray, sample_rate: int) -> float:
    """Mean |Δ log-mel| between two equally long signals (cropped to the shorter)."""
    n = min(len(x), len(y))
    return float(np.mean(np.abs(_log_mel(x[:n], sample_rate) - _log_mel(y[:n], sample_rate))))


def log_mel_embedding(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cheap clip embedding ``[128]``: per-band mean and std of the log-mel spectrogram."""
    mel = _log_mel(audio, sample_rate)
    return np.concatenate([mel.mean(1), mel.std(1)]).astype(np.float32)


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein (earth mover's) distance between two samples."""
    return float(scipy.stats.wasserstein_distance(np.ravel(a), np.ravel(b)))


def frechet_distance(emb_a: np.ndarray, emb_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to ``[n, d]`` and ``[m, d]`` embeddings."""
    emb_a, emb_b = np.atleast_2d(emb_a), np.atleast_2d(emb_b)
    mu_a, mu_b = emb_a.mean(0), emb_b.mean(0)
    d = emb_a.shape[1]
    cov_a = np.cov(emb_a, rowvar=False) if len(emb_a) > 1 else np.zeros((d, d))
    cov_b = np.cov(emb_b, rowvar=False) if len(emb_b) > 1 else np.zeros((d, d))
    cov_a = np.atleast_2d(cov_a) + eps * np.eye(d)
    cov_b = np.atleast_2d(cov_b) + eps * np.eye(d)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * covmean))


def diversity(embeddings: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between ``[n, d]`` embeddings (0 when n < 2)."""
    embeddings = np.atleast_2d(embeddings)
    if len(embeddings) < 2:
        return 0.0
    diff = embeddings[:, None, :] - embeddings[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    return float(dist[np.triu_indices(len(embeddings), 1)].mean())


def nearest_distance(query: np.ndarray, reference: np.ndarray | Sequence) -> np.ndarray:
    """Distance from each ``[n, d]`` query row to its nearest ``[m, d]`` reference row → ``[n]``."""
    query, reference = np.atleast_2d(query), np.atleast_2d(np.asarray(reference))
    diff = query[:, None, :] - reference[None, :, :]
    return np.sqrt((diff**2).sum(-1)).min(1)
