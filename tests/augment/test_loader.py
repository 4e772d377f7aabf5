"""`balance_loader`: a DataLoader back balanced, settings carried, samplers rebuilt or refused."""

import inspect
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

from ddsp_augment import DDSPBalancedDataset, balance_loader
from ddsp_augment.augment.loader import CARRIED_SETTINGS, BalancedDataLoader

RATE = 16000
# Real items: 5 Parus major, 2 Fringilla coelebs, 2 of a species the bank has no model of.
# target="max" adds 3 Fringilla songs: 12 items, Parus 5 / Fringilla 5 / Turdus 2.
LABELS = ["Parus_major"] * 5 + ["Fringilla_coelebs"] * 2 + ["Turdus_merula"] * 2
COUNTS = {"Parus_major": 5, "Fringilla_coelebs": 5, "Turdus_merula": 2}


class TinyClips(Dataset):
    """``(waveform [1, time], 16000, label, name)``: quiet noise of 0.19-0.21 s, varied lengths."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.items = [
            (
                torch.from_numpy(0.01 * rng.standard_normal(3000 + 100 * (i % 5)).astype("f4"))[
                    None
                ],
                RATE,
                label,
                f"clip{i}",
            )
            for i, label in enumerate(LABELS)
        ]
        self.targets = list(LABELS)
        self.reads = 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        self.reads += 1
        return self.items[index]


class Stream(IterableDataset):
    def __iter__(self):
        return iter([])


def pad_collate(batch):
    """Pad waveforms to the batch's longest: {"audio": [B, 1, T], "lengths", "labels", flag}."""
    lengths = torch.tensor([item[0].shape[-1] for item in batch])
    audio = torch.zeros(len(batch), 1, int(lengths.max()))
    for i, item in enumerate(batch):
        audio[i, :, : item[0].shape[-1]] = item[0]
    return {
        "audio": audio,
        "lengths": lengths,
        "labels": [item[2] for item in batch],
        "synthetic": torch.tensor([item[-1] for item in batch]),
    }


def seed_worker(worker_id):
    np.random.seed(torch.initial_seed() % 2**32)  # noqa: NPY002 - the usual recipe


