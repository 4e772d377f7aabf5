"""The species decoder: F0, loudness and voicing contours in, synthesiser controls out.

A small non-recurrent convolutional core keeps CPU training and generation fast (a GRU decoder
took ~19 ms per 3 s clip on one thread; the generation budget for the whole pipeline is 10 ms).
Dilated convolutions (1, 2, 4, 8) give ~60 ms of context each side, enough to shape a syllable's
attack and decay. Outputs scale with the input loudness, so quiet frames (the gaps between
phrases) render near silence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ..constants import HOP_LENGTH, LOUDNESS_FLOOR_DB, SAMPLE_RATE
from ..dsp import functional as F
from ..dsp import numba_kernels as nk

__all__ = ["Controls", "Decoder", "DecoderConfig"]

# log2-F0 scaling: 250 Hz -> 0, 16 kHz -> 1 (covers every bird the tracker can report).
_F0_LOG2_MIN = math.log2(250.0)
_F0_LOG2_RANGE = math.log2(16000.0) - _F0_LOG2_MIN
# synthesis_controls on a CPU: activations per conv-stack call (1 clip of 3 s at 64 channels,
# 384 KB a buffer; 2 clips ran 1-5 % slower, 10 clips at once, out of the core's cache, 15 %).
_CPU_CONV_ELEMENTS = 2**17


@dataclass
class DecoderConfig:
    """Architecture and feature normalisation of one species model.

    Attributes:
        sample_rate: Model audio rate (Hz).
        hop_length: Control hop in samples.
        n_harmonics: Harmonic budget (those at or above Nyquist are masked per frame).
        n_noise_bands: Filtered-noise magnitude bands (FIR length ``2 * (n_noise_bands - 1)``).
        hidden: Channels of the convolutional core.
        n_layers: Dilated conv layers (dilation doubles per layer).
        kernel_size: Conv kernel size (odd).
        loudness_mean: Training-set mean of active-frame loudness (dB), for input scaling.
        loudness_std: Training-set std of active-frame loudness (dB).
        reverb_seconds: Length of the learnable reverb impulse response.
    """

    sample_rate: int = SAMPLE_RATE
    hop_length: int = HOP_LENGTH
    n_harmonics: int = 32
    n_noise_bands: int = 65
    hidden: int = 64
    n_layers: int = 4
    kernel_size: int = 5
    loudness_mean: float = -40.0
    loudness_std: float = 15.0
    reverb_seconds: float = 0.25

    def __post_init__(self) -> None:
        if self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        for name in ("sample_rate", "hop_length", "n_harmonics", "hidden", "n_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_noise_bands < 2:
            raise ValueError(f"n_noise_bands must be >= 2, got {self.n_noise_bands}")
        if self.loudness_std <= 0:
            raise ValueError(f"loudness_std must be > 0, got {self.loudness_std}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DecoderConfig:
        """Build from a dict, rejecting unknown keys (a foreign config should fail loudly)."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown decoder config keys: {sorted(unknown)}")
        return cls(**values)


class Controls(NamedTuple):
    """Synthesiser controls at frame rate.

    amplitude: ``[batch, frames]``; harmonic_distribution: ``[batch, frames, n_harmonics]`` (sums
    to 1); noise_magnitudes: ``[batch, frames, n_noise_bands]``; f0_hz: ``[batch, frames]``.
    """

    f0_hz: Tensor
    amplitude: Tensor
    harmonic_distribution: Tensor
    noise_magnitudes: Tensor


