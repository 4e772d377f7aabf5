"""Differentiable DSP in torch: the synthesis maths, as pure batched functions.

Frame grid: control frame ``i`` sits at sample ``i * hop_length``; controls are linearly
interpolated between frame centres and held after the last one.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as tnf
from torch import Tensor

from .numba_kernels import _zero_phase_pieces, _zero_phase_response_table

# harmonic_synth_recurrent: segments (hops) per sorted row, and samples per block of rows.
_HARMONIC_ROW_SEGMENTS = 4
# On a CPU: samples per block of rows (CPU cache); on a GPU all rows at once (fewer launches).
_HARMONIC_BLOCK = 2**16
# filtered_noise_zero_phase on a CPU: FFT buffer floats per chunk of frames (a GPU takes all).
_NOISE_BLOCK = 2**18
# ... shared by this many clips (the bank's CPU batch).
_NOISE_ROWS = 16
# griffin_lim_noise on a CPU: one clip at a time (its spectra stay in cache: 28 ms a 3 s clip
# at 8 iterations against 35 ms four at a time; and the complex sign is not batch-invariant).
_GRIFFIN_LIM_ROWS = 1
# Fast Griffin-Lim's momentum (Perraudin et al. 2013 propose 0.99), as the step its update takes
# back along the previous projection.
_GRIFFIN_LIM_MOMENTUM = 0.99
_MOMENTUM_STEP = _GRIFFIN_LIM_MOMENTUM / (1 + _GRIFFIN_LIM_MOMENTUM)

__all__ = [
    "exp_decay_ir",
    "exp_sigmoid",
    "exp_sigmoid_log1p",
    "fft_convolve",
    "filtered_noise",
    "filtered_noise_zero_phase",
    "griffin_lim_noise",
    "harmonic_synth",
    "harmonic_synth_recurrent",
    "noise_impulse_responses",
    "remove_above_nyquist",
    "separable_conv_stack",
    "upsample_linear",
]


def exp_sigmoid(
    x: Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7
) -> Tensor:
    """DDSP's scaled sigmoid ``max_value * sigmoid(x) ** log(exponent) + threshold``.

    Amplitudes span orders of magnitude; a plain sigmoid compresses them into its linear middle.
    The threshold keeps outputs (and log-magnitudes of them) away from zero.
    """
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def exp_sigmoid_log1p(
    x: Tensor,
    exponent: float = 10.0,
    max_value: float | Tensor = 2.0,
    threshold: float = 1e-7,
    out: Tensor | None = None,
) -> Tensor:
    """:func:`exp_sigmoid` for generation, as ``max_value · exp(-log(exponent) · log1p(e^-x))
    + threshold`` (how :func:`.numba_kernels.exp_sigmoid` computes it): equal within float32
    rounding, 1.6× faster on a CPU than ``pow``. Training keeps :func:`exp_sigmoid`, whose
    rounding the pinned trained weights depend on. ``max_value`` may be a tensor broadcasting
    against ``x`` (e.g. one per column); ``out``, a tensor of ``x``'s shape, receives the result
    (it may be ``x`` itself)."""
    # e^-x = inf below x = -88: log1p(inf) = inf, and the output exactly the threshold.
    out = torch.neg(x, out=out).exp_().log1p_().mul_(-math.log(exponent)).exp_()
    return out.mul_(max_value).add_(threshold)


def upsample_linear(x: Tensor, hop_length: int, n_samples: int) -> Tensor:
    """Interpolate frame-rate ``x [batch, frames, ...]`` to ``[batch, n_samples, ...]``.

    Sample ``s`` sits at frame position ``s / hop_length``, clamped to the last frame.
    """
    batch, frames, rest = x.shape[0], x.shape[1], x.shape[2:]
    # Each hop of samples between two frames is one broadcast product, not a gather: a
    # gather's backward scatters with atomic adds on CUDA, whose order (and so rounding)
    # changes from run to run. Same values forward; on a CPU ~1.5x faster forward and
    # backward for a training batch's harmonic amplitudes.
    frac = torch.arange(hop_length, device=x.device, dtype=torch.float64) / hop_length
    frac = frac.to(x.dtype).view(1, 1, hop_length, *([1] * len(rest)))
    between = x[:, :-1, None] * (1 - frac) + x[:, 1:, None] * frac
    between = between.reshape(batch, (frames - 1) * hop_length, *rest)[:, :n_samples]
    held = x[:, -1:].expand(batch, n_samples - between.shape[1], *rest)
    return torch.cat([between, held], 1)


def remove_above_nyquist(harmonic_distribution: Tensor, f0_hz: Tensor, sample_rate: int) -> Tensor:
    """Zero harmonics at or above Nyquist and renormalise ``[batch, frames, n_harmonics]`` to sum 1.

    A 3 kHz song at 32 kHz has only five harmonics below Nyquist; renormalising keeps the overall
    amplitude (the loudness the decoder was asked for) instead of losing the masked share.
    """
    n = harmonic_distribution.shape[-1]
    ks = torch.arange(1, n + 1, device=f0_hz.device, dtype=f0_hz.dtype)
    keep = (f0_hz[..., None] * ks < sample_rate / 2).to(harmonic_distribution.dtype)
    masked = harmonic_distribution * keep
    return masked / masked.sum(-1, keepdim=True).clamp_min(1e-7)


def _harmonic_amplitudes_and_phase(
    f0_hz: Tensor,
    amplitude: Tensor,
    harmonic_distribution: Tensor,
    sample_rate: int,
    hop_length: int,
    n_samples: int,
) -> tuple[Tensor, Tensor]:
    """What both oscillator banks start from: the amplitudes of the harmonics that sound in some
    frame ``[batch, frames, n_active]`` and the fundamental's phase ``[batch, n_samples]``
    (float64, wrapped to ``[0, 2π)``)."""
    distribution = remove_above_nyquist(harmonic_distribution, f0_hz, sample_rate)
    # Harmonics masked in every frame are exactly zero: skip them (a 3 kHz song keeps 5 of 64).
    # The kept harmonics are a prefix in each frame, and the lowest F0 keeps the longest one.
    ks = torch.arange(1, distribution.shape[-1] + 1, device=f0_hz.device, dtype=f0_hz.dtype)
    n_active = int((f0_hz.min() * ks < sample_rate / 2).sum())
    harmonic_amps = distribution[..., :n_active] * amplitude[..., None]
    # float64 phase: a float32 cumsum over minutes drifts by audible fractions of a cycle.
    f0 = upsample_linear(f0_hz.to(torch.float64)[..., None], hop_length, n_samples)[..., 0]
    phase = torch.remainder(torch.cumsum(2 * math.pi * f0 / sample_rate, dim=1), 2 * math.pi)
    return harmonic_amps, phase


def harmonic_synth(
    f0_hz: Tensor,
    amplitude: Tensor,
    harmonic_distribution: Tensor,
    sample_rate: int,
    hop_length: int,
    n_samples: int,
) -> Tensor:
    """Additive oscillator bank.

    The distribution is masked at Nyquist and renormalised at frame rate (before upsampling), F0
    and the harmonic amplitudes are interpolated linearly to audio rate, and the phase is the
    float64 cumulative sum of ``2π f0 / sample_rate``, wrapped to ``[0, 2π)``.

    Args:
        f0_hz: ``[batch, frames]`` fundamental frequency in Hz (finite, > 0).
        amplitude: ``[batch, frames]`` overall amplitude.
        harmonic_distribution: ``[batch, frames, n_harmonics]`` relative harmonic amplitudes.
        sample_rate: Audio rate in Hz.
        hop_length: Samples per control frame.
        n_samples: Output length.

    Returns:
        ``[batch, n_samples]`` audio (dtype of ``amplitude``).
    """
    harmonic_amps, phase = _harmonic_amplitudes_and_phase(
        f0_hz, amplitude, harmonic_distribution, sample_rate, hop_length, n_samples
    )
    amps = upsample_linear(harmonic_amps, hop_length, n_samples)
    ks = torch.arange(1, harmonic_amps.shape[-1] + 1, device=phase.device, dtype=torch.float64)
    # k·phase is wrapped again so sin() sees small arguments, exact in float32.
    partials = torch.sin(torch.remainder(phase[..., None] * ks, 2 * math.pi).to(amps.dtype))
    return (partials * amps).sum(-1)


def noise_impulse_responses(magnitudes: Tensor) -> Tensor:
    """Frequency-sampling FIR design: ``[..., n_bands]`` magnitudes → ``[..., 2 (n_bands - 1)]``.

    Zero-phase impulse response (irfft of real magnitudes), rotated to causal (centre at tap
    ``n_bands - 1``) and Hann-windowed so the truncation does not ring. The periodic Hann window
    is symmetric about that centre, so the filter stays exactly linear-phase.
    """
    ir = torch.fft.irfft(torch.complex(magnitudes, torch.zeros_like(magnitudes)))
    size = ir.shape[-1]
    ir = torch.roll(ir, size // 2, dims=-1)
    return ir * torch.hann_window(size, periodic=True, device=ir.device, dtype=ir.dtype)


def filtered_noise(magnitudes: Tensor, noise: Tensor, hop_length: int) -> Tensor:
    """Time-varying filtered noise.

    Frame ``i`` filters the noise samples ``[i*hop, (i+1)*hop)`` with its own FIR (from
    ``magnitudes[:, i]``, see :func:`noise_impulse_responses`); the filtered frames are
    overlap-added into ``frames * hop + taps - 1`` samples, the FIR's delay (``taps // 2``) is
    dropped and the result is cut or zero-padded to the noise length.

    Args:
        magnitudes: ``[batch, frames, n_bands]`` linear magnitude response per frame.
        noise: ``[batch, n_samples]`` white noise to filter (passed in so that every backend can
            be fed the same noise).
        hop_length: Samples per control frame.

    Returns:
        ``[batch, n_samples]``.
    """
    batch, frames, _ = magnitudes.shape
    n_samples = noise.shape[-1]
    ir = noise_impulse_responses(magnitudes)  # [batch, frames, taps]
    taps = ir.shape[-1]
    padded = tnf.pad(noise, (0, max(0, frames * hop_length - n_samples)))[:, : frames * hop_length]
    blocks = padded.reshape(batch, frames, hop_length)
    span = hop_length + taps - 1
    n_fft = 1 << (span - 1).bit_length()
    filtered = torch.fft.irfft(torch.fft.rfft(blocks, n_fft) * torch.fft.rfft(ir, n_fft), n_fft)
    # Overlap-add: frame i starts at i*hop; fold() sums the overlapping tails.
    length = (frames - 1) * hop_length + span
    out = tnf.fold(
        filtered[..., :span].transpose(1, 2),
        output_size=(1, length),
        kernel_size=(1, span),
        stride=(1, hop_length),
    ).reshape(batch, length)
    # The causal FIR delays by taps//2: drop it so the noise lines up with the controls.
    delay = taps // 2
    out = out[:, delay : delay + n_samples]
    return tnf.pad(out, (0, n_samples - out.shape[-1]))


def fft_convolve(audio: Tensor, impulse_response: Tensor) -> Tensor:
    """Linear convolution ``audio [batch, n] * impulse_response [batch or 1, m]`` → ``[batch, n]``.

    The tail past ``n`` samples is dropped (a reverb's ring-out after the clip ends).
    """
    n = audio.shape[-1]
    m = impulse_response.shape[-1]
    n_fft = 1 << (n + m - 2).bit_length()
    spectrum = torch.fft.rfft(audio, n_fft) * torch.fft.rfft(impulse_response, n_fft)
    return torch.fft.irfft(spectrum, n_fft)[..., :n]


def exp_decay_ir(decay_s: Tensor | float, length: int, sample_rate: int, noise: Tensor) -> Tensor:
    """Exponentially decaying noise burst ``[batch or 1, length]``; ``decay_s`` is the RT60.

    Energy falls by 60 dB over ``decay_s`` seconds: amplitude ``exp(-ln(1000) t / decay_s)``.

    Args:
        decay_s: RT60 in seconds, a float or a tensor of ``batch`` values.
        length: IR length in samples.
        sample_rate: Audio rate in Hz.
        noise: ``[batch or 1, >= length]`` noise to shape.
    """
    t = torch.arange(length, device=noise.device, dtype=noise.dtype) / sample_rate
    decay = torch.as_tensor(decay_s, device=noise.device, dtype=noise.dtype).reshape(-1, 1)
    return noise[..., :length] * torch.exp(-math.log(1000.0) * t / decay)


def harmonic_synth_recurrent(
    f0_hz: Tensor,
    amplitude: Tensor,
    harmonic_distribution: Tensor,
    sample_rate: int,
    hop_length: int,
    n_samples: int,
) -> Tensor:
    """:func:`harmonic_synth` for generation: same arguments and output within float32 rounding
    (≤ 1e-5 of the peak for 32 harmonics), a fraction of its memory and time.

    * Phase: F0 is linear between frames, so within segment ``i`` (samples ``i·hop + j``) the
      cumulative phase is ``Φ_i + (j+1)·ω_i + j(j+1)/2·δ_i`` in closed form; only the segment
      starts ``Φ_i`` are summed (float64, as the reference's sample-by-sample sum).
    * Harmonic ``k + 1`` comes from the two below it by the Chebyshev recurrence
      ``sin((k+1)φ) = 2 cos φ sin(kφ) − sin((k−1)φ)`` (errors grow at most linearly in ``k``),
      and each amplitude is ``a + slope·j`` within a segment: frame-rate values broadcast over
      the segment's samples, never upsampled per harmonic.
    * Work follows the harmonics that sound: the clips are cut into rows of
      ``_HARMONIC_ROW_SEGMENTS`` segments, rows are sorted by how many harmonics sound in them
      (below Nyquist in either frame of a segment: exactly the nonzero ones), and harmonic ``k``
      runs on the prefix of rows that have it. A 2-5 kHz song at 32 kHz computes 3-8 harmonics
      a sample instead of the 16 its lowest frame might need. Rows go in blocks of about
      ``_HARMONIC_BLOCK`` samples on a CPU, so the recurrence's tensors stay in cache (a GPU
      takes them all at once).
    """
    batch, frames, n_harmonics = harmonic_distribution.shape
    hop = hop_length
    dtype, device = amplitude.dtype, amplitude.device
    ks = torch.arange(1, n_harmonics + 1, device=device, dtype=f0_hz.dtype)
    # The lowest F0 sounds the most harmonics.
    n_top = int((f0_hz.min() * ks < sample_rate / 2).sum())
    if n_top == 0:  # F0 at or above Nyquist throughout: silence
        return amplitude.new_zeros(batch, n_samples)
    sounding = f0_hz[..., None] * ks[:n_top] < sample_rate / 2  # [batch, frames, n_top]: a prefix
    top = sounding.sum(-1)  # [batch, frames]
    # Masked in every frame: exactly zero, never computed. The rest masked at Nyquist and
    # renormalised (remove_above_nyquist), times the amplitude as the numba kernel scales it.
    masked = harmonic_distribution[..., :n_top] * sounding
    scale = amplitude / masked.sum(-1).clamp_min(1e-7)
    amps = masked.mul_(scale[..., None]).view(batch * frames, n_top)
    # Segment s runs from frame min(s, F-1) towards min(s+1, F-1) (held past the last frame);
    # padded to whole rows with held segments, cut off at the end.
    per_row = _HARMONIC_ROW_SEGMENTS
    rows_per_clip = -(-n_samples // (hop * per_row))
    n_rows = batch * rows_per_clip
    index = torch.arange(rows_per_clip * per_row, device=device)
    left, right = index.clamp(max=frames - 1), (index + 1).clamp(max=frames - 1)
    row_top = torch.maximum(top[:, left], top[:, right]).view(n_rows, per_row).amax(-1)
    order = torch.argsort(row_top, descending=True, stable=True)
    row_top = row_top[order]
    # Phase in turns (cycles): at each segment's start the reference's float64 sum, a segment
    # at a time; sample j of a segment adds (j+1)·step + j(j+1)/2·chirp, so a block's phases
    # are one float64 product [segments, 3] @ [3, hop].
    rate = f0_hz.to(torch.float64) / sample_rate  # turns per sample
    step = rate[:, left]
    chirp_rate = (rate[:, right] - step) / hop
    advance = hop * step + hop * (hop - 1) / 2 * chirp_rate
    start = torch.frac(torch.cumsum(advance, 1) - advance)
    coefficients = torch.stack([start, step, chirp_rate], -1).view(n_rows, per_row, 3)
    coefficients = coefficients.index_select(0, order).view(n_rows * per_row, 3)
    j = torch.arange(hop, device=device, dtype=torch.float64)
    powers = torch.stack([torch.ones_like(j), j + 1, j * (j + 1) / 2])
    # The frames of the sorted rows' segments, as rows of `amps`.
    segment = (order % rows_per_clip)[:, None] * per_row + torch.arange(per_row, device=device)
    base = torch.div(order, rows_per_clip, rounding_mode="floor")[:, None] * frames
    a_left = amps.index_select(0, (base + left[segment]).flatten())
    slope = (amps.index_select(0, (base + right[segment]).flatten()) - a_left) / hop
    # The recurrence below keeps c_k sin(kφ) with c_k = 1, 1/2, -1, -1/2, 1, ... (k = 1, 2,
    # ...; exact powers of two), which makes every step one in-place multiply-add (c_{k+1} =
    # -c_{k-1}, factor 2 c_{k+1} / c_k = -4 or 1) and starts it from cos φ · sin φ; the
    # amplitudes carry the 1 / c_k.
    scales = torch.tensor([1.0, 2.0, -1.0, -2.0], device=device, dtype=dtype)
    scales = scales.repeat(n_top // 4 + 1)[:n_top, None]
    # [harmonics, rows, per_row, 1]: harmonic k's frame-rate values, contiguous.
    a_left = (a_left.T * scales).reshape(n_top, n_rows, per_row, 1)
    slope = (slope.T * scales).reshape(n_top, n_rows, per_row, 1)
    ramp = j.to(dtype)
    out = torch.empty(n_rows, per_row * hop, device=device, dtype=dtype)
    block = max(1, _HARMONIC_BLOCK // (per_row * hop)) if device.type == "cpu" else n_rows
    counts = (row_top[None, :] > torch.arange(n_top, device=device)[:, None]).sum(1).tolist()
    # One set of buffers for every block (the last one uses a prefix): they stay in cache.
    work = torch.empty(5, min(block, n_rows), per_row, hop, device=device, dtype=dtype)
    wrapped = torch.empty(min(block, n_rows) * per_row, hop, device=device, dtype=torch.float64)
    for first in range(0, n_rows, block):
        size = min(block, n_rows - first)
        level, rise, cos, current, below = work[:, :size]
        # Rows that sound harmonic k: a prefix of the (descending) sorted rows.
        active = [min(max(c - first, 0), size) for c in counts]
        segments = slice(first * per_row, (first + size) * per_row)
        turns = torch.mm(coefficients[segments], powers, out=wrapped[: size * per_row])
        # Wrapped and in radians in float64, then rounded once.
        phase = level.copy_(turns.view(size, per_row, hop).frac_().mul_(2 * math.pi))
        torch.sin(phase, out=below)
        pairs = active[1] if n_top > 1 else 0  # rows with a second harmonic need cos φ
        torch.cos(phase[:pairs], out=cos[:pairs])
        # Started by the fundamental (rows without one, at or above Nyquist, stay silent).
        torch.mul(a_left[0, first : first + size], below, out=level)
        torch.mul(slope[0, first : first + size], below, out=rise)
        if active[0] < size:
            level[active[0] :], rise[active[0] :] = 0.0, 0.0
        torch.mul(cos[:pairs], below[:pairs], out=current[:pairs])  # sin 2φ / 2
        for k, m in enumerate(active[1:], start=1):
            if m == 0:
                break
            level[:m].addcmul_(a_left[k, first : first + m], current[:m])
            rise[:m].addcmul_(slope[k, first : first + m], current[:m])
            # c_{h+1} sin((h+1)φ) = c_{h-1} sin((h-1)φ) + factor · cos φ · c_h sin(hφ) (h = k
            # + 1), written over the no longer needed lower harmonic, for the rows that sound
            # the next harmonic.
            rows = active[k + 1] if k + 1 < n_top else 0
            if rows:
                below[:rows].addcmul_(cos[:rows], current[:rows], value=-4.0 if k % 2 else 1.0)
            current, below = below, current
        # Back to clip order: whole rows copied to where they belong.
        out.index_copy_(0, order[first : first + size], level.addcmul_(rise, ramp).view(size, -1))
    return out.view(batch, -1)[:, :n_samples]


def filtered_noise_zero_phase(magnitudes: Tensor, noise: Tensor, hop_length: int) -> Tensor:
    """:func:`filtered_noise`, computed for generation: same arguments and output within float32
    rounding, a third of its time.

    The causal FIR followed by dropping its ``taps // 2`` delay is the zero-phase FIR ``h``
    (real, even, ``|d| < n_bands - 1`` taps): its spectrum on an ``L·hop``-point grid is real
    and linear in the magnitudes, one matrix product (:func:`_response_table`), which
    replaces designing each frame's FIR and transforming it. Each frame's noise block times that
    response goes back by a circular inverse FFT just long enough to hold the filtered block
    with its negative-time lead, and the ``L`` hop-long pieces are added into the output frames
    they cover (no ``fold``).

    Args and returns: as :func:`filtered_noise`.
    """
    batch, frames, n_bands = magnitudes.shape
    n_samples = noise.shape[-1]
    hop = hop_length
    lead, pieces = _zero_phase_pieces(n_bands, hop)  # hop blocks before the frame's own, all
    n_fft = pieces * hop
    table = _response_table(n_bands, n_fft).to(magnitudes)
    # Frames whose hop of noise is all there are views of it; the rest (at most the last few)
    # are zero-padded copies.
    whole = min(frames, n_samples // hop)
    # Piece p of frame i holds times (p·hop .. p·hop + hop) mod n_fft relative to the frame's
    # start: pieces from ``pieces - lead`` on are the wrapped negative times. Output block o
    # sums the pieces that land on it (the last frame's tail rings past the frames).
    shifts = [p if p < pieces - lead else p - pieces for p in range(pieces)]
    # Each block's first writer is the piece landing furthest ahead, which sets it (no earlier
    # frame reaches it): only the blocks before it reaches need zeros.
    ahead = pieces - lead - 1
    out = torch.empty(batch, frames + ahead, hop, device=noise.device, dtype=noise.dtype)
    out[:, :ahead] = 0.0
    # Frames a chunk at a time: the FFT buffers stay in cache (whole clips: 20 % slower). The
    # chunk does not depend on the batch: pieces added across a chunk boundary are summed in
    # another order, and a clip must come out bit for bit the same in any batch.
    chunk = max(1, _NOISE_BLOCK // (_NOISE_ROWS * n_fft)) if noise.device.type == "cpu" else frames
    # Each chunk's blocks are zero-padded to n_fft in one buffer whose tail stays zero: a pad
    # per chunk, or rfft's own padding (its ``n`` argument), costs more on a CPU.
    padded = noise.new_zeros(batch, min(chunk, frames), n_fft)
    for first in range(0, frames, chunk):
        last = min(frames, first + chunk)
        blocks = padded[:, : last - first]
        ready = min(max(first, whole), last)  # frames first..ready have all their noise
        if ready > first:
            blocks[:, : ready - first, :hop] = noise[:, first * hop : ready * hop].unflatten(
                -1, (-1, hop)
            )
        if last > ready:  # the noise's end: what is left of it, zero-padded
            tail = noise[:, ready * hop : last * hop]
            tail = tnf.pad(tail, (0, (last - ready) * hop - tail.shape[-1]))
            blocks[:, ready - first :, :hop] = tail.unflatten(-1, (-1, hop))
        spectrum = torch.fft.rfft(blocks)
        # The response is real (the filter is zero-phase). Complex times real: twice as fast
        # on a CPU as the real pairs of view_as_real times a broadcast response.
        spectrum *= magnitudes[:, first:last] @ table
        filtered = torch.fft.irfft(spectrum, n_fft).view(batch, last - first, pieces, hop)
        out[:, first + ahead : last + ahead] = filtered[:, :, ahead]
        for p, shift in enumerate(shifts):
            start = max(first + shift, 0)
            if p != ahead and last + shift > start:  # lands before the first block: dropped
                out[:, start : last + shift] += filtered[:, start - shift - first :, p]
    out = out.view(batch, -1)[:, :n_samples]
    if out.shape[-1] < n_samples:  # pad copies even when it adds nothing
        out = tnf.pad(out, (0, n_samples - out.shape[-1]))
    return out


def griffin_lim_noise(magnitudes: Tensor, noise: Tensor, hop_length: int, n_iter: int) -> Tensor:
    """Noise with a spectrogram's magnitudes, its phase made consistent by fast Griffin-Lim.

    ``magnitudes [batch, frames, bins]`` are filtered-noise gains (white noise of unit variance
    through gain 1 keeps unit variance, as in :func:`filtered_noise`) on an STFT grid: Hann
    window of ``n_fft = 2 (bins - 1)`` samples, frame ``i`` centred on sample ``i * hop_length``
    (zeros outside the signal), ``n_fft`` a multiple of ``hop_length`` (4: 75 % overlap, what
    Griffin-Lim needs to converge). Missing frames are silent, surplus ones ignored.

    The phase starts as ``noise [batch, n_samples]``'s own (so the seed of the noise fixes the
    output), and ``n_iter`` iterations of fast Griffin-Lim (Perraudin, Balazs & Sondergaard
    2013: each a projection on consistent spectrograms, then on the magnitudes, with momentum)
    make it one a signal can have. With ``n_iter = 0`` the magnitudes keep the noise's random
    phase, which no signal has: overlapping frames partly cancel (unit gains come out 0.6 dB
    low, a test call 1.4 dB) and the pulses and periodicity within a band, which a harsh call
    carries, are smeared. Every clip is computed on its own, so it comes out bit for bit the
    same in any batch.

    Returns:
        ``[batch, n_samples]``.
    """
    if magnitudes.ndim != 3 or noise.ndim != 2 or magnitudes.shape[0] != noise.shape[0]:
        raise ValueError(
            "griffin_lim_noise needs magnitudes [batch, frames, bins] and noise [batch, "
            f"n_samples] of one batch, got {tuple(magnitudes.shape)} and {tuple(noise.shape)}"
        )
    batch, _, bins = magnitudes.shape
    n_fft = 2 * (bins - 1)
    if hop_length < 1 or n_fft % hop_length:
        raise ValueError(f"hop_length must divide n_fft={n_fft}, got {hop_length}")
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    n_samples = noise.shape[-1]
    frames = n_samples // hop_length + 1
    window = torch.hann_window(n_fft, device=noise.device, dtype=noise.dtype)
    # A Hann-windowed frame of unit white noise reads sqrt(sum(w^2)) per bin.
    scale = float(window.pow(2).sum().sqrt())
    target = magnitudes[:, :frames] * scale
    if target.shape[1] < frames:
        target = tnf.pad(target, (0, 0, 0, frames - target.shape[1]))
    # The overlap-added squared window, to divide out (constant away from the ends).
    envelope = _overlap_add(window.pow(2).expand(1, frames, n_fft), hop_length, n_samples)
    envelope.clamp_(min=1e-8)

    def signal(spectrum: Tensor) -> Tensor:
        frames_audio = torch.fft.irfft(spectrum, n_fft) * window
        return _overlap_add(frames_audio, hop_length, n_samples) / envelope

    def analyse(audio: Tensor) -> Tensor:
        padded = tnf.pad(audio, (n_fft // 2, n_fft // 2))
        return torch.fft.rfft(padded.unfold(-1, n_fft, hop_length) * window)

    rows = _GRIFFIN_LIM_ROWS if noise.device.type == "cpu" else batch
    out = torch.empty_like(noise)
    for first in range(0, batch, rows):
        part = slice(first, first + rows)
        magnitude = target[part]
        phase = torch.sgn(analyse(noise[part]))
        previous = torch.zeros_like(phase)
        for _ in range(n_iter):
            rebuilt = analyse(signal(magnitude * phase))
            # The rebuilt spectrum is exactly zero only where the magnitudes are zero all
            # around, where the phase (sgn(0) = 0) makes no difference.
            phase = torch.sgn(torch.sub(rebuilt, previous, alpha=_MOMENTUM_STEP))
            previous = rebuilt
        out[part] = signal(magnitude * phase)
    return out


def _overlap_add(frames: Tensor, hop_length: int, n_samples: int) -> Tensor:
    """Frames ``[batch, n, n_fft]`` centred on samples ``i * hop_length`` → their sum
    ``[batch, n_samples]`` (the inverse of centred, zero-padded framing)."""
    batch, count, n_fft = frames.shape
    overlap = n_fft // hop_length
    out = frames.new_zeros(batch, count + overlap - 1, hop_length)
    pieces = frames.view(batch, count, overlap, hop_length)
    for k in range(overlap):
        out[:, k : k + count] += pieces[:, :, k]
    start = n_fft // 2
    return out.view(batch, -1)[:, start : start + n_samples]


@functools.lru_cache(maxsize=8)
def _response_table(n_bands: int, n_fft: int) -> Tensor:
    """``numba_kernels._zero_phase_response_table`` as a tensor (built once per size)."""
    return torch.from_numpy(_zero_phase_response_table(n_bands, n_fft))


def separable_conv_stack(
    x: Tensor,
    input_weight: Tensor,
    input_bias: Tensor,
    depthwise_weight: Tensor,
    depthwise_bias: Tensor,
    pointwise_weight: Tensor,
    pointwise_bias: Tensor,
    output_weight: Tensor,
    output_bias: Tensor,
    negative_slope: float = 0.1,
    out: Tensor | None = None,
) -> Tensor:
    """The decoder's conv stack frames-major, batched: ``x [batch, frames, in_channels]`` →
    ``[batch, frames, out_channels]`` (written into ``out`` when given, a contiguous tensor of
    that shape), weights in the layout of :func:`.numba_kernels.separable_conv_stack` (which
    documents the maths).

    Frames-major, every 1×1 conv is one matrix product over all the batch's frames and each
    depthwise tap one multiply-add of a shifted view: on a CPU core this is twice as fast as
    ``nn.Conv1d``'s grouped convolution (differentiable all the same).
    """
    batch, frames, _ = x.shape
    kernel = depthwise_weight.shape[-1]

    def linear(v: Tensor, weight: Tensor, bias: Tensor, into: Tensor | None = None) -> Tensor:
        """1×1 conv, frames-major."""
        flat = None if into is None else into.view(batch * frames, -1)
        y = torch.addmm(bias, v.reshape(batch * frames, -1), weight, out=flat)
        return y.view(batch, frames, -1)

    h = linear(x, input_weight, input_bias)
    centre = kernel // 2
    # Without autograd (generation) every layer reuses two buffers and adds into h in place:
    # fresh tensors of this size per layer come from the system zeroed, and those page faults
    # cost as much as the arithmetic.
    reuse = not torch.is_grad_enabled()
    buffers = (torch.empty_like(h), torch.empty_like(h)) if reuse else (None, None)
    # [layers, kernel, channels]: each tap's weights contiguous (strided ones halve the speed).
    layer_taps = depthwise_weight.transpose(1, 2).contiguous()
    for layer, taps in enumerate(layer_taps):
        mixed = torch.addcmul(depthwise_bias[layer], h, taps[centre], out=buffers[0])
        for t in range(kernel):
            # Tap t reads h shifted by (t - centre)·dilation; the zero padding is the part of
            # the output it does not reach.
            shift = (t - centre) * 2**layer
            if t == centre or abs(shift) >= frames:
                continue
            reach = slice(max(0, -shift), frames - max(0, shift))
            source = h[:, max(0, shift) : frames + min(0, shift)]
            mixed[:, reach].addcmul_(source, taps[t])
        y = tnf.leaky_relu_(
            linear(mixed, pointwise_weight[layer], pointwise_bias[layer], buffers[1]),
            negative_slope,
        )
        h = h.add_(y) if reuse else h + y
    return linear(h, output_weight, output_bias, out)
