"""DSP core: differentiable torch functions, numba CPU kernels, thin synth modules."""

from . import functional, numba_kernels, synths
from .synths import ExpDecayReverb, FilteredNoise, Harmonic, Reverb

__all__ = [
    "ExpDecayReverb",
    "FilteredNoise",
    "Harmonic",
    "Reverb",
    "functional",
    "numba_kernels",
    "synths",
]