class _ResidualConv(nn.Module):
    """Depthwise-separable dilated conv block: a 64-channel dense conv of kernel 5 cost 4.6 ms
    per 3 s clip on one core; depthwise + pointwise keeps the receptive field at ~1 ms."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(
            channels,
            channels,
            kernel_size,
            dilation=dilation,
            padding=dilation * (kernel_size // 2),
            groups=channels,
        )
        self.pointwise = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.nn.functional.leaky_relu(self.pointwise(self.depthwise(x)), 0.1)


class Decoder(nn.Module):
    """(F0, loudness, voicing confidence) → synthesiser controls.

    Inputs are ``[batch, frames]``; outputs a :class:`Controls`.
    """

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config.hidden
        self.input = nn.Conv1d(3, c, 1)
        self.core = nn.Sequential(
            *(_ResidualConv(c, config.kernel_size, 2**i) for i in range(config.n_layers))
        )
        n_out = 1 + config.n_harmonics + config.n_noise_bands
        self.output = nn.Conv1d(c, n_out, 1)
        with torch.no_grad():
            # Birdsong is mostly near-pure tones: start with the fundamental dominant (each
            # harmonic ~12 dB below the previous) and the noise branch quiet. From a flat start
            # the misplaced upper partials cost more than they explain, the harmonic branch is
            # switched off, and the model collapses to noise on a few seconds of song.
            ks = torch.arange(config.n_harmonics, dtype=torch.float32)
            self.output.bias[1 : 1 + config.n_harmonics].copy_(-ks)
            self.output.bias[1 + config.n_harmonics :].fill_(-4.0)
        # The input normalisation as a tensor (not saved: the config holds it), so species
        # stacked for training together (`training.stacked`) can each carry their own.
        self.register_buffer(
            "loudness_norm",
            torch.tensor([config.loudness_mean, config.loudness_std], dtype=torch.float32),
            persistent=False,
        )

    def scale_inputs(self, f0_hz: Tensor, loudness_db: Tensor, confidence: Tensor) -> Tensor:
        """``[batch, frames]`` ×3 → ``[batch, 3, frames]`` network input."""
        f0 = (torch.log2(f0_hz.clamp_min(1.0)) - _F0_LOG2_MIN) / _F0_LOG2_RANGE
        loud = (loudness_db - self.loudness_norm[0]) / self.loudness_norm[1]
        return torch.stack([f0, loud, confidence], dim=1)

    def forward(self, f0_hz: Tensor, loudness_db: Tensor, confidence: Tensor) -> Controls:
        cfg = self.config
        hidden = self.core(self.input(self.scale_inputs(f0_hz, loudness_db, confidence)))
        raw = self.output(hidden).transpose(1, 2)  # [batch, frames, n_out]
        # Amplitudes are relative to the input loudness (a sine of amplitude 10^(dB/20) reads
        # dB): the network learns a gain around 1 instead of the level itself, which keeps the
        # output from starting, or collapsing, to silence on a few seconds of song.
        level = _level(loudness_db)[..., None]
        amplitude = level[..., 0] * F.exp_sigmoid(raw[..., 0], max_value=4.0)
        harmonics = F.exp_sigmoid(raw[..., 1 : 1 + cfg.n_harmonics])
        distribution = harmonics / harmonics.sum(-1, keepdim=True)
        noise = level * F.exp_sigmoid(raw[..., 1 + cfg.n_harmonics :])
        return Controls(f0_hz, amplitude, distribution, noise)

    def numpy_forward(
        self,
        f0_hz: np.ndarray,
        loudness_db: np.ndarray,
        confidence: np.ndarray,
        with_noise: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`forward` for one clip of ``[frames]`` contours in numba, no torch call.

        Returns float32 numpy (f0_hz ``[frames]``, amplitude ``[frames]``, harmonic_distribution
        ``[frames, n_harmonics]``, noise_magnitudes ``[frames, n_noise_bands]``), equal to the
        torch controls within float32 rounding (sums in another order), except that the
        distribution comes masked at Nyquist and renormalised, as the synthesiser uses it
        (:func:`..dsp.functional.remove_above_nyquist`): harmonics that cannot sound are never
        computed (a 3 kHz song keeps 5 of 32). ``with_noise=False`` skips the noise bands'
        outputs (None), for a song whose noise comes from elsewhere (the recorded residual).
        """
        cfg = self.config
        f0_hz = np.asarray(f0_hz, np.float32)
        loudness_db = np.asarray(loudness_db, np.float32)
        f0 = (np.log2(np.maximum(f0_hz, 1.0)) - _F0_LOG2_MIN) / _F0_LOG2_RANGE
        loud = (loudness_db - cfg.loudness_mean) / cfg.loudness_std
        x = np.stack([f0, loud, np.asarray(confidence, np.float32)], axis=1)
        raw = nk.separable_conv_stack(x, *self._numpy_weights(with_noise))
        level = np.where(
            loudness_db > LOUDNESS_FLOOR_DB,
            np.power(np.float32(10.0), loudness_db / np.float32(20.0)),
            np.float32(0.0),
        )
        amplitude = level * nk.exp_sigmoid(raw[:, 0], max_value=4.0)
        ks = np.arange(1, cfg.n_harmonics + 1, dtype=np.float32)
        audible = (f0_hz[:, None] * ks < np.float32(cfg.sample_rate / 2)).sum(-1)
        harmonics = nk.exp_sigmoid(raw[:, 1 : 1 + cfg.n_harmonics], columns=audible)
        distribution = harmonics / np.maximum(harmonics.sum(-1, keepdims=True), np.float32(1e-7))
        noise = None
        if with_noise:
            noise = level[:, None] * nk.exp_sigmoid(raw[:, 1 + cfg.n_harmonics :])
        return f0_hz, amplitude, distribution, noise

    def synthesis_controls(
        self, f0_hz: Tensor, loudness_db: Tensor, confidence: Tensor
    ) -> Controls:
        """:meth:`forward` for generation, batched in torch (``[batch, frames]`` contours): the
        controls of :meth:`numpy_forward` (distribution masked at Nyquist and renormalised, as
        the synthesiser uses it), cut to the harmonics that sound in some frame.

        The conv stack runs frames-major (:func:`..dsp.functional.separable_conv_stack`, the
        layout of the numba decoder), on a CPU a few clips at a time so that its activations
        stay in cache (``_CPU_CONV_ELEMENTS``): there 1.6× as fast as :meth:`forward`'s
        ``nn.Conv1d``; the same within float32 rounding.
        """
        cfg = self.config
        batch, frames = f0_hz.shape
        step = batch
        if f0_hz.device.type == "cpu":
            step = max(1, _CPU_CONV_ELEMENTS // (frames * cfg.hidden))
        ks = torch.arange(1, cfg.n_harmonics + 1, device=f0_hz.device, dtype=f0_hz.dtype)
        n_active = max(1, int((f0_hz.min() * ks < cfg.sample_rate / 2).sum()))
        # Only the output columns used: the amplitude, the harmonics that sound in some frame
        # and the noise bands.
        *core, output_weight, output_bias = self._stack_weights()
        used = (slice(0, 1 + n_active), slice(1 + cfg.n_harmonics, None))
        output_weight = torch.cat([output_weight[:, part] for part in used], 1)
        output_bias = torch.cat([output_bias[part] for part in used])
        # Every column's exp_sigmoid at once (the amplitude's max_value 4, the others' 2), each
        # part's as soon as its raw outputs are made, while they are in cache.
        max_value = torch.full_like(output_bias, 2.0)
        max_value[0] = 4.0
        controls = torch.empty(batch, frames, output_bias.shape[0], device=f0_hz.device)
        raw = torch.empty(min(step, batch), frames, output_bias.shape[0], device=f0_hz.device)
        x = self.scale_inputs(f0_hz, loudness_db, confidence).transpose(1, 2)
        level = _level(loudness_db)
        for i in range(0, batch, step):
            part, rows = slice(i, min(i + step, batch)), min(step, batch - i)
            F.separable_conv_stack(x[part], *core, output_weight, output_bias, out=raw[:rows])
            out = F.exp_sigmoid_log1p(raw[:rows], max_value=max_value, out=controls[part])
            # The amplitude and the noise bands scale with the input level.
            out[..., 0] *= level[part]
            out[..., 1 + n_active :] *= level[part, :, None]
        harmonics = controls[..., 1 : 1 + n_active]
        distribution = F.remove_above_nyquist(harmonics, f0_hz, cfg.sample_rate)
        return Controls(f0_hz, controls[..., 0], distribution, controls[..., 1 + n_active :])

    def _stack_weights(self) -> tuple[Tensor, ...]:
        """The weights in :func:`..dsp.numba_kernels.separable_conv_stack`'s layout (views of
        the parameters: frames-major convolutions are products with the transposed kernels)."""
        blocks = list(self.core)
        return (
            self.input.weight[..., 0].T,
            self.input.bias,
            torch.stack([b.depthwise.weight[:, 0] for b in blocks]),
            torch.stack([b.depthwise.bias for b in blocks]),
            torch.stack([b.pointwise.weight[..., 0].T for b in blocks]),
            torch.stack([b.pointwise.bias for b in blocks]),
            self.output.weight[..., 0].T,
            self.output.bias,
        )

    def _numpy_weights(self, with_noise: bool = True) -> tuple[np.ndarray, ...]:
        """:meth:`_stack_weights` in numpy, kept until any parameter changes (their version
        counters move on every optimiser step or load); without the noise bands' output
        columns unless ``with_noise``."""
        params = list(self.parameters())
        key = tuple((p._version, p.data_ptr()) for p in params)
        if getattr(self, "_numpy_key", None) != key:
            with torch.no_grad():
                weights = tuple(
                    np.array(w.detach().cpu().numpy(), np.float32) for w in self._stack_weights()
                )
            kept = 1 + self.config.n_harmonics
            self._numpy_cache = {
                True: weights,
                False: (*weights[:-2], weights[-2][:, :kept].copy(), weights[-1][:kept].copy()),
            }
            self._numpy_key = key
        return self._numpy_cache[with_noise]


def _level(loudness_db: Tensor) -> Tensor:
    """The linear level ``10^(dB/20)`` the amplitudes and noise bands scale with, zero where the
    loudness reads ``LOUDNESS_FLOOR_DB`` (no bird, ``features.activity``; jitter keeps those
    frames at the floor).

    Without the gate a frame at the floor still sounds at up to the network's maximum gain times
    1e-5; a model fitted on one short recording can carry that through a reverb of high gain
    and sing at -65 dB where no bird was. ``[batch, frames]`` → ``[batch, frames]``.
    """
    level = torch.exp(loudness_db * (math.log(10.0) / 20.0))
    return level * (loudness_db > LOUDNESS_FLOOR_DB)
