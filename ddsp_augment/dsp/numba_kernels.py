"""CPU fast path: the maths of :mod:`.functional` for one clip, float32 numpy, no torch.

Used for generation, where no gradient is needed. Both kernels work one control frame (one hop of
samples) at a time in small scratch buffers that stay in L1, and allocate nothing per clip but
their output:

* harmonic: the fundamental's unit phasor is advanced by complex rotation (re-anchored from the
  exact float64 phase every frame, so rounding never accumulates), and harmonic ``k`` comes from
  the Chebyshev recurrence ``sin((k+1)φ) = 2 cos φ sin(kφ) − sin((k−1)φ)``, vectorised over the
  frame's samples: one rotation per sample whatever the harmonic count. Harmonics at or above
  Nyquist are never computed.
* separable conv stack (the species decoder's core, so generation needs no torch call): frames
  major, so each 1×1 conv is a BLAS matrix product (in blocks kept on the calling thread, see
  ``_BLAS_BLOCK``; 3× a hand-written loop) and the depthwise taps are vectorised over channels.
* filtered noise: each frame's FIR is designed by a small cosine transform (the irfft of real,
  even magnitudes) and applied by direct convolution, eight input samples per pass so the
  overlap-add buffer is read and written once per eight taps instead of once per tap.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft as sfft
from numba import njit
from threadpoolctl import ThreadpoolController

__all__ = [
    "convolution_size",
    "exp_sigmoid",
    "fft_convolve",
    "filtered_noise",
    "harmonic_synth",
    "noise_impulse_responses",
    "pool_frames",
    "rfft",
    "separable_conv_stack",
]

# "contract" lets LLVM fuse multiply-adds; no reassociation, so results do not depend on the
# vector width of the machine.
_FASTMATH = {"contract"}
# Input samples folded into one pass over the overlap-add buffer (see _filtered_noise_kernel).
_UNROLL = 8
# Multiply-adds per BLAS call in the conv stack: OpenBLAS keeps products of up to 2^18 on the
# calling thread. Larger ones it splits over threads that spin against other work on a busy
# machine (a 3 s clip's decoder took 130 ms instead of 2), and no caller asked for threads.
_BLAS_BLOCK = 2**17


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _frame_amplitudes(f0_hz, amplitude, distribution, frame, nyquist, amps):  # pragma: no cover
    """Write frame ``frame``'s masked, renormalised harmonic amplitudes into ``amps``; return the
    number of harmonics below Nyquist (those above are left untouched: they are never read)."""
    n_harmonics = distribution.shape[1]
    f0 = f0_hz[frame]
    # float32 product and comparison, exactly as remove_above_nyquist does it in torch.
    top = 0
    while top < n_harmonics and f0 * np.float32(top + 1) < nyquist:
        top += 1
    total = np.float32(0.0)
    for k in range(top):
        total += distribution[frame, k]
    scale = amplitude[frame] / max(total, np.float32(1e-7))
    for k in range(top):
        amps[k] = distribution[frame, k] * scale
    return top


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _harmonic_kernel(
    f0_hz, amplitude, distribution, sample_rate, hop_length, n_samples
):  # pragma: no cover
    frames, n_harmonics = distribution.shape
    nyquist = np.float32(sample_rate / 2.0)
    two_pi = 2.0 * math.pi
    out = np.empty(n_samples, np.float32)
    left = np.zeros(n_harmonics, np.float64)
    right = np.zeros(n_harmonics, np.float64)
    cos2 = np.empty(hop_length, np.float64)  # 2 cos φ per sample
    s_prev = np.empty(hop_length, np.float64)
    s_cur = np.empty(hop_length, np.float64)
    acc = np.empty(hop_length, np.float64)
    top_left = _frame_amplitudes(f0_hz, amplitude, distribution, 0, nyquist, left)
    phase = 0.0  # exact float64 phase before the segment's first sample, wrapped to [0, 2π)
    n_segments = (n_samples + hop_length - 1) // hop_length
    for segment in range(n_segments):
        # Segment ``i`` runs from frame i's centre towards frame i + 1's; past the last frame the
        # controls hold (right == left), as upsample_linear clamps.
        i = min(segment, frames - 1)
        r = min(segment + 1, frames - 1)
        start = segment * hop_length
        count = min(hop_length, n_samples - start)
        top_right = _frame_amplitudes(f0_hz, amplitude, distribution, r, nyquist, right)
        # Harmonics masked in only one of the two frames fade linearly to/from zero.
        for k in range(top_right, top_left):
            right[k] = 0.0
        for k in range(top_left, top_right):
            left[k] = 0.0
        n_active = max(top_left, top_right)

        # F0 is linear within the segment, so the phase increment of sample j is omega + delta*j
        # and the unit phasor advances by a rotation whose own angle grows by delta each sample.
        omega = two_pi * float(f0_hz[i]) / sample_rate
        delta = two_pi * (float(f0_hz[r]) - float(f0_hz[i])) / (hop_length * sample_rate)
        re, im = math.cos(phase), math.sin(phase)
        step_re, step_im = math.cos(omega), math.sin(omega)
        chirp_re, chirp_im = math.cos(delta), math.sin(delta)
        for j in range(count):
            re, im = re * step_re - im * step_im, re * step_im + im * step_re
            cos2[j] = 2.0 * re
            s_cur[j] = im
            s_prev[j] = 0.0
            acc[j] = 0.0
            step_re, step_im = (
                step_re * chirp_re - step_im * chirp_im,
                step_re * chirp_im + step_im * chirp_re,
            )
        for k in range(n_active):
            a0 = left[k]
            slope = (right[k] - left[k]) / hop_length
            for j in range(count):
                s = s_cur[j]
                acc[j] += (a0 + slope * j) * s
                s_cur[j] = cos2[j] * s - s_prev[j]
                s_prev[j] = s
        for j in range(count):
            out[start + j] = acc[j]

        phase += count * omega + delta * (count * (count - 1) / 2.0)
        phase -= two_pi * math.floor(phase / two_pi)
        left, right = right, left
        top_left = top_right
    return out


def harmonic_synth(
    f0_hz: np.ndarray,
    amplitude: np.ndarray,
    harmonic_distribution: np.ndarray,
    sample_rate: int,
    hop_length: int,
    n_samples: int,
) -> np.ndarray:
    """Additive oscillator bank for one clip.

    Args:
        f0_hz: ``[frames]`` fundamental frequency in Hz (finite, > 0).
        amplitude: ``[frames]`` overall amplitude.
        harmonic_distribution: ``[frames, n_harmonics]`` relative harmonic amplitudes; masked at
            Nyquist and renormalised per frame, as in :func:`.functional.remove_above_nyquist`.
        sample_rate: Audio rate in Hz.
        hop_length: Samples per control frame.
        n_samples: Output length.

    Returns:
        ``[n_samples]`` float32 audio.
    """
    return _harmonic_kernel(
        np.ascontiguousarray(f0_hz, np.float32),
        np.ascontiguousarray(amplitude, np.float32),
        np.ascontiguousarray(harmonic_distribution, np.float32),
        float(sample_rate),
        int(hop_length),
        int(n_samples),
    )


@functools.lru_cache(maxsize=1)
def _blas_threads() -> ThreadpoolController:
    """numpy's BLAS thread pool (found once per process; 6 µs to limit it for one call)."""
    return ThreadpoolController()


