"""ddsp-augment: balance bird-sound datasets with per-species DDSP song synthesis.

Main entry points: :class:`SpeciesBank` (trained models, sampled into new songs),
:class:`DDSPBalancedDataset` (a torch Dataset wrapper that balances classes on the fly) and
:class:`~ddsp_augment.transforms.DDSPSynth` (an audiomentations transform).
"""

from .bank import SpeciesBank
from .dataset import DDSPBalancedDataset
from .environment import SceneConfig
from .features import estimate_f0, log_mel, loudness_db
from .io import AudioError, load_audio, save_audio, scan_folder
from .jitter import JitterConfig
from .preprocess import PreprocessSettings, preprocess_folder
from .storage import ModelFileError
from .train import TrainSettings, train_folder, train_species
from .transforms import DDSPSynth

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "DDSPBalancedDataset",
    "DDSPSynth",
    "JitterConfig",
    "ModelFileError",
    "PreprocessSettings",
    "SceneConfig",
    "SpeciesBank",
    "TrainSettings",
    "__version__",
    "estimate_f0",
    "load_audio",
    "log_mel",
    "loudness_db",
    "preprocess_folder",
    "save_audio",
    "scan_folder",
    "train_folder",
    "train_species",
]
