"""Defaults shared by every module.

Birdsong sweeps several kHz within milliseconds and sits at 1-10 kHz, so the model runs at 32 kHz
(Nyquist above the band with room for a few harmonics) on a 2 ms control grid.
"""

SAMPLE_RATE = 32000
HOP_LENGTH = 64
F0_MIN_HZ = 1000.0
F0_MAX_HZ = 12000.0
LOUDNESS_FLOOR_DB = -100.0
# Frames within this many dB of a recording's loudest are "active" (the bird, not the pauses):
# training crops and validation, segmentation, evaluation and the spectral-distance metric agree.
ACTIVE_RANGE_DB = 40.0
# ``confidence >= VOICED_THRESHOLD`` marks a voiced frame, for either F0 tracker.
VOICED_THRESHOLD = 0.5
# Generated audio peaks at or below 0.99: the largest float32 not above it (float32(0.99) is
# 0.99000001, so a clip scaled to 0.99 and stored as float32 would sit just over it).
PEAK = 0.9899999499320984

__all__ = [
    "ACTIVE_RANGE_DB",
    "F0_MAX_HZ",
    "F0_MIN_HZ",
    "HOP_LENGTH",
    "LOUDNESS_FLOOR_DB",
    "PEAK",
    "SAMPLE_RATE",
    "VOICED_THRESHOLD",
]
