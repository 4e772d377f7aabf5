"""Multi-scale spectral loss (DDSP): L1 on linear and log STFT magnitudes over several FFT sizes.

Bins below ``f_min`` are ignored: birds sing above it, while wind, traffic and handling noise
sit below. So are bins above what each recording carries (``band_edges``: a 22.05 kHz file at
the model's 32 kHz is digitally silent above 11 kHz). Each recording's measured background
floor can be power-added to the prediction, so the model learns the bird and not the recording
channel (see ``forward``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..dsp.spectral import stft_magnitude

__all__ = ["FFT_SIZES", "LOSS_F_MIN_HZ", "MultiScaleSpectralLoss", "loss_f_min"]

# Birdsong changes within milliseconds: 1024 (32 ms) resolves 31 Hz, 64 (2 ms) the fastest
# trills; a 2048 window (64 ms) smears sweeps and punishes harmonics for small F0-track errors.
FFT_SIZES: tuple[int, ...] = (1024, 512, 256, 128, 64)

# Birds of the default analysis band (1-12 kHz) sing above it; wind and traffic sit below.
LOSS_F_MIN_HZ = 500.0


def loss_f_min(band_low_hz: float) -> float:
    """The loss's ``f_min`` for a species analysed from ``band_low_hz`` up (its
    ``Recording.band``): ``LOSS_F_MIN_HZ``, or half the band's low edge when that is lower.

    A low-voiced species (a wood pigeon's coo, an owl's hoot) is analysed from a lower edge, and
    its fundamental can sit right at it; half the edge keeps the fundamental's whole spectral
    peak in the loss and still drops the rumble further down.
    """
    if band_low_hz <= 0:
        raise ValueError(f"band_low_hz must be positive, got {band_low_hz}")
    return min(LOSS_F_MIN_HZ, band_low_hz / 2)


class MultiScaleSpectralLoss(nn.Module):
    """L1 on linear and log STFT magnitudes over several FFT sizes.

    Args:
        sample_rate: Audio rate, to place ``f_min``.
        fft_sizes: FFT sizes (75 % overlap, Hann).
        f_min: Bins below this are ignored: birds sing above it, and low-frequency wind and
            handling noise are not the species' sound (:func:`loss_f_min` places it for a
            species' analysis band).
        log_weight: Weight of the log-magnitude term (the linear term has weight 1).
    """

    def __init__(
        self,
        sample_rate: int,
        fft_sizes: Sequence[int] = FFT_SIZES,
        f_min: float = LOSS_F_MIN_HZ,
        log_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if f_min < 0 or f_min >= sample_rate / 2:
            raise ValueError(f"f_min must be in [0, {sample_rate / 2}), got {f_min}")
        self.sample_rate = sample_rate
        self.fft_sizes = tuple(fft_sizes)
        self.f_min = f_min
        self.log_weight = log_weight

    def forward(
        self,
        prediction: Tensor,
        target: Tensor,
        floors: Sequence[Tensor] | None = None,
        groups: int | None = None,
        band_edges: Tensor | None = None,
    ) -> Tensor:
        """Loss between ``[batch, samples]`` signals: a scalar, or ``[groups]``.

        ``floors`` (one ``[batch, n_fft // 2 + 1]`` per FFT size): each target recording's
        background magnitude, power-added to the prediction (``sqrt(|Y|² + B²)``, the expected
        magnitude of uncorrelated signals), so the model renders the bird and not the background.
        ``groups``: the batch is that many equal runs of consecutive examples (species trained
        together, ``training.stacked``), and each run gets its own loss, the same as alone.
        ``band_edges [batch]``: the highest frequency (Hz) each target recording carries
        (``features.background.recorded_band_edge``); bins above it are left out of that
        example's terms. Without this, the log term there compares the model's faint energy with
        the target's digital silence (~10 nats a bin, whatever the level): on a recording that
        lacks the top third of the band, silencing the whole bird is the steepest way down the
        loss, and training collapses to silence in its first steps.
        """
        batch = prediction.shape[0]
        if groups is not None and batch % groups:
            raise ValueError(f"groups={groups} does not divide the batch {batch}")
        if band_edges is not None and tuple(band_edges.shape) != (batch,):
            raise ValueError(f"band_edges must be [{batch}], got {tuple(band_edges.shape)}")
        # The masks are built on the host: deciding there which bins to keep costs no device sync.
        edges = None if band_edges is None else band_edges.detach().to("cpu", torch.float64)
        total = prediction.new_zeros(() if groups is None else (groups,))
        for i, n_fft in enumerate(self.fft_sizes):
            first_bin = int(np.ceil(self.f_min * n_fft / self.sample_rate))
            pred = stft_magnitude(prediction, n_fft)
            if floors is not None:
                pred = torch.sqrt(pred**2 + floors[i][:, :, None] ** 2 + 1e-12)
            pred = pred[:, first_bin:]
            true = stft_magnitude(target, n_fft)[:, first_bin:]
            mean = self._mean(groups, self._kept_bins(edges, n_fft, first_bin, pred))
            total = total + mean((pred - true).abs())
            total = total + self.log_weight * mean(
                (torch.log(pred + 1e-5) - torch.log(true + 1e-5)).abs()
            )
        return total / len(self.fft_sizes)

    def _kept_bins(
        self, edges: Tensor | None, n_fft: int, first_bin: int, pred: Tensor
    ) -> Tensor | None:
        """``[batch, bins, 1]`` float mask (on ``pred``'s device) of the bins from ``first_bin``
        at or under each example's band edge (``edges``: Hz, on the host), or None when every
        example keeps every bin."""
        if edges is None:
            return None
        last_bin = torch.floor(edges * n_fft / self.sample_rate)
        if bool((last_bin >= n_fft // 2).all()):
            return None  # full-band recordings: the plain means, bit for bit
        bins = torch.arange(first_bin, n_fft // 2 + 1, dtype=torch.float64)
        kept = (bins[None, :] <= last_bin[:, None]).to(pred.dtype)[:, :, None]
        return kept.to(pred.device)

    @staticmethod
    def _mean(groups: int | None, kept: Tensor | None) -> Callable[[Tensor], Tensor]:
        """The mean over the kept elements of ``[batch, bins, frames]`` terms: a scalar, or one
        per group of consecutive examples."""
        if kept is None:
            if groups is None:
                return torch.mean
            return lambda x: x.reshape(groups, -1).mean(-1)
        runs = 1 if groups is None else groups

        def mean(x: Tensor) -> Tensor:
            weights = kept.expand_as(x).reshape(runs, -1)
            sums = (x.reshape(runs, -1) * weights).sum(-1) / weights.sum(-1).clamp_min(1.0)
            return sums[0] if groups is None else sums

        return mean
