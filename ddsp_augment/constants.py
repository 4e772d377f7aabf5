"""Defaults shared by every module.

Birdsong sweeps several kHz within milliseconds and sits at 1-10 kHz, so the model runs at 32 kHz
(Nyquist above the band with room for a few harmonics) on a 2 ms control grid.
"""

SAMPLE_RATE = 32000
HOP_LENGTH = 64
F0_MIN_HZ = 1000.0
F0_MAX_HZ = 12000.0
LOUDNESS_FLOOR_DB = -100.0

__all__ = ["F0_MAX_HZ", "F0_MIN_HZ", "HOP_LENGTH", "LOUDNESS_FLOOR_DB", "SAMPLE_RATE"]