@functools.lru_cache(maxsize=8)
def _half_ir_table(n_bands: int) -> np.ndarray:
    """``[n_bands, n_bands]`` matrix ``T`` with ``magnitudes @ T`` = the causal windowed FIR's
    second half (``ir[c + d]`` for ``d = 0..c``, ``c = n_bands - 1``).

    irfft of real magnitudes is an even cosine sum, and the periodic Hann window is symmetric
    about the centre ``c`` the IR is rolled to, so half the taps define the whole filter.
    """
    size = 2 * (n_bands - 1)
    centre = n_bands - 1
    k = np.arange(n_bands)[:, None]
    d = np.arange(n_bands)[None, :]
    weight = np.where((k == 0) | (k == centre), 1.0, 2.0) / size  # irfft's Hermitian weights
    window = 0.5 - 0.5 * np.cos(2 * np.pi * ((centre + d) % size) / size)  # periodic Hann
    return (weight * np.cos(np.pi * k * d / centre) * window).astype(np.float32)


def noise_impulse_responses(magnitudes: np.ndarray) -> np.ndarray:
    """Causal Hann-windowed FIRs ``[..., 2 (n_bands - 1)]`` from magnitudes ``[..., n_bands]``.

    Same design as :func:`.functional.noise_impulse_responses` (for inspection and tests; the
    kernel designs its FIRs frame by frame).
    """
    magnitudes = np.asarray(magnitudes, np.float32)
    half = magnitudes @ _half_ir_table(magnitudes.shape[-1])
    # ir[c - d] = ir[c + d]; ir[0] (d = c) is zero, the window's first tap.
    return np.concatenate([half[..., :0:-1], half[..., :-1]], axis=-1)


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _filtered_noise_kernel(magnitudes, halves, noise, hop_length):  # pragma: no cover
    frames, n_bands = halves.shape
    centre = n_bands - 1
    taps = 2 * centre
    n_samples = noise.shape[0]
    span = taps + _UNROLL - 1  # output reach of one pass: _UNROLL inputs convolved with the FIR
    delay = taps // 2
    out = np.zeros(max(frames * hop_length + taps + _UNROLL, delay + n_samples), np.float32)
    ir = np.empty(taps, np.float32)
    # shifted[u, s] = ir[s - u]: the FIR delayed by u, so one pass sums _UNROLL inputs' outputs
    # with aligned loads only.
    shifted = np.zeros((_UNROLL, span), np.float32)
    x = np.zeros(_UNROLL, np.float32)
    for i in range(frames):
        base = i * hop_length
        if base >= n_samples:
            break
        # A silent frame adds nothing: songs' gaps (where the recorded residual is all zeros)
        # cost only this test.
        if np.max(magnitudes[i]) == 0.0:
            continue
        half = halves[i]
        for d in range(centre):
            ir[centre + d] = half[d]
            ir[centre - d - 1] = half[d + 1]
        for u in range(_UNROLL):
            row = shifted[u]
            for t in range(taps):
                row[u + t] = ir[t]
        stop = min(hop_length, n_samples - base)
        for j0 in range(0, stop, _UNROLL):
            for u in range(_UNROLL):
                x[u] = noise[base + j0 + u] if j0 + u < stop else 0.0
            x0, x1, x2, x3 = x[0], x[1], x[2], x[3]
            x4, x5, x6, x7 = x[4], x[5], x[6], x[7]
            h0, h1, h2, h3 = shifted[0], shifted[1], shifted[2], shifted[3]
            h4, h5, h6, h7 = shifted[4], shifted[5], shifted[6], shifted[7]
            o = out[base + j0 : base + j0 + span]
            for s in range(span):
                o[s] += (
                    x0 * h0[s]
                    + x1 * h1[s]
                    + x2 * h2[s]
                    + x3 * h3[s]
                    + x4 * h4[s]
                    + x5 * h5[s]
                    + x6 * h6[s]
                    + x7 * h7[s]
                )
    # Drop the causal FIR's delay so the noise lines up with the controls (and the torch path).
    return out[delay : delay + n_samples]


