"""Effects applied to a synthesised signal: the species model's learnable room."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from . import functional as F
from . import numba_kernels as nk

__all__ = ["Reverb"]


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
        self._spectrum_key: tuple[int, int, int] | None = None
        self._spectrum = np.empty(0, np.complex64)
        self._batch_key: tuple[int, int, int] | None = None
        self._batch_response = torch.empty(0, dtype=torch.complex64)

    def impulse_response(self) -> Tensor:
        """``[length]`` wet impulse response (without the dry path)."""
        return self.ir

    def forward(self, audio: Tensor) -> Tensor:
        return audio + F.fft_convolve(audio, self.ir[None])

    def apply_numpy(self, dry: np.ndarray) -> np.ndarray:
        """The numpy path of :meth:`forward` for one clip ``dry [n]`` → float32 ``[n]``.

        The IR's spectrum is kept per FFT size until the IR changes (its version counter moves
        on every optimiser step or state load): one FFT fewer per generated clip.
        """
        ir = self.ir
        size = nk.convolution_size(dry.shape[0], ir.shape[-1])
        key = (size, ir._version, ir.data_ptr())
        if self._spectrum_key != key:
            self._spectrum = nk.rfft(ir.detach().cpu().numpy(), size)
            self._spectrum_key = key
        return dry + nk.fft_convolve(dry, self._spectrum, size)

    @torch.inference_mode()
    def apply_batch(self, dry: Tensor, other: Tensor | None = None) -> Tensor:
        """:meth:`forward` for generation, ``dry [batch, n]`` on the IR's device → ``[batch, n]``,
        of ``dry + other`` when ``other`` (``[batch, n]``: the synthesiser's other branch) is given.

        One product with the spectrum of the dry path plus the IR, kept per FFT size (a fast
        one, not a power of two) and device until the IR changes, as :meth:`apply_numpy` keeps
        it: a forward and an inverse FFT per clip. The input is made (summed) straight into the
        zero-padded FFT buffer: on a CPU rfft's own padding costs a third of the transform.
        Equal to :meth:`forward` within float32 rounding.
        """
        ir = self.ir
        n = dry.shape[-1]
        size = nk.convolution_size(n, ir.shape[-1])
        key = (size, ir._version, ir.data_ptr())
        if self._batch_key != key:
            self._batch_response = torch.fft.rfft(ir.detach(), size)
            self._batch_response += 1.0  # the dry path: audio + audio * ir
            self._batch_key = key
        padded = dry.new_empty(dry.shape[0], size)
        padded[:, n:] = 0.0
        if other is None:
            padded[:, :n] = dry
        else:
            torch.add(dry, other, out=padded[:, :n])
        spectrum = torch.fft.rfft(padded)
        spectrum *= self._batch_response
        return torch.fft.irfft(spectrum, size)[..., :n]
