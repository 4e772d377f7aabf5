"""Argument types and checks shared by the public API (one wording of each error)."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "BACKENDS",
    "DRAWS",
    "NOISE_SOURCES",
    "Backend",
    "Draws",
    "NoiseSource",
    "check_backend",
    "check_draws",
    "check_noise",
    "check_range",
]

Backend = Literal["numba", "torch"]
"""Synthesis backend: ``"numba"`` (CPU fast path) or ``"torch"`` (differentiable, any device)."""
BACKENDS: tuple[str, ...] = get_args(Backend)
Draws = Literal["host", "device"]
"""Where the torch backend draws its bulk noise: ``"host"`` (numpy, per-clip generators: the
numba path's songs) or ``"device"`` (torch generators seeded per clip, on the batch's device)."""
DRAWS: tuple[str, ...] = get_args(Draws)
NoiseSource = Literal["recorded", "model"]
"""What shapes a generated song's noise: ``"recorded"``, the recorded residual of the real frames
the song was composed from (``features.residual``), or ``"model"``, the decoder's own 65-band
noise branch."""
NOISE_SOURCES: tuple[str, ...] = get_args(NoiseSource)


def check_backend(backend: str) -> Backend:
    """``backend`` if it is a :data:`Backend`, else a ValueError naming the argument."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend  # type: ignore[return-value]


def check_noise(noise: str) -> NoiseSource:
    """``noise`` if it is a :data:`NoiseSource`, else a ValueError naming the argument."""
    if noise not in NOISE_SOURCES:
        raise ValueError(f"noise must be one of {NOISE_SOURCES}, got {noise!r}")
    return noise  # type: ignore[return-value]


def check_draws(draws: str) -> Draws:
    """``draws`` if it is a :data:`Draws`, else a ValueError naming the argument."""
    if draws not in DRAWS:
        raise ValueError(f"draws must be one of {DRAWS}, got {draws!r}")
    return draws  # type: ignore[return-value]


def check_range(
    name: str,
    value: tuple[float, float] | None,
    low: float,
    high: float,
    optional: bool = False,
) -> None:
    """A ``(min, max)`` pair with ``low <= min <= max <= high`` (None too when ``optional``: the
    option is off), else a ValueError naming ``name``."""
    if value is None and optional:
        return
    try:
        ok = len(value) == 2 and low <= value[0] <= value[1] <= high  # type: ignore[arg-type]
    except TypeError:  # None, a bare number, non-numbers
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must be (min, max) with {low} <= min <= max <= {high}, got {value!r}"
        )
