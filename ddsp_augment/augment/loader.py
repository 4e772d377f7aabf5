"""`balance_loader`: a user's DataLoader, balanced in one line, every setting carried over.

Example::

    loader = DataLoader(my_dataset, batch_size=32, shuffle=True, num_workers=2)
    loader = balance_loader(loader, "models/", target="max", seed=0)
    for epoch in range(10):
        for waveform, sample_rate, label in loader:   # fresh synthetic songs each epoch
            ...

The new loader's samplers index the balanced dataset: a shuffling ``RandomSampler`` (with its
``replacement``, ``num_samples`` and generator), a ``SequentialSampler`` and a
``DistributedSampler`` (same replicas, rank, shuffle, seed, drop_last, epoch) are rebuilt for the
new length, and a plain ``BatchSampler`` around one of them too. A ``WeightedRandomSampler`` is
refused: it already re-weights the classes, and balancing them twice over-corrects. Other samplers
index the original dataset in ways that cannot be carried to the new one and are refused with the
setting to pass instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    WeightedRandomSampler,
)

from ..sampling.bank import SpeciesBank
from .dataset import DDSPBalancedDataset, Target, _base_dataset

__all__ = ["CARRIED_SETTINGS", "BalancedDataLoader", "balance_loader"]

#: DataLoader arguments copied as they are; ``dataset``, ``shuffle``, ``sampler`` and
#: ``batch_sampler`` are rebuilt for the balanced dataset.
CARRIED_SETTINGS = (
    "batch_size",
    "num_workers",
    "collate_fn",
    "pin_memory",
    "drop_last",
    "timeout",
    "worker_init_fn",
    "multiprocessing_context",
    "generator",
    "prefetch_factor",
    "persistent_workers",
    "pin_memory_device",
    "in_order",
)
_SUPPORTED = "shuffle=True/False, a RandomSampler, a SequentialSampler or a DistributedSampler"


def _rebuilder(sampler: Sampler, setting: str) -> Callable[[Dataset], Sampler]:
    """How to build ``sampler`` again over another dataset; a ValueError if it cannot be."""
    kind = type(sampler)
    if kind is RandomSampler:
        return lambda dataset: RandomSampler(
            dataset,
            replacement=sampler.replacement,
            # An explicit count of draws per epoch stays; None follows the new length.
            num_samples=sampler._num_samples,
            generator=sampler.generator,
        )
    if kind is SequentialSampler:
        return SequentialSampler
    if kind is DistributedSampler:

        def distributed(dataset: Dataset) -> DistributedSampler:
            rebuilt = DistributedSampler(
                dataset,
                num_replicas=sampler.num_replicas,
                rank=sampler.rank,
                shuffle=sampler.shuffle,
                seed=sampler.seed,
                drop_last=sampler.drop_last,
            )
            rebuilt.set_epoch(sampler.epoch)
            return rebuilt

        return distributed
    if isinstance(sampler, WeightedRandomSampler):
        raise ValueError(
            f"{setting}=WeightedRandomSampler already re-weights the classes; balancing them "
            "again with synthetic songs over-corrects. Pass shuffle=True (or a RandomSampler) "
            "to the original DataLoader, or build DDSPBalancedDataset(dataset, ...) and weight "
            "its len() items yourself"
        )
    raise ValueError(
        f"{setting}={kind.__name__} indexes the original dataset and cannot be rebuilt for the "
        f"balanced one (synthetic items are appended after the real ones); give the original "
        f"DataLoader {_SUPPORTED}, or build DDSPBalancedDataset(dataset, ...) and a DataLoader "
        "with your sampler over it"
    )


class BalancedDataLoader(DataLoader):
    """A DataLoader over a :class:`DDSPBalancedDataset` that sets the epoch on every pass.

    Each ``iter(loader)`` is one epoch: the ``k``-th pass draws the synthetic songs of epoch
    ``k`` and shuffles a ``DistributedSampler`` for epoch ``k``, with no call needed. An explicit
    ``set_epoch(e)`` before a pass is followed instead, and counting goes on from ``e + 1``: on
    this loader or its dataset (always), or on a ``DistributedSampler`` (this loader's, or the one
    the original loader had) when it changes that sampler's epoch. Training loops that already
    call ``sampler.set_epoch(epoch)`` therefore keep working, resumed runs included.

    Args:
        dataset: The balanced dataset.
        *args, **kwargs: ``DataLoader``'s arguments.
        source_sampler: The original loader's ``DistributedSampler``, whose ``set_epoch`` calls
            the user's loop may still make.
    """

    def __init__(
        self,
        dataset: DDSPBalancedDataset,
        *args: Any,
        source_sampler: DistributedSampler | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, *args, **kwargs)
        self._source_sampler = source_sampler
        # A sampler already set to epoch e (a resumed run) starts the count there.
        self._next_epoch = dataset.epoch if source_sampler is None else source_sampler.epoch
        self._marks = self._epoch_marks()

    def _distributed(self) -> DistributedSampler | None:
        """The sampler that draws indices (inside a batch sampler if any), if distributed."""
        sampler = self.batch_sampler.sampler if self.batch_sampler is not None else self.sampler
        return sampler if isinstance(sampler, DistributedSampler) else None

    def _epoch_marks(self) -> tuple[int, int | None, int | None]:
        """What an explicit ``set_epoch`` changes: the dataset's call count, samplers' epochs."""
        distributed, source = self._distributed(), self._source_sampler
        return (
            # Read in the main process, where the user's calls happen.
            self.dataset._epoch_calls,
            None if distributed is None else distributed.epoch,
            None if source is None else source.epoch,
        )

    def _pass_epoch(self) -> int:
        calls, distributed_epoch, source_epoch = self._marks
        distributed, source = self._distributed(), self._source_sampler
        if self.dataset._epoch_calls != calls:
            return self.dataset.epoch
        if distributed is not None and distributed.epoch != distributed_epoch:
            return distributed.epoch
        if source is not None and source.epoch != source_epoch:
            return source.epoch
        return self._next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next pass (an int in [0, 2**63))."""
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        epoch = self._pass_epoch()
        self.dataset.set_epoch(epoch)
        distributed = self._distributed()
        if distributed is not None:
            distributed.set_epoch(epoch)
        self._next_epoch = epoch + 1
        self._marks = self._epoch_marks()
        return super().__iter__()


