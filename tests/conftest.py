"""Shared fixtures: real recordings bundled in the repository, a small species bank trained once.

Test data (no dependency on ``../shared``): ``tests/data/Parus_major`` (great tit songs from the
pykanto package data, MIT; see tests/data/README.md) and the chaffinch songs and blackbird clips of
``benchmarks/data/xc-germany`` (xeno-canto, CC BY-NC-SA; see benchmarks/data/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# The classifier benchmark's package lives beside its script, not in the library.
sys.path.insert(0, str(REPO / "benchmarks"))
TEST_DATA = REPO / "tests" / "data"
XC_GERMANY = REPO / "benchmarks" / "data" / "xc-germany"
# Tonal song of two species: clips of each bank species, in order.
TONAL_CLIPS = {
    "Parus_major": sorted((TEST_DATA / "Parus_major").glob("*.wav"))[:3],
    "Fringilla_coelebs": [
        XC_GERMANY / "Fringilla_coelebs" / name
        for name in ("XC133308.mp3", "XC315675.mp3", "XC308105.mp3")
    ],
}
BANK_SPECIES = tuple(TONAL_CLIPS)
_CROP_SECONDS = 4.0


def _loudest_window(audio: np.ndarray, length: int, hop: int) -> np.ndarray:
    """The ``length``-sample stretch of ``audio`` with the most energy (where the bird sings)."""
    if audio.shape[0] <= length:
        return audio
    energy = np.cumsum(np.concatenate([[0.0], audio.astype(np.float64) ** 2]))
    starts = np.arange(0, audio.shape[0] - length + 1, hop)
    best = int(starts[np.argmax(energy[starts + length] - energy[starts])])
    return audio[best : best + length]


@pytest.fixture(scope="session")
def tonal_clips(tmp_path_factory) -> dict[str, list[Path]]:
    """``{species: [wav paths]}``: a few short real clips of each bank species.

    Parus major clips (2-3 s) are used as they are; the 8 s Fringilla coelebs clips are cropped
    to their loudest 4 s.
    """
    from ddsp_augment.io import load_audio, save_audio

    crops = tmp_path_factory.mktemp("tonal-crops")
    clips: dict[str, list[Path]] = {}
    for species in BANK_SPECIES:
        paths = []
        for path in TONAL_CLIPS[species]:
            audio, rate = load_audio(path)
            length = int(_CROP_SECONDS * rate)
            if audio.shape[0] > length:
                path = crops / species / path.name
                save_audio(path, _loudest_window(audio, length, rate // 10), rate)
            paths.append(path)
        clips[species] = paths
    return clips


@pytest.fixture(scope="session")
def small_bank_path(tonal_clips, tmp_path_factory) -> Path:
    """A models folder with a tiny, briefly trained model of each species in ``BANK_SPECIES``."""
    from ddsp_augment.training.preprocess import PreprocessSettings, preprocess_file
    from ddsp_augment.training.train import TrainSettings, train_species

    models = tmp_path_factory.mktemp("models")
    settings = TrainSettings(
        epochs=2,
        steps_per_epoch=3,
        batch_size=2,
        crop_seconds=0.25,
        decoder={"hidden": 16, "n_layers": 2},
    )
    for species, paths in tonal_clips.items():
        recordings = [
            preprocess_file(path, species, f"recordist{i % 2}", PreprocessSettings())
            for i, path in enumerate(paths)
        ]
        train_species(recordings, models / species, settings, progress=False, log=lambda _: None)
    return models


@pytest.fixture(scope="session")
def small_bank(small_bank_path):
    from ddsp_augment.sampling.bank import SpeciesBank

    return SpeciesBank.load(small_bank_path)


@pytest.fixture()
def one_torch_thread():
    """Run torch on one thread: these tests use small tensors, where a second intra-op thread
    only adds waiting on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
