"""ddsp-augment: balance bird-sound datasets with per-species DDSP song synthesis.

Main entry points: :class:`SpeciesBank` (trained models, sampled into new songs),
:class:`DDSPBalancedDataset` (a torch Dataset wrapper that balances classes on the fly),
:func:`balance_loader` (the same for a DataLoader, in one line) and :class:`DDSPSynth` (an
audiomentations transform).

Names are imported on first use, so ``ddsp-augment --help`` does not pay for torch.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AudioError": "io",
    "DDSPBalancedDataset": "augment.dataset",
    "DDSPSynth": "augment.ddsp_synth",
    "ItemLayout": "augment.layout",
    "JitterConfig": "sampling.jitter",
    "ModelFileError": "model.storage",
    "PreprocessSettings": "training.preprocess",
    "SceneConfig": "sampling.scene",
    "SpeciesBank": "sampling.bank",
    "TrainSettings": "training.train",
    "balance_loader": "augment.loader",
    "build_bank": "augment.bank_builder",
    "estimate_f0": "features.pitch",
    "load_audio": "io",
    "log_mel": "dsp.spectral",
    "loudness_db": "features.loudness",
    "preprocess_folder": "training.preprocess",
    "save_audio": "io",
    "scan_folder": "io",
    "train_folder": "training.train",
    "train_species": "training.train",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
