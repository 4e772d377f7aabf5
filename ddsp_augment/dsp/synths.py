"""Thin ``nn.Module`` wrappers: parameters live here, the maths in :mod:`.functional`."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import functional as F

__all__ = ["ExpDecayReverb", "FilteredNoise", "Harmonic", "Reverb"]


class Harmonic(nn.Module):
    """Additive synthesiser (see :func:`.functional.harmonic_synth`).

    ``forward(f0_hz [batch, frames], amplitude [batch, frames],
    harmonic_distribution [batch, frames, n_harmonics], n_samples)`` → ``[batch, n_samples]``.
    """

    def __init__(self, sample_rate: int, hop_length: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.hop_length = hop_length

    def forward(
        self, f0_hz: Tensor, amplitude: Tensor, harmonic_distribution: Tensor, n_samples: int
    ) -> Tensor:
        return F.harmonic_synth(
            f0_hz, amplitude, harmonic_distribution, self.sample_rate, self.hop_length, n_samples
        )


class FilteredNoise(nn.Module):
    """Time-varying filtered noise (see :func:`.functional.filtered_noise`).

    ``forward(magnitudes [batch, frames, n_bands], noise [batch, n_samples])`` →
    ``[batch, n_samples]``.
    """

    def __init__(self, hop_length: int) -> None:
        super().__init__()
        self.hop_length = hop_length

    def forward(self, magnitudes: Tensor, noise: Tensor) -> Tensor:
        return F.filtered_noise(magnitudes, noise, self.hop_length)


class Reverb(nn.Module):
    """Learnable impulse response ``ir [length]``; ``forward(audio [batch, n])`` →
    ``audio + audio * ir`` (``*`` = convolution, tail dropped).

    The dry path is fixed outside the parameter so the reverb can only add room, never remove the
    bird. Initialised as a quiet exponentially decaying noise burst (RT60 0.1 s, noise std 0.1),
    drawn from a generator seeded with ``seed``.
    """

    def __init__(self, length: int, sample_rate: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(1, length, generator=generator) * 0.1
        self.ir = nn.Parameter(F.exp_decay_ir(0.1, length, sample_rate, noise)[0])

    def impulse_response(self) -> Tensor:
        """``[length]`` wet impulse response (without the dry path)."""
        return self.ir

    def forward(self, audio: Tensor) -> Tensor:
        return audio + F.fft_convolve(audio, self.ir[None])


class ExpDecayReverb(nn.Module):
    """Parametric reverb: a fixed noise burst shaped by a learnable RT60 and wet gain.

    ``forward(audio [batch, n])`` → ``audio + audio * ir``; the IR has unit energy times
    ``sigmoid(wet_logit)``, so decay and level are learnt independently.
    """

    def __init__(self, length: int, sample_rate: int, rt60_s: float = 0.3, seed: int = 0) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("noise", torch.randn(1, length, generator=generator))
        # Log-RT60 keeps the decay positive and makes its steps relative.
        self.log_rt60 = nn.Parameter(torch.tensor(math.log(rt60_s)))
        self.wet_logit = nn.Parameter(torch.tensor(-2.0))

    def impulse_response(self) -> Tensor:
        """``[length]`` wet impulse response (without the dry path)."""
        ir = F.exp_decay_ir(self.log_rt60.exp(), self.noise.shape[-1], self.sample_rate, self.noise)
        return torch.sigmoid(self.wet_logit) * ir[0] / ir.norm().clamp_min(1e-7)

    def forward(self, audio: Tensor) -> Tensor:
        return audio + F.fft_convolve(audio, self.impulse_response()[None])
