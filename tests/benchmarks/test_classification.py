import math
import pickle

import numpy as np
import pytest
import torch
from classifier_gain.classifiers import (
    ClipDataset,
    CNNClipClassifier,
    FeatureConfig,
    LinearClipClassifier,
    LogMelCache,
    _windows,
    class_recall,
    classification_scores,
    gap_recovered,
    make_classifier,
    paired_bootstrap_ci,
    set_epoch,
)

SR = 32000


def test_scores_on_hand_computed_case():
    # class 0: TP 1, FP 1 (true 2), FN 1 -> P 1/2, R 1/2, F1 1/2
    # class 1: TP 2, FP 1 (true 0), FN 0 -> P 2/3, R 1,   F1 4/5
    # class 2: TP 1, FP 0,          FN 1 -> P 1,   R 1/2, F1 2/3
    # class 3: absent from y_true -> excluded from every average
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    scores = classification_scores(y_true, y_pred, minority=[2, 3], n_classes=4)
    assert scores["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert scores["balanced_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert scores["minority_recall"] == pytest.approx(1 / 2)
    assert scores["majority_recall"] == pytest.approx((1 / 2 + 1) / 2)
    np.testing.assert_allclose(scores["per_class_recall"], [0.5, 1.0, 0.5, np.nan])


def test_scores_without_minority_in_test():
    scores = classification_scores([0, 1], [0, 0], minority=[2], n_classes=3)
    assert math.isnan(scores["minority_recall"])
    assert scores["majority_recall"] == pytest.approx(0.5)
    np.testing.assert_allclose(class_recall([0, 1], [0, 0], 3), [1.0, 0.0, np.nan])


def test_paired_bootstrap_ci():
    assert paired_bootstrap_ci([0.1] * 5, n_boot=200, seed=0) == pytest.approx((0.1, 0.1, 0.1))
    diffs = np.array([0.05, -0.02, 0.10, 0.01, 0.04, 0.07, np.nan])
    mean, lo, hi = paired_bootstrap_ci(diffs, n_boot=2000, seed=1)
    assert mean == pytest.approx(np.nanmean(diffs))
    assert lo < mean < hi and lo >= -0.02 and hi <= 0.10
    assert paired_bootstrap_ci(diffs, n_boot=2000, seed=1) == (mean, lo, hi)
    assert all(math.isnan(v) for v in paired_bootstrap_ci([np.nan], n_boot=10))


def test_gap_recovered():
    assert gap_recovered(0.15, baseline=0.1, oracle=0.3) == pytest.approx(0.25)
    assert gap_recovered(0.05, baseline=0.1, oracle=0.3) == pytest.approx(-0.25)
    assert math.isnan(gap_recovered(0.2, baseline=0.3, oracle=0.3))


def test_windows_cover_the_whole_clip():
    logmel = torch.arange(10.0).repeat(2, 1)  # [2 mels, 10 frames]
    assert _windows(logmel, length=4, hop=3).shape == (3, 2, 4)  # starts 0, 3, 6: all covered
    windows = _windows(logmel, length=4, hop=4)
    assert windows.shape == (3, 2, 4)  # starts 0, 4 and one aligned with the end
    assert windows[-1, 0].tolist() == [6, 7, 8, 9]
    assert _windows(logmel, length=20, hop=3).shape == (1, 2, 10)


def _tones(n_per_class: int, seed: int) -> tuple[list[torch.Tensor], list[int]]:
    """Two classes: noisy 2 kHz vs 5 kHz tones of random length and level."""
    rng = np.random.default_rng(seed)
    waveforms, labels = [], []
    for label, hz in enumerate((2000.0, 5000.0)):
        for _ in range(n_per_class):
            t = np.arange(int(rng.uniform(2.0, 5.0) * SR)) / SR
            audio = rng.uniform(0.05, 0.5) * np.sin(2 * np.pi * hz * t + rng.uniform(0, 6))
            audio += 0.01 * rng.standard_normal(t.size)
            waveforms.append(torch.from_numpy(audio.astype(np.float32))[None])
            labels.append(label)
    return waveforms, labels


def test_clip_dataset_items():
    waveforms, labels = _tones(2, seed=0)
    dataset = ClipDataset(waveforms, labels, SR)
    waveform, sample_rate, label = dataset[3]
    assert waveform.shape[0] == 1 and waveform.dtype == torch.float32
    assert (sample_rate, label) == (SR, 1) and dataset.targets == [0, 0, 1, 1]
    assert waveform is dataset[3][0]  # stored tensor, no copy
    with pytest.raises(ValueError):
        ClipDataset(waveforms, labels[:-1])


def test_log_mel_cache():
    cache = LogMelCache()
    waveforms, _ = _tones(1, seed=0)
    cache.add(waveforms)
    first = cache(waveforms[0])
    assert first is cache(waveforms[0].clone())  # content-keyed
    assert first.shape[0] == 64
    assert torch.allclose(cache(waveforms[1]), cache.compute(waveforms[1][0]))


def test_log_mel_cache_finds_added_clips_and_their_views_without_hashing(monkeypatch):
    import classifier_gain.classifiers as classifiers

    cache = LogMelCache()
    waveforms, _ = _tones(1, seed=0)
    cache.add(waveforms)
    kept = [cache(w) for w in waveforms]
    # In a joblib worker: the clips and the cache arrive in one pickle, addresses change.
    moved, moved_cache = pickle.loads(pickle.dumps((waveforms, cache)))

    def no_hash(*_):
        raise AssertionError("hashed a clip found by address")

    monkeypatch.setattr(classifiers, "_content_key", no_hash)
    for original, clip, logmel in zip(waveforms, moved, kept, strict=True):
        assert cache(original) is logmel
        assert cache(original.reshape(-1)) is logmel  # a view: ClipDataset's reshape
        assert torch.equal(moved_cache(clip), logmel)
    with pytest.raises(AssertionError, match="hashed"):  # a copy is looked up by content
        cache(waveforms[0].clone())
    monkeypatch.undo()
    assert cache(waveforms[0].clone()) is kept[0]
    fresh = waveforms[0] * 0.5  # not added: computed, not stored
    assert torch.allclose(cache(fresh), cache.compute(fresh[0]))
    assert len(cache._store) == 2


@pytest.mark.parametrize("name", ["linear", "cnn"])
def test_classifiers_learn_tones(name, one_torch_thread):
    train = ClipDataset(*_tones(6, seed=1), SR)
    test_waveforms, test_labels = _tones(3, seed=2)
    short = FeatureConfig(crop_seconds=1.0)
    options = {"steps": 40, "batch_size": 8, "config": short} if name == "cnn" else {}
    classifier = make_classifier(name, n_classes=3, seed=0, **options).fit(train)
    assert isinstance(classifier, CNNClipClassifier if name == "cnn" else LinearClipClassifier)
    proba = classifier.predict_proba(test_waveforms)
    assert proba.shape == (6, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    if name == "linear":
        assert (proba[:, 2] == 0).all()  # class never seen in training
    assert (proba.argmax(1) == np.array(test_labels)).mean() >= 5 / 6


def test_cnn_trains_in_either_precision_and_auto_follows_the_hardware(one_torch_thread):
    import classifier_gain.classifiers as classifiers

    train = ClipDataset(*_tones(6, seed=1), SR)
    test_waveforms, test_labels = _tones(3, seed=2)
    short = FeatureConfig(crop_seconds=1.0)
    for precision in ("float32", "bfloat16"):
        cnn = CNNClipClassifier(3, steps=40, batch_size=8, config=short, precision=precision)
        assert cnn.precision == precision
        proba = cnn.fit(train).predict_proba(test_waveforms)
        assert proba.dtype == np.float64
        np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
        assert (proba.argmax(1) == np.array(test_labels)).mean() >= 5 / 6
    native = classifiers._native_bfloat16(torch.device("cpu"))
    assert CNNClipClassifier(3, device="cpu").precision == ("bfloat16" if native else "float32")
    assert classifiers._native_bfloat16(torch.device("cuda"))
    with pytest.raises(ValueError, match="precision"):
        CNNClipClassifier(3, precision="float16")


def test_classifier_rejects_wrong_rate():
    waveforms, labels = _tones(2, seed=0)
    with pytest.raises(ValueError, match="Hz"):
        LinearClipClassifier(2).fit(ClipDataset(waveforms, labels, 16000))
    with pytest.raises(ValueError):
        make_classifier("svm", 2, seed=0)


class _EpochRecorder(ClipDataset):
    """Records the epoch of every item access."""

    def __init__(self, *args):
        super().__init__(*args)
        self.epoch = 0
        self.seen = []

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, index):
        self.seen.append(self.epoch)
        return super().__getitem__(index)


def test_set_epoch_reaches_datasets_inside_concat_datasets():
    inner = _EpochRecorder(*_tones(1, seed=0), SR)
    plain = ClipDataset(*_tones(1, seed=1), SR)
    set_epoch(torch.utils.data.ConcatDataset([plain, torch.utils.data.ConcatDataset([inner])]), 3)
    assert inner.epoch == 3


@pytest.mark.parametrize("name", ["linear", "cnn"])
def test_classifiers_visit_every_item_once_per_epoch(name, one_torch_thread):
    data = _EpochRecorder(*_tones(3, seed=1), SR)  # 6 items
    if name == "linear":
        LinearClipClassifier(3, epochs=3).fit(data)
        assert data.seen == [0] * 6 + [1] * 6 + [2] * 6
    else:
        short = FeatureConfig(crop_seconds=1.0)
        CNNClipClassifier(3, steps=5, batch_size=4, crops_per_item=2, config=short).fit(data)
        # 6 items x 2 crops = 3 batches of 4 per epoch; 5 steps need 2 epochs, each item read
        # once per epoch.
        assert data.seen == [0] * 6 + [1] * 6
