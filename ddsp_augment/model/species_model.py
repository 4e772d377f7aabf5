"""One species' sound: decoder → harmonic + filtered-noise synthesis → learnable reverb.

The controls/signal split of magenta's DDSP: the :class:`.decoder.Decoder` makes frame-rate
controls, :mod:`..dsp.synths` and :mod:`..dsp.effects` turn them into audio. The bird is
rendered clean; the recording background comes from the scene (``sampling.scene``), built from
each training recording's measured noise floor.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..checks import Backend, check_backend
from ..dsp import functional as F
from ..dsp import numba_kernels as nk
from ..dsp.effects import Reverb
from ..dsp.synths import FilteredNoise, Harmonic
from ..features.residual import RESIDUAL_PHASE_ITERS
from .decoder import Controls, Decoder, DecoderConfig

__all__ = ["SpeciesModel"]

# Batched rendering's chunk size in audio samples, bounding its temporaries (about 30 floats a
# sample): on a CPU 2^21 (21 clips of 3 s at 32 kHz: SpeciesBank's CPU batch of 16 in one
# chunk; the synthesisers block their own work for the caches, and 10-clip chunks ran 2-3 %
# slower per clip, 5-clip ones 7 %); on a GPU 2^24 (175 clips, about 2 GB), enough work per
# kernel to keep it busy.
_RENDER_ELEMENTS = {"cpu": 2**21, "cuda": 2**24}


class SpeciesModel(nn.Module):
    """Decoder + harmonic/noise synthesis + learnable reverb: the clean bird of one species."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.decoder = Decoder(config)
        self.harmonic = Harmonic(config.sample_rate, config.hop_length)
        self.noise = FilteredNoise(config.hop_length)
        self.reverb = Reverb(
            length=int(config.reverb_seconds * config.sample_rate), sample_rate=config.sample_rate
        )

    def forward(
        self,
        f0_hz: Tensor,
        loudness_db: Tensor,
        confidence: Tensor,
        n_samples: int,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Render audio ``[batch, n_samples]`` and its harmonic part (for collapse checks)."""
        controls = self.decoder(f0_hz, loudness_db, confidence)
        white = torch.randn(f0_hz.shape[0], n_samples, generator=generator, device=f0_hz.device)
        harmonic, noise = self.render_parts(controls, white)
        return self.reverb(harmonic + noise), harmonic

    def render_parts(self, controls: Controls, white_noise: Tensor) -> tuple[Tensor, Tensor]:
        """Torch synthesis of ``controls`` → harmonic and filtered noise, ``[batch, n_samples]``.

        ``white_noise [batch, n_samples]`` is the noise the filtered-noise branch shapes.
        """
        c, n_samples = controls, white_noise.shape[-1]
        harmonic = self.harmonic(c.f0_hz, c.amplitude, c.harmonic_distribution, n_samples)
        return harmonic, self.noise(c.noise_magnitudes, white_noise)

    @torch.inference_mode()  # cheaper than no_grad: generation never needs autograd
    def render(
        self,
        f0_hz: Tensor,
        loudness_db: Tensor,
        confidence: Tensor,
        white_noise: Tensor,
        noise_magnitudes: Tensor | None = None,
        noise_hop_length: int | None = None,
    ) -> Tensor:
        """Batched generation on the model's device: ``[batch, frames]`` contours and
        ``white_noise [batch, n_samples]`` → ``[batch, n_samples]``, no gradients.

        ``noise_magnitudes [batch, noise_frames, bands]``, when given, shape the noise instead
        of the decoder's own noise branch (the recorded residual, :mod:`..features.residual`):
        an STFT's magnitudes (``n_fft = 2 (bands - 1)``), one frame per ``noise_hop_length``
        samples (None: the model's hop), rendered with a Griffin-Lim phase
        (:func:`..dsp.functional.griffin_lim_noise`, ``RESIDUAL_PHASE_ITERS`` iterations) and
        added after the reverb (recorded sound carries its room): ``reverb(harmonic) + noise``;
        the decoder's noise is ``reverb(harmonic + noise)``.

        Clips go through the decoder (:meth:`.decoder.Decoder.synthesis_controls`), synthesis
        (:func:`..dsp.functional.harmonic_synth_recurrent` and
        :func:`..dsp.functional.filtered_noise_zero_phase`, the training path's synthesisers
        within float32 rounding) and reverb (:meth:`..dsp.effects.Reverb.apply_batch`) in chunks
        of at most ``_RENDER_ELEMENTS[device type]`` samples.
        """
        cfg = self.config
        noise_hop = cfg.hop_length
        if noise_magnitudes is not None:
            noise_hop = _check_noise_hop(noise_hop_length, cfg.hop_length)
        budget = _RENDER_ELEMENTS.get(white_noise.device.type, _RENDER_ELEMENTS["cpu"])
        chunk = max(1, budget // white_noise.shape[-1])
        parts = []
        for start in range(0, white_noise.shape[0], chunk):
            part = slice(start, start + chunk)
            f0, amplitude, distribution, magnitudes = self.decoder.synthesis_controls(
                f0_hz[part], loudness_db[part], confidence[part]
            )
            harmonic = F.harmonic_synth_recurrent(
                f0, amplitude, distribution, cfg.sample_rate, cfg.hop_length, white_noise.shape[-1]
            )
            if noise_magnitudes is None:
                noise = F.filtered_noise_zero_phase(magnitudes, white_noise[part], noise_hop)
                parts.append(self.reverb.apply_batch(harmonic, noise))
            else:
                wet = self.reverb.apply_batch(harmonic)
                wet += F.griffin_lim_noise(
                    noise_magnitudes[part], white_noise[part], noise_hop, RESIDUAL_PHASE_ITERS
                )
                parts.append(wet)
        return parts[0] if len(parts) == 1 else torch.cat(parts)  # one chunk: no copy

    @torch.inference_mode()
    def synthesize(
        self,
        f0_hz: np.ndarray,
        loudness_db: np.ndarray,
        confidence: np.ndarray,
        n_samples: int,
        rng: np.random.Generator,
        backend: Backend = "numba",
        noise_magnitudes: np.ndarray | None = None,
        noise_hop_length: int | None = None,
    ) -> np.ndarray:
        """Render one clip from ``[frames]`` contours → float32 ``[n_samples]``, no gradients.

        ``backend="numba"`` runs the CPU fast path (numba decoder and kernels, numpy FFT; the
        recorded residual's Griffin-Lim phase alone in torch on the CPU); ``"torch"`` the
        differentiable path (on the model's device, see
        :meth:`render`). Both draw their white noise from ``rng`` so a seed fixes the output
        whatever the backend. ``noise_magnitudes [noise_frames, bands]`` and
        ``noise_hop_length``: as in :meth:`render`.
        """
        check_backend(backend)
        white = rng.standard_normal(n_samples, dtype=np.float32)
        if backend == "torch":
            device = next(self.parameters()).device
            as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)[None]  # noqa: E731
            contours = (as_tensor(f0_hz), as_tensor(loudness_db), as_tensor(confidence))
            recorded = None if noise_magnitudes is None else as_tensor(noise_magnitudes)
            clips = self.render(*contours, as_tensor(white), recorded, noise_hop_length)
            return clips[0].cpu().numpy()
        hop = self.config.hop_length
        harmonic, magnitudes = self._numpy_parts(
            f0_hz, loudness_db, confidence, n_samples, with_noise=noise_magnitudes is None
        )
        if noise_magnitudes is None:
            return self.reverb.apply_numpy(harmonic + nk.filtered_noise(magnitudes, white, hop))
        # The recorded residual: torch's FFTs on the CPU, the one implementation of its
        # Griffin-Lim phase. Added after the reverb, as in `render`.
        noise_hop = _check_noise_hop(noise_hop_length, hop)
        noise = F.griffin_lim_noise(
            torch.from_numpy(np.asarray(noise_magnitudes, np.float32))[None],
            torch.from_numpy(white)[None],
            noise_hop,
            RESIDUAL_PHASE_ITERS,
        )[0].numpy()
        return self.reverb.apply_numpy(harmonic) + noise

    @torch.inference_mode()
    def harmonic_part(
        self, f0_hz: np.ndarray, loudness_db: np.ndarray, confidence: np.ndarray, n_samples: int
    ) -> np.ndarray:
        """The harmonic branch alone for ``[frames]`` contours → float32 ``[n_samples]``, through
        the reverb as every rendering plays it (numba path): what the recorded residual is
        measured against (:mod:`..features.residual`)."""
        dry = self._numpy_parts(f0_hz, loudness_db, confidence, n_samples, False)[0]
        return self.reverb.apply_numpy(dry)

    def _numpy_parts(
        self,
        f0_hz: np.ndarray,
        loudness_db: np.ndarray,
        confidence: np.ndarray,
        n_samples: int,
        with_noise: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Harmonic audio ``[n_samples]`` and the decoder's noise magnitudes ``[frames, bands]``
        (None unless ``with_noise``; numba decoder and harmonic kernel)."""
        cfg = self.config
        f0, amplitude, distribution, magnitudes = self.decoder.numpy_forward(
            f0_hz, loudness_db, confidence, with_noise
        )
        harmonic = nk.harmonic_synth(
            f0, amplitude, distribution, cfg.sample_rate, cfg.hop_length, n_samples
        )
        return harmonic, magnitudes


def _check_noise_hop(noise_hop_length: int | None, hop_length: int) -> int:
    """``noise_hop_length`` (None: ``hop_length``), checked to be a positive int."""
    if noise_hop_length is None:
        return hop_length
    if isinstance(noise_hop_length, bool) or not isinstance(noise_hop_length, int | np.integer):
        raise TypeError(f"noise_hop_length must be an int, got {type(noise_hop_length).__name__}")
    if noise_hop_length < 1:
        raise ValueError(f"noise_hop_length must be >= 1, got {noise_hop_length}")
    return int(noise_hop_length)