def balance_loader(
    loader: DataLoader,
    bank: SpeciesBank | str | Path,
    target: Target = "max",
    *,
    seed: int = 0,
    **options: Any,
) -> BalancedDataLoader:
    """``loader`` over its dataset balanced with synthetic songs, every setting carried over.

    The new loader iterates ``DDSPBalancedDataset(loader.dataset, bank, target, seed=seed,
    **options)`` (its ``dataset``) with the original's batch
    size, workers, collate function, pin memory, persistent workers, drop_last, worker init,
    generator, timeout, prefetch factor and multiprocessing context (:data:`CARRIED_SETTINGS`).
    Its sampler is rebuilt for the new length (module docstring: which samplers can be) and it
    draws fresh synthetic songs each epoch by itself (:class:`BalancedDataLoader`).

    Args:
        loader: The DataLoader to balance, over a map-style dataset.
        bank: A :class:`SpeciesBank` or the path of one.
        target: Items per class after balancing (see :class:`DDSPBalancedDataset`).
        seed: Base seed of all synthetic items.
        **options: Further keyword arguments of :class:`DDSPBalancedDataset` (``scene``,
            ``label_to_species``, ``layout``, ``cache_dir``...).

    Raises:
        TypeError: ``loader`` is not a DataLoader, or its dataset is an ``IterableDataset``.
        ValueError: A sampler or batch sampler that cannot be rebuilt (the message names the
            setting and what to pass instead), or a dataset that is already balanced.
    """
    if not isinstance(loader, DataLoader):
        raise TypeError(f"loader must be a torch DataLoader, got {type(loader).__name__}")
    if isinstance(loader.dataset, DDSPBalancedDataset):
        raise ValueError(
            "the loader's dataset is already a DDSPBalancedDataset: balance the dataset once"
        )
    _base_dataset(loader)  # an IterableDataset fails here, before any item is read
    batch_sampler = loader.batch_sampler
    custom_batches = loader.batch_size is None and batch_sampler is not None
    if custom_batches and type(batch_sampler) is not BatchSampler:
        raise ValueError(
            f"batch_sampler={type(batch_sampler).__name__} cannot be rebuilt for the balanced "
            f"dataset; give the original DataLoader batch_size= with {_SUPPORTED}, or build a "
            "DataLoader with your batch sampler over DDSPBalancedDataset(dataset, ...)"
        )
    index_sampler = batch_sampler.sampler if custom_batches else loader.sampler
    setting = "batch_sampler=BatchSampler around sampler" if custom_batches else "sampler"
    rebuild = _rebuilder(index_sampler, setting)

    balanced = DDSPBalancedDataset(loader.dataset, bank, target, seed=seed, **options)
    settings = {name: getattr(loader, name) for name in CARRIED_SETTINGS}
    sampler = rebuild(balanced)
    if custom_batches:
        settings.update(batch_size=1, drop_last=False)
        sampling = {
            "batch_sampler": BatchSampler(
                sampler, batch_sampler.batch_size, batch_sampler.drop_last
            )
        }
    else:
        sampling = {"sampler": sampler}
    source = index_sampler if isinstance(index_sampler, DistributedSampler) else None
    return BalancedDataLoader(balanced, source_sampler=source, **settings, **sampling)