def filtered_noise(magnitudes: np.ndarray, noise: np.ndarray, hop_length: int) -> np.ndarray:
    """Time-varying filtered noise for one clip.

    Frame ``i`` filters noise samples ``[i*hop, (i+1)*hop)`` with its FIR (see
    :func:`noise_impulse_responses`); the filtered frames are overlap-added and the FIR's delay
    (``taps // 2``) is dropped.

    Args:
        magnitudes: ``[frames, n_bands]`` linear magnitude response per frame.
        noise: ``[n_samples]`` white noise to filter.
        hop_length: Samples per control frame.

    Returns:
        ``[n_samples]`` float32.
    """
    magnitudes = np.ascontiguousarray(magnitudes, np.float32)
    # Every frame's FIR designed by one matrix product: BLAS does it 5x as fast as a loop in
    # the kernel, which at the recorded residual's 257 bands was two thirds of the time. One
    # BLAS thread: clips are rendered in parallel workers, and a pool of BLAS threads per clip
    # doubled the CPU time spent.
    with _blas_threads().limit(limits=1, user_api="blas"):
        halves = magnitudes @ _half_ir_table(magnitudes.shape[-1])
    return _filtered_noise_kernel(
        magnitudes, halves, np.ascontiguousarray(noise, np.float32), int(hop_length)
    )


