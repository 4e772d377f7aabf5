"""The classifier benchmark's conditions and protocol (its splits and metrics live in
test_splits and test_classification): classic copies, the extra clips of the balancing
conditions, validation splits, the DDSP training set."""

from __future__ import annotations

import numpy as np
import torch
from classifier_gain.classifiers import ClipDataset, set_epoch
from classifier_gain.conditions import ddsp_training_set, extra_clips
from classifier_gain.protocol import Split, validation_split


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
    plain = extra_clips(corpus, train_idx, {1: 5}, augment=False, seed=0)
    assert plain.targets == [1] * 5
    sources = [corpus.waveforms[3], corpus.waveforms[4]] * 3
    for j in range(5):
        assert torch.equal(plain[j][0], sources[j])


def test_classic_copies_are_fresh_each_epoch_and_repeat_for_a_seed():
    corpus = _Corpus()
    copies = extra_clips(corpus, np.arange(5), {0: 4}, augment=True, seed=7)
    again = extra_clips(corpus, np.arange(5), {0: 4}, augment=True, seed=7)
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

    split = Split(
        seed=0,
        fold=0,
        minority=[0],
        train_idx=np.array([0, 1, 4, 5, 6]),  # class 0 cut to recordists 10 and 11
        full_train_idx=np.array([0, 1, 2, 3, 4, 5, 6]),
        test_idx=np.array([7]),
    )
    validation = validation_split(split, Corpus())
    # Clip 2 is cut but shares recordist 10 with a kept clip: only clip 3 is new.
    assert validation.test_idx.tolist() == [3]
    assert validation.train_idx.tolist() == split.train_idx.tolist()


def test_ddsp_training_set_without_any_model_is_the_real_set(tmp_path, monkeypatch):
    from ddsp_augment.augment import bank_builder
    from ddsp_augment.training.train import CollapseError

    calls = []

    def collapse(recordings, directory, settings, **kwargs):
        calls.append(recordings[0].species)
        raise CollapseError("B: no epoch produced a usable model")

    monkeypatch.setattr(bank_builder, "train_species", collapse)
    waveforms, labels = _tiny_corpus()
    base = ClipDataset(waveforms, labels)
    arguments = dict(
        names=[f"{'AB'[label]}/{i}.wav" for i, label in enumerate(labels)],
        recordists=[f"r{i}" for i in range(len(labels))],
        classes=["A", "B"],
        n_synthetic={1: 1},
        seed=0,
        model_root=tmp_path,
        options={"train": {"threads": 1}},
    )
    dataset, failures = ddsp_training_set(base, **arguments)
    assert dataset is base
    assert failures == {"B": "B: no epoch produced a usable model"}
    assert calls == ["B"]  # only the class that needs songs is trained
    again, failures = ddsp_training_set(base, **arguments)  # cached failure: no retraining
    assert again is base and failures == {"B": "B: no epoch produced a usable model"}
    assert calls == ["B"]
