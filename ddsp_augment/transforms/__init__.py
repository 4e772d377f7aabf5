"""audiomentations-compatible transforms backed by species models."""

from .ddsp_synth import DDSPSynth

__all__ = ["DDSPSynth"]