def balanced_loader(loader, bank_path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Turdus merula has no model: expected
        return balance_loader(loader, bank_path, target="max", seed=0, progress=False, **options)


def test_every_dataloader_argument_is_carried_or_rebuilt():
    parameters = set(inspect.signature(DataLoader.__init__).parameters) - {"self"}
    assert parameters == {*CARRIED_SETTINGS, "dataset", "shuffle", "sampler", "batch_sampler"}


def test_loader_with_workers_comes_back_balanced_with_its_settings(small_bank_path):
    generator = torch.Generator().manual_seed(0)
    original = DataLoader(
        TinyClips(),
        batch_size=3,
        shuffle=True,
        num_workers=2,
        persistent_workers=True,
        collate_fn=pad_collate,
        drop_last=True,
        worker_init_fn=seed_worker,
        generator=generator,
        timeout=60,
        prefetch_factor=3,
        multiprocessing_context="fork",
    )
    loader = balanced_loader(original, small_bank_path, return_synthetic_flag=True)
    assert isinstance(loader, BalancedDataLoader) and isinstance(
        loader.dataset, DDSPBalancedDataset
    )
    for name in CARRIED_SETTINGS:
        assert getattr(loader, name) is getattr(original, name) or (
            getattr(loader, name) == getattr(original, name)
        ), name
    assert loader.collate_fn is pad_collate and loader.generator is generator
    assert type(loader.sampler) is RandomSampler and loader.sampler.generator is generator
    assert len(loader.dataset) == 12 and len(loader) == 4

    epochs = []
    for epoch in range(2):
        batches = list(loader)
        assert loader.dataset.epoch == epoch
        assert len(batches) == 4
        for batch in batches:
            assert batch["audio"].shape == (3, 1, int(batch["lengths"].max()))
            assert batch["lengths"].min() >= 3000 and batch["lengths"].max() <= 3400
        labels = Counter(label for batch in batches for label in batch["labels"])
        assert labels == COUNTS
        synthetic = [
            batch["audio"][i, 0, : batch["lengths"][i]]
            for batch in batches
            for i in torch.nonzero(batch["synthetic"]).flatten()
        ]
        assert len(synthetic) == 3
        epochs.append(synthetic)
        if epoch == 0:
            workers = loader._iterator
    assert loader._iterator is workers  # persistent workers served both epochs
    for song in epochs[1]:
        assert all(song.shape != old.shape or not torch.equal(song, old) for old in epochs[0])


def test_drop_last_drops_the_balanced_remainder(small_bank_path):
    labels_only = lambda batch: [item[2] for item in batch]  # noqa: E731
    original = DataLoader(TinyClips(), batch_size=5, drop_last=True, collate_fn=labels_only)
    loader = balanced_loader(original, small_bank_path, scene=None)
    batches = list(loader)
    assert type(loader.sampler) is SequentialSampler
    assert [len(b) for b in batches] == [5, 5]  # 12 items: the last 2 dropped
    # In order: the 9 real items, then the synthetic ones grouped by class.
    assert [label for b in batches for label in b] == LABELS + ["Fringilla_coelebs"]


def test_random_sampler_settings_are_rebuilt(small_bank_path):
    generator = torch.Generator().manual_seed(1)
    dataset = TinyClips()
    sampler = RandomSampler(dataset, replacement=True, num_samples=7, generator=generator)
    loader = balanced_loader(DataLoader(dataset, sampler=sampler, batch_size=None), small_bank_path)
    rebuilt = loader.sampler
    assert type(rebuilt) is RandomSampler and rebuilt is not sampler
    assert rebuilt.replacement and rebuilt.num_samples == 7 and rebuilt.generator is generator
    assert len(loader) == 7 and loader.batch_size is None
    assert all(0 <= i < 12 for i in rebuilt)


def test_plain_batch_sampler_is_rebuilt(small_bank_path):
    dataset = TinyClips()
    batches = BatchSampler(SequentialSampler(dataset), batch_size=4, drop_last=False)
    loader = balanced_loader(DataLoader(dataset, batch_sampler=batches), small_bank_path)
    assert type(loader.batch_sampler) is BatchSampler and loader.batch_sampler is not batches
    assert list(loader.batch_sampler) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_distributed_sampler_is_rebuilt_and_follows_epochs(small_bank_path):
    dataset = TinyClips()
    originals = [
        DistributedSampler(dataset, num_replicas=2, rank=r, shuffle=True, seed=7, drop_last=False)
        for r in range(2)
    ]
    loaders = [
        balanced_loader(DataLoader(dataset, sampler=s, batch_size=2), small_bank_path, scene=None)
        for s in originals
    ]
    for loader, original in zip(loaders, originals, strict=True):
        rebuilt = loader.sampler
        assert type(rebuilt) is DistributedSampler and rebuilt is not original
        settings = ("num_replicas", "rank", "shuffle", "seed", "drop_last")
        assert [getattr(rebuilt, k) for k in settings] == [getattr(original, k) for k in settings]
    for epoch in range(2):
        seen = []
        for loader in loaders:
            iter(loader)  # starting a pass sets the epoch of the sampler and the dataset
            assert loader.sampler.epoch == epoch and loader.dataset.epoch == epoch
            seen += list(loader.sampler)
        assert sorted(seen) == list(range(12))  # every balanced item once per epoch
    orders = [list(loaders[0].sampler)]
    # A loop that calls set_epoch on the sampler it made (the original) still drives the epoch.
    originals[0].set_epoch(5)
    iter(loaders[0])
    assert loaders[0].sampler.epoch == 5 and loaders[0].dataset.epoch == 5
    orders.append(list(loaders[0].sampler))
    assert orders[0] != orders[1]
    # A sampler set before balancing (a resumed run) starts the count at its epoch.
    resumed = DistributedSampler(dataset, num_replicas=2, rank=0, seed=7)
    resumed.set_epoch(3)
    loader = balanced_loader(DataLoader(dataset, sampler=resumed), small_bank_path, scene=None)
    iter(loader)
    assert loader.sampler.epoch == 3 and loader.dataset.epoch == 3
    expected = DistributedSampler(loader.dataset, num_replicas=2, rank=0, seed=7)
    expected.set_epoch(3)
    assert list(loader.sampler) == list(expected)


def test_explicit_set_epoch_chooses_the_next_pass(small_bank_path):
    loader = balanced_loader(DataLoader(TinyClips(), batch_size=4), small_bank_path, scene=None)
    epochs = []
    for action in [None, None, ("loader", 7), None, ("dataset", 3), ("dataset", 3), None]:
        if action is not None:
            target, epoch = action
            (loader if target == "loader" else loader.dataset).set_epoch(epoch)
        iter(loader)
        epochs.append(loader.dataset.epoch)
    assert epochs == [0, 1, 7, 8, 3, 3, 4]
    with pytest.raises(TypeError, match="epoch"):
        loader.set_epoch(1.5)


def test_dataset_accepts_a_dataloader(small_bank_path):
    dataset = TinyClips()
    loader = DataLoader(dataset, batch_size=4, shuffle=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_loader = DDSPBalancedDataset(loader, small_bank_path, seed=0, progress=False)
        direct = DDSPBalancedDataset(dataset, small_bank_path, seed=0, progress=False)
    assert from_loader.dataset is dataset
    assert from_loader.class_counts() == direct.class_counts()
    assert torch.equal(from_loader[11][0], direct[11][0])


class SubsetBatches(BatchSampler):
    pass


@pytest.mark.parametrize(
    ("make_loader", "error", "message"),
    [
        (
            lambda d: DataLoader(d, sampler=WeightedRandomSampler([1.0] * len(d), len(d))),
            ValueError,
            "sampler=WeightedRandomSampler already re-weights",
        ),
        (
            lambda d: DataLoader(d, sampler=SubsetRandomSampler([0, 1, 2])),
            ValueError,
            "sampler=SubsetRandomSampler .* shuffle=True",
        ),
        (
            lambda d: DataLoader(d, batch_sampler=SubsetBatches(SequentialSampler(d), 2, False)),
            ValueError,
            "batch_sampler=SubsetBatches cannot be rebuilt .* batch_size=",
        ),
        (
            lambda d: DataLoader(
                d, batch_sampler=BatchSampler(SubsetRandomSampler([0, 1]), 2, False)
            ),
            ValueError,
            "batch_sampler=BatchSampler around sampler=SubsetRandomSampler",
        ),
        (lambda d: DataLoader(Stream()), TypeError, "IterableDataset .* map-style"),
        (lambda d: "not a loader", TypeError, "loader must be a torch DataLoader"),
    ],
)
def test_refused_loaders_name_the_setting(small_bank_path, make_loader, error, message):
    dataset = TinyClips()
    with pytest.raises(error, match=message):
        balance_loader(make_loader(dataset), small_bank_path)
    assert dataset.reads == 0  # refused before any item is read


def test_iterable_dataset_and_double_balancing_are_refused(small_bank_path):
    with pytest.raises(TypeError, match="behind the DataLoader is an IterableDataset"):
        DDSPBalancedDataset(DataLoader(Stream()), small_bank_path)
    loader = balanced_loader(DataLoader(TinyClips()), small_bank_path, scene=None)
    with pytest.raises(ValueError, match="already a DDSPBalancedDataset"):
        balance_loader(DataLoader(loader.dataset), small_bank_path)
