"""DSP core: differentiable torch functions, numba CPU kernels, the spectral front end, and thin
synthesiser and effect modules."""

from . import effects, functional, numba_kernels, spectral, synths
from .effects import Reverb
from .synths import FilteredNoise, Harmonic

__all__ = [
    "FilteredNoise",
    "Harmonic",
    "Reverb",
    "effects",
    "functional",
    "numba_kernels",
    "spectral",
    "synths",
]
