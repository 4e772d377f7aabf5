"""Multi-scale spectral loss (DDSP): L1 on linear and log STFT magnitudes over several FFT sizes.

Bins below ``f_min`` are ignored: birds sing above it, while wind, traffic and handling noise
sit below. Each recording's measured background floor can be power-added to the prediction, so
the model learns the bird and not the recording channel (see ``forward``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..dsp.spectral import stft_magnitude

__all__ = ["FFT_SIZES", "MultiScaleSpectralLoss"]

# Birdsong changes within milliseconds: 1024 (32 ms) resolves 31 Hz, 64 (2 ms) the fastest
# trills; a 2048 window (64 ms) smears sweeps and punishes harmonics for small F0-track errors.
FFT_SIZES: tuple[int, ...] = (1024, 512, 256, 128, 64)


class MultiScaleSpectralLoss(nn.Module):
    """L1 on linear and log STFT magnitudes over several FFT sizes.

    Args:
        sample_rate: Audio rate, to place ``f_min``.
        fft_sizes: FFT sizes (75 % overlap, Hann).
        f_min: Bins below this are ignored: birds sing above it, and low-frequency wind and
            handling noise are not the species' sound.
        log_weight: Weight of the log-magnitude term (the linear term has weight 1).
    """

    def __init__(
        self,
        sample_rate: int,
        fft_sizes: Sequence[int] = FFT_SIZES,
        f_min: float = 500.0,
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
    ) -> Tensor:
        """Loss between ``[batch, samples]`` signals: a scalar, or ``[groups]``.

        ``floors`` (one ``[batch, n_fft // 2 + 1]`` per FFT size): each target recording's
        background magnitude, power-added to the prediction (``sqrt(|Y|² + B²)``, the expected
        magnitude of uncorrelated signals), so the model renders the bird and not the background.
        ``groups``: the batch is that many equal runs of consecutive examples (species trained
        together, ``training.stacked``), and each run gets its own loss, the same as alone.
        """
        if groups is None:
            mean = torch.mean
        elif prediction.shape[0] % groups:
            raise ValueError(f"groups={groups} does not divide the batch {prediction.shape[0]}")
        else:
            mean = lambda x: x.reshape(groups, -1).mean(-1)  # noqa: E731
        total = prediction.new_zeros(() if groups is None else (groups,))
        for i, n_fft in enumerate(self.fft_sizes):
            first_bin = int(np.ceil(self.f_min * n_fft / self.sample_rate))
            pred = stft_magnitude(prediction, n_fft)
            if floors is not None:
                pred = torch.sqrt(pred**2 + floors[i][:, :, None] ** 2 + 1e-12)
            pred = pred[:, first_bin:]
            true = stft_magnitude(target, n_fft)[:, first_bin:]
            total = total + mean((pred - true).abs())
            total = total + self.log_weight * mean(
                (torch.log(pred + 1e-5) - torch.log(true + 1e-5)).abs()
            )
        return total / len(self.fft_sizes)
