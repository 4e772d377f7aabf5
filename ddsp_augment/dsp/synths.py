"""Synthesisers as thin ``nn.Module``s (no parameters: controls come in, audio goes out), the
maths in :mod:`.functional`. ``model.species_model.SpeciesModel`` is built from them."""

from __future__ import annotations

from torch import Tensor, nn

from . import functional as F

__all__ = ["FilteredNoise", "Harmonic"]


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