def _zero_phase_pieces(n_bands: int, hop_length: int) -> tuple[int, int]:
    """``(lead, pieces)`` of the block FFTs of :func:`.functional.filtered_noise_zero_phase`: a
    frame's filtered block, ``hop + 2 (n_bands - 2)`` samples of zero-phase FIR output, spans
    ``pieces`` hops from ``lead`` hops before the frame's own (its negative times)."""
    reach = n_bands - 2  # h[d] is zero for |d| >= n_bands - 1
    lead = -(-reach // hop_length)
    return lead, lead + -(-(hop_length + reach) // hop_length)


@functools.lru_cache(maxsize=8)
def _zero_phase_response_table(n_bands: int, n_fft: int) -> np.ndarray:
    """``[n_bands, n_fft // 2 + 1]`` float32 ``R`` with ``magnitudes @ R`` = the real spectrum
    of :func:`noise_impulse_responses`' FIR without its delay, on the ``n_fft``-point grid.

    From the FIR's half (``ir[c + d]`` for ``d = 0..c``, ``c = n_bands - 1``, symmetric about
    ``c``): ``H(f) = h[0] + 2 Σ_d h[d] cos(2π f d / n_fft)``, built in float64.
    """
    half = _half_ir_table(n_bands).astype(np.float64)  # [n_bands, n_bands]: k -> h[d]
    d = np.arange(n_bands)[:, None]
    f = np.arange(n_fft // 2 + 1)[None, :]
    cosines = np.where(d == 0, 1.0, 2.0) * np.cos(2 * np.pi * f * d / n_fft)
    return (half @ cosines).astype(np.float32)


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _pool_kernel(magnitudes, slots, factor):  # pragma: no cover
    frames = slots.shape[0]
    bands = magnitudes.shape[1]
    groups = -(-frames // factor)
    out = np.zeros((groups, bands), np.float32)
    for g in range(groups):
        first = g * factor
        last = min(first + factor, frames)
        acc = out[g]
        for i in range(first, last):
            if slots[i] < 0:
                continue  # an all-zero frame adds nothing to the run's power
            row = magnitudes[slots[i]]
            for k in range(bands):
                acc[k] += row[k] * row[k]
        scale = np.float32(1.0 / (last - first))
        for k in range(bands):
            acc[k] = np.sqrt(acc[k] * scale)
    return out


def pool_frames(magnitudes: np.ndarray, factor: int, slots: np.ndarray | None = None) -> np.ndarray:
    """Magnitudes ``[frames, bands]`` → ``[ceil(frames / factor), bands]`` float32: each run of
    ``factor`` frames' RMS (the last run over the frames it has).

    Filtered noise from the pooled frames, at ``factor`` times the hop, carries each run's
    energy per band: white noise of unit power through gain ``g`` has power ``g²``, so the
    power mean of the gains keeps the run's mean power.

    ``slots [frames]`` (int) pools a sparse sequence without building it: frame ``t`` is
    ``magnitudes[slots[t]]``, or all zeros where ``slots[t] < 0``; the result is the same as
    pooling the full sequence.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    magnitudes = np.ascontiguousarray(magnitudes, np.float32)
    if slots is None:
        slots = np.arange(magnitudes.shape[0])
    slots = np.ascontiguousarray(slots, np.int64)
    if slots.ndim != 1 or (slots.size and slots.max() >= magnitudes.shape[0]):
        raise ValueError(
            f"slots must be [frames] of rows of magnitudes [{magnitudes.shape[0]}, bands] or < 0"
        )
    return _pool_kernel(magnitudes, slots, int(factor))


def warp_spectra_db(
    spectra_db: np.ndarray,
    rows: np.ndarray,
    gain_db: np.ndarray,
    ratio: np.ndarray,
    empty_db: float,
) -> np.ndarray:
    """Rows of spectra ``[R, bands]`` in dB (float16 or float32), each stretched along frequency
    and raised → linear magnitudes ``[len(rows), bands]`` float32.

    Output ``i`` is ``spectra_db[rows[i]]`` stretched by ``ratio[i]`` (band ``k`` reads the
    input at ``k / ratio[i]``, linearly between bands; ``empty_db`` beyond the top band) and
    raised by ``gain_db[i]``. The rows are read in place, float16 ones widened exactly as they
    are read: a song reuses a few source frames many times, and gathering and widening them
    first copied a megabyte per 3 s clip (widening a species' whole table once instead would
    double the memory its residual holds).
    """
    rows = np.ascontiguousarray(rows, np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= np.shape(spectra_db)[0]):
        raise ValueError(f"rows must index spectra_db's {np.shape(spectra_db)[0]} frames")
    spectra_db = np.asarray(spectra_db)
    if spectra_db.dtype == np.float16:
        # numba has no float16: the kernel reads the bits and looks their value up.
        spectra, half = np.ascontiguousarray(spectra_db).view(np.uint16), _half_table()
    else:
        spectra, half = np.ascontiguousarray(spectra_db, np.float32), None
    levels = _warp_kernel(
        spectra,
        half,
        rows,
        np.ascontiguousarray(gain_db, np.float32),
        np.ascontiguousarray(ratio, np.float32),
        np.float32(empty_db),
    )
    # dB to linear by numpy's vectorised exp: 8x a scalar exp per band in the kernel.
    levels *= np.float32(math.log(10.0) / 20.0)
    return np.exp(levels, out=levels)


@functools.cache
def _half_table() -> np.ndarray:
    """The float32 value of every float16 bit pattern ``[65536]`` (exact: float32 holds them)."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _warp_kernel(spectra, half, rows, gain_db, ratio, empty_db):  # pragma: no cover
    bands = spectra.shape[1]
    last = bands - 1
    out = np.empty((rows.shape[0], bands), np.float32)
    row = np.empty(bands, np.float32)
    for i in range(rows.shape[0]):
        step = np.float32(1.0) / ratio[i]
        gain = gain_db[i]
        source = spectra[rows[i]]
        if half is None:  # pruned when compiled for float32 input (one kernel per input type)
            row[:] = source
        else:
            for k in range(bands):
                row[k] = half[source[k]]
        line = out[i]
        # Positions grow with k: read the source up to its top band, then fill the rest.
        k = 0
        while k < bands:
            position = k * step
            if position > last:
                break
            low = int(position)
            if low < last:
                line[k] = row[low] + (position - low) * (row[low + 1] - row[low]) + gain
            else:
                line[k] = row[last] + gain
            k += 1
        for j in range(k, bands):
            line[j] = empty_db + gain
    return out


def convolution_size(n: int, m: int) -> int:
    """FFT size for the linear convolution of ``n`` and ``m`` samples (fast for scipy)."""
    return sfft.next_fast_len(n + m - 1, real=True)


def rfft(signal: np.ndarray, size: int) -> np.ndarray:
    """``scipy.fft.rfft`` on one thread (callers run in parallel workers)."""
    return sfft.rfft(signal, size, workers=1)


def fft_convolve(audio: np.ndarray, ir_spectrum: np.ndarray, size: int) -> np.ndarray:
    """Linear convolution ``audio [n] * ir`` → ``[n]`` float32 (tail dropped), given the IR's
    spectrum ``rfft(ir, size)`` with ``size >= convolution_size(n, len(ir))``: a fixed IR
    convolved with many clips is transformed once."""
    n = audio.shape[0]
    spectrum = rfft(audio, size)
    spectrum *= ir_spectrum
    return sfft.irfft(spectrum, size, workers=1)[:n].astype(np.float32)


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _matmul_bias(x, weight, bias, out):  # pragma: no cover
    """``out = x @ weight + bias`` for ``x [T, I]``, ``weight [I, O]``, by BLAS in row blocks
    of at most ``_BLAS_BLOCK`` multiply-adds, which BLAS runs on the calling thread."""
    frames = x.shape[0]
    rows = max(1, _BLAS_BLOCK // (weight.shape[0] * weight.shape[1]))
    for t0 in range(0, frames, rows):
        t1 = min(t0 + rows, frames)
        np.dot(x[t0:t1], weight, out[t0:t1])
    out += bias


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _separable_stack_kernel(
    x, in_w, in_b, dw_w, dw_b, pw_w, pw_b, out_w, out_b, slope
):  # pragma: no cover
    frames = x.shape[0]
    n_layers, kernel, channels = dw_w.shape
    half = kernel // 2
    hidden = np.empty((frames, channels), np.float32)
    _matmul_bias(x, in_w, in_b, hidden)
    depthwise = np.empty((frames, channels), np.float32)
    pointwise = np.empty((frames, channels), np.float32)
    for layer in range(n_layers):
        dilation = 1 << layer
        # 2-D indexing, no row views: a view per frame and tap cost more than the arithmetic.
        for t in range(frames):
            for c in range(channels):
                depthwise[t, c] = dw_b[layer, c]
            for j in range(kernel):
                source = t + (j - half) * dilation
                # Zero padding: taps reaching before the first or past the last frame add nothing.
                if 0 <= source < frames:
                    for c in range(channels):
                        depthwise[t, c] += dw_w[layer, j, c] * hidden[source, c]
        # A contiguous copy (16 kB): numba types pw_w[layer] as any-layout, which np.dot
        # would multiply by loops instead of BLAS.
        _matmul_bias(depthwise, np.ascontiguousarray(pw_w[layer]), pw_b[layer], pointwise)
        for t in range(frames):
            for c in range(channels):
                v = pointwise[t, c]
                hidden[t, c] += v if v >= 0 else slope * v
    out = np.empty((frames, out_w.shape[1]), np.float32)
    _matmul_bias(hidden, out_w, out_b, out)
    return out


def separable_conv_stack(
    x: np.ndarray,
    input_weight: np.ndarray,
    input_bias: np.ndarray,
    depthwise_weight: np.ndarray,
    depthwise_bias: np.ndarray,
    pointwise_weight: np.ndarray,
    pointwise_bias: np.ndarray,
    output_weight: np.ndarray,
    output_bias: np.ndarray,
    negative_slope: float = 0.1,
) -> np.ndarray:
    """1×1 conv in, residual depthwise-separable dilated convs, 1×1 conv out, for one sequence.

    Layer ``l`` is ``h + leaky_relu(pointwise_l(depthwise_l(h)))`` with dilation ``2**l`` and
    zero "same" padding, as ``torch.nn.Conv1d`` computes it (cross-correlation).

    Args:
        x: ``[frames, in_channels]`` input (frames-major, unlike torch's ``[channels, frames]``).
        input_weight: ``[in_channels, channels]`` (torch's ``[channels, in_channels, 1]``
            transposed); ``input_bias [channels]``.
        depthwise_weight: ``[layers, channels, kernel]`` (torch's ``[channels, 1, kernel]``
            per layer; odd kernel); ``depthwise_bias [layers, channels]``.
        pointwise_weight: ``[layers, channels_in, channels_out]``; ``pointwise_bias
            [layers, channels]``.
        output_weight: ``[channels, out_channels]``; ``output_bias [out_channels]``.
        negative_slope: Leaky ReLU slope.

    Returns:
        ``[frames, out_channels]`` float32.
    """
    f32 = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    if depthwise_weight.shape[-1] % 2 != 1:
        raise ValueError(f"depthwise kernel must be odd, got {depthwise_weight.shape[-1]}")
    return _separable_stack_kernel(
        f32(x),
        f32(input_weight),
        f32(input_bias),
        # [layers, kernel, channels]: each tap's weights contiguous over channels.
        f32(np.swapaxes(depthwise_weight, 1, 2)),
        f32(depthwise_bias),
        f32(pointwise_weight),
        f32(pointwise_bias),
        f32(output_weight),
        f32(output_bias),
        np.float32(negative_slope),
    )


def exp_sigmoid(
    x: np.ndarray,
    exponent: float = 10.0,
    max_value: float = 2.0,
    threshold: float = 1e-7,
    columns: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`.functional.exp_sigmoid` on a float32 array ``[..., n]``.

    As ``max · exp(-log(exponent) · log1p(e^-x)) + threshold``, in numpy's vectorised float32
    ``exp``/``log1p``: 6× faster than the same maths in a numba loop, where each call goes to
    the scalar libm. ``columns`` (ints, shape ``x.shape[:-1]``) keeps only each row's first
    ``columns`` values and zeroes the rest (harmonics above Nyquist, which no synthesiser
    reads).
    """
    x = np.asarray(x, np.float32)
    if columns is not None and np.shape(columns) != x.shape[:-1]:
        raise ValueError(f"columns must have shape {x.shape[:-1]}, got {np.shape(columns)}")
    # e^-x = inf below x = -88: the output is then exactly the threshold.
    with np.errstate(over="ignore"):
        out = np.exp(-x)
    np.log1p(out, out=out)
    out *= np.float32(-math.log(exponent))
    np.exp(out, out=out)
    out *= np.float32(max_value)
    out += np.float32(threshold)
    if columns is not None:
        out *= np.arange(x.shape[-1]) < np.asarray(columns)[..., None]
    return out
