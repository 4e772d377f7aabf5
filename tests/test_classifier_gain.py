"""The benchmark script's own pieces (its splits and metrics live in test_splits and
test_classification): classic copies and the extra clips of the balancing conditions."""

import importlib.util
import sys

import numpy as np
import torch
from classifier_gain.classifiers import set_epoch
from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "classifier_gain_script", REPO / "benchmarks" / "classifier_gain.py"
)
classifier_gain = importlib.util.module_from_spec(_spec)
sys.modules["classifier_gain_script"] = classifier_gain  # its dataclasses look their module up
_spec.loader.exec_module(classifier_gain)


def _tiny_corpus(n_per_class=(3, 2)):
    rng = np.random.default_rng(0)
    waveforms, labels = [], []
    for label, n in enumerate(n_per_class):
        for _ in range(n):
            tone = np.sin(2 * np.pi * (2000 + 1000 * label) * np.arange(16000) / 32000)
            audio = 0.3 * tone + 0.01 * rng.standard_normal(16000)
            waveforms.append(torch.from_numpy(audio.astype(np.float32))[None])
            labels.append(label)
    return waveforms, np.array(labels)


class _Corpus:
    def __init__(self):
        self.waveforms, self.labels = _tiny_corpus()


def test_extra_clips_cycle_the_class_clips_in_the_asked_numbers():
    corpus = _Corpus()
    train_idx = np.arange(5)
    plain = classifier_gain._extra_clips(corpus, train_idx, {1: 5}, augment=False, seed=0)
    assert plain.targets == [1] * 5
    sources = [corpus.waveforms[3], corpus.waveforms[4]] * 3
    for j in range(5):
        assert torch.equal(plain[j][0], sources[j])


def test_classic_copies_are_fresh_each_epoch_and_repeat_for_a_seed():
    corpus = _Corpus()
    copies = classifier_gain._extra_clips(corpus, np.arange(5), {0: 4}, augment=True, seed=7)
    again = classifier_gain._extra_clips(corpus, np.arange(5), {0: 4}, augment=True, seed=7)
    first = [copies[j][0] for j in range(4)]
    assert all(torch.equal(a, again[j][0]) for j, a in enumerate(first))
    assert [copies[j][2] for j in range(4)] == [0] * 4
    # Gain ±6 dB (p=1) alone makes every copy differ from its source.
    assert not any(torch.equal(a, corpus.waveforms[j % 3]) for j, a in enumerate(first))
    set_epoch(torch.utils.data.ConcatDataset([copies]), 1)
    second = [copies[j][0] for j in range(4)]
    assert not any(
        a.shape == b.shape and torch.equal(a, b) for a, b in zip(first, second, strict=True)
    )
    set_epoch(copies, 0)
    assert all(torch.equal(a, copies[j][0]) for j, a in enumerate(first))


def test_validation_split_holds_out_only_cut_minority_clips_of_new_recordists():
    class Corpus:
        labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
        groups = np.array([10, 11, 10, 12, 20, 21, 22, 23])

    split = classifier_gain.Split(
        seed=0,
        fold=0,
        minority=[0],
        train_idx=np.array([0, 1, 4, 5, 6]),  # class 0 cut to recordists 10 and 11
        full_train_idx=np.array([0, 1, 2, 3, 4, 5, 6]),
        test_idx=np.array([7]),
    )
    validation = classifier_gain.validation_split(split, Corpus())
    # Clip 2 is cut but shares recordist 10 with a kept clip: only clip 3 is new.
    assert validation.test_idx.tolist() == [3]
    assert validation.train_idx.tolist() == split.train_idx.tolist()


def test_a_collapsed_species_model_is_reported_cached_and_gets_no_songs(tmp_path, monkeypatch):
    from classifier_gain.classifiers import ClipDataset

    import ddsp_augment.training.train

    calls = []

    def collapse(recordings, directory, settings, **kwargs):
        calls.append(directory)
        raise ddsp_augment.training.train.CollapseError("B: no epoch produced a usable model")

    monkeypatch.setattr(ddsp_augment.training.train, "train_species", collapse)
    waveforms, labels = _tiny_corpus()
    split = classifier_gain.TrainingSplit(
        dataset=ClipDataset(waveforms, labels),
        names=[f"{'AB'[label]}/{i}.wav" for i, label in enumerate(labels)],
        data_root=tmp_path,
        recordists=[f"r{i}" for i in range(len(labels))],
        classes=["A", "B"],
        minority=[1],
        n_synthetic={1: 1},
        seed=0,
        cache_dir=tmp_path / "split",
        options={},
        model_root=tmp_path / "models",
    )
    assert classifier_gain.ddsp_training_set(split) is split.dataset
    assert split.model_failures == {"B": "B: no epoch produced a usable model"}
    assert (calls[0] / "FAILED.txt").is_file()
    split.model_failures.clear()
    classifier_gain.ddsp_training_set(split)  # the failure is cached, not retrained
    assert len(calls) == 1 and split.model_failures == {"B": "B: no epoch produced a usable model"}
