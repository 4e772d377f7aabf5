"""CPU fast path: the maths of :mod:`.functional` for one clip, float32 numpy, no torch.

Used for generation, where no gradient is needed. Harmonics at or above Nyquist are skipped
rather than computed and masked, and harmonic ``k`` comes from the Chebyshev recurrence
``sin((k+1)φ) = 2 cos φ sin(kφ) − sin((k−1)φ)``: one sin/cos pair per sample whatever the
harmonic count.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft as sfft
from numba import njit

__all__ = ["fft_convolve", "filtered_noise", "harmonic_synth", "noise_impulse_responses"]


def _frame_amplitudes(
    f0_hz: np.ndarray, amplitude: np.ndarray, harmonic_distribution: np.ndarray, sample_rate: int
) -> np.ndarray:
    """Masked, renormalised harmonic amplitudes ``[frames, n_harmonics]`` (as the torch path)."""
    ks = np.arange(1, harmonic_distribution.shape[1] + 1, dtype=np.float32)
    keep = (f0_hz[:, None] * ks) < sample_rate / 2
    masked = harmonic_distribution * keep
    norm = np.maximum(masked.sum(1, keepdims=True), np.float32(1e-7))
    return (masked / norm * amplitude[:, None]).astype(np.float32)


@njit(cache=True, nogil=True)
def _harmonic_kernel(f0_hz, harmonic_amps, sample_rate, hop_length, n_samples):  # pragma: no cover
    frames, n_harmonics = harmonic_amps.shape
    # Highest audible harmonic per frame, so silent ones are never computed.
    top = np.zeros(frames, np.int64)
    for i in range(frames):
        for k in range(n_harmonics - 1, -1, -1):
            if harmonic_amps[i, k] != 0.0:
                top[i] = k + 1
                break
    out = np.zeros(n_samples, np.float32)
    amps = np.empty(n_harmonics, np.float64)
    steps = np.empty(n_harmonics, np.float64)
    two_pi = 2.0 * math.pi
    phase = 0.0  # exact float64 phase at the start of each frame
    n = 0
    for i in range(frames):
        if n >= n_samples:
            break
        right = min(i + 1, frames - 1)
        # The last frame holds its values until the end of the clip.
        count = hop_length if i < frames - 1 else n_samples - n
        count = min(count, n_samples - n)
        omega = two_pi * f0_hz[i] / sample_rate
        delta = two_pi * (f0_hz[right] - f0_hz[i]) / (hop_length * sample_rate)
        n_k = max(top[i], top[right])
        for k in range(n_k):
            amps[k] = harmonic_amps[i, k]
            steps[k] = (harmonic_amps[right, k] - harmonic_amps[i, k]) / hop_length
        # Linear F0 inside the frame makes the per-sample phase increment linear, so the unit
        # phasor advances by complex multiplication (exact up to rounding): no sin/cos per sample.
        # Re-anchored from the exact phase every frame, so rounding never accumulates.
        re, im = math.cos(phase), math.sin(phase)
        step_re, step_im = math.cos(omega), math.sin(omega)
        chirp_re, chirp_im = math.cos(delta), math.sin(delta)
        for _ in range(count):
            re, im = re * step_re - im * step_im, re * step_im + im * step_re
            s_prev, s_cur, c2 = 0.0, im, 2.0 * re
            acc = 0.0
            for k in range(n_k):
                acc += amps[k] * s_cur
                amps[k] += steps[k]
                s_prev, s_cur = s_cur, c2 * s_cur - s_prev
            out[n] = acc
            n += 1
            step_re, step_im = (
                step_re * chirp_re - step_im * chirp_im,
                step_re * chirp_im + step_im * chirp_re,
            )
        # Exact phase after this frame: sum of the linear increments omega + delta * j.
        phase += count * omega + delta * count * (count - 1) / 2.0
        phase -= two_pi * math.floor(phase / two_pi)
    return out


def harmonic_synth(
    f0_hz: np.ndarray,
    amplitude: np.ndarray,
    harmonic_distribution: np.ndarray,
    sample_rate: int,
    hop_length: int,
    n_samples: int,
) -> np.ndarray:
    """Additive oscillator bank: ``f0 [frames]``, ``amplitude [frames]``, distribution
    ``[frames, n_harmonics]`` → ``[n_samples]`` float32."""
    f0 = np.ascontiguousarray(f0_hz, np.float64)
    amps = _frame_amplitudes(
        f0_hz.astype(np.float32),
        np.asarray(amplitude, np.float32),
        np.asarray(harmonic_distribution, np.float32),
        sample_rate,
    )
    return _harmonic_kernel(f0, amps, float(sample_rate), int(hop_length), int(n_samples))


@functools.lru_cache(maxsize=8)
def _fir_constants(n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    size = 2 * (n_bands - 1)
    # (-1)^k on the spectrum = a circular shift by size/2: the causal rotation, with no copy.
    signs = np.where(np.arange(n_bands) % 2 == 0, 1.0, -1.0).astype(np.float32)
    return signs, np.hanning(size).astype(np.float32)


def noise_impulse_responses(magnitudes: np.ndarray) -> np.ndarray:
    """``[..., n_bands]`` magnitudes → causal Hann-windowed FIRs ``[..., 2 (n_bands - 1)]``."""
    signs, window = _fir_constants(magnitudes.shape[-1])
    ir = sfft.irfft(np.asarray(magnitudes, np.float32) * signs, workers=1)
    ir *= window
    return ir


@njit(cache=True, nogil=True, fastmath=True)
def _filter_frames(noise, ir, hop_length, n_samples):  # pragma: no cover
    # Direct convolution of each hop-long noise block with its frame's FIR, overlap-added in
    # place: for 64-sample blocks and 128 taps this beats three batched FFTs per frame.
    frames, taps = ir.shape
    delay = taps // 2
    out = np.zeros(frames * hop_length + taps, np.float32)
    for i in range(frames):
        base = i * hop_length
        h = ir[i]
        for j in range(hop_length):
            if base + j >= noise.shape[0]:
                break
            x = noise[base + j]
            o = out[base + j : base + j + taps]
            for t in range(taps):
                o[t] += x * h[t]
    return out[delay : delay + n_samples]


def filtered_noise(magnitudes: np.ndarray, noise: np.ndarray, hop_length: int) -> np.ndarray:
    """Time-varying filtered noise: ``magnitudes [frames, n_bands]``, ``noise [n_samples]`` →
    ``[n_samples]``; frame ``i`` filters noise samples ``[i*hop, (i+1)*hop)``."""
    ir = noise_impulse_responses(magnitudes)
    noise = np.ascontiguousarray(noise, np.float32)
    out = _filter_frames(noise, ir, int(hop_length), noise.shape[0])
    if out.shape[0] < noise.shape[0]:
        out = np.pad(out, (0, noise.shape[0] - out.shape[0]))
    return out


def fft_convolve(audio: np.ndarray, impulse_response: np.ndarray) -> np.ndarray:
    """Linear convolution ``[n] * [m]`` → ``[n]`` (tail dropped), float32."""
    n = audio.shape[0]
    size = sfft.next_fast_len(n + impulse_response.shape[0] - 1, real=True)
    spectrum = sfft.rfft(audio, size, workers=1)
    spectrum *= sfft.rfft(impulse_response, size, workers=1)
    return sfft.irfft(spectrum, size, workers=1)[:n].astype(np.float32)
