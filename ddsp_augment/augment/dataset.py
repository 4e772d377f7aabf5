"""`DDSPBalancedDataset`: a drop-in `torch.utils.data.Dataset` wrapper that tops up rare classes
with songs synthesised by their species models.

Example::

    loader = DataLoader(my_dataset, batch_size=32, shuffle=True, num_workers=2)
    balanced = DDSPBalancedDataset(loader, "models/", target="max", seed=0)  # or my_dataset
    print(balanced.class_counts())

`balance_loader` (``augment/loader.py``) gives the DataLoader back balanced in one line.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import multiprocessing
import numbers
import operator
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from multiprocessing.context import get_spawning_popen
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm

from .. import __version__
from ..checks import Backend, NoiseSource, check_backend, check_noise
from ..sampling.bank import SpeciesBank
from ..sampling.gate import Judge
from ..sampling.jitter import JitterConfig
from ..sampling.scene import SceneConfig
from .backgrounds import check_noise_floors, measure_dataset_backgrounds
from .layout import ItemLayout, append_flag, check_sample_rate, plain_label
from .wav_cache import SongCache

__all__ = ["DEFAULT_SCENE", "ClassCount", "DDSPBalancedDataset"]

Target = Literal["max", "mean"] | int | float | Mapping[Hashable, int]
Backgrounds = Literal["dataset", "species"] | np.ndarray
LabelToSpecies = Mapping[Hashable, str] | Callable[[Hashable], str | None]

#: The scene that measured best for classifier training (benchmarks/classifier_gain.py, README):
#: the song over a measured background, 1-3x as far as recorded (0-9.5 dB quieter, upper
#: partials fading with air absorption), with reverb.
DEFAULT_SCENE = SceneConfig(background="measured", distance_m=(1.0, 3.0), rt60_s=(0.2, 1.0))
_MAX_EPOCH = 2**63 - 1  # the epoch is shared with workers as a signed 64-bit integer


class ClassCount(NamedTuple):
    """Items of one class: ``real`` from the wrapped dataset, ``synthetic`` added by the wrapper."""

    real: int
    synthetic: int

    @property
    def total(self) -> int:
        return self.real + self.synthetic


class _Template(NamedTuple):
    """What a synthetic item copies from a real item of its class (waveform left out)."""

    item: Any
    channels: int | None  # None: the real waveform is 1-D [time]
    n_samples: int
    sample_rate: int
    dtype: Any
    is_tensor: bool


def _whole_number(value: Any, name: str, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; a TypeError for non-integers (1.7, True)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _scene_repr(scene: SceneConfig | None) -> str:
    """``SceneConfig(...)`` with only the fields that differ from the defaults (a short repr)."""
    if scene is None:
        return "None"
    default = SceneConfig()
    changed = [
        f"{f.name}={getattr(scene, f.name)!r}"
        for f in dataclasses.fields(scene)
        if getattr(scene, f.name) != getattr(default, f.name)
    ]
    return f"SceneConfig({', '.join(changed)})"


def _base_dataset(dataset: Dataset | DataLoader) -> Dataset:
    """The map-style dataset to balance: ``dataset`` itself, or the one behind a DataLoader."""
    behind = " behind the DataLoader" if isinstance(dataset, DataLoader) else ""
    if isinstance(dataset, DataLoader):
        dataset = dataset.dataset
    if isinstance(dataset, IterableDataset):
        raise TypeError(
            f"the dataset{behind} is an IterableDataset ({type(dataset).__name__}): balancing "
            "needs every item's label up front; pass a map-style dataset (with __getitem__ "
            "and __len__)"
        )
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"the dataset{behind} must be map-style (with __getitem__ and __len__), "
            f"got {type(dataset).__name__}"
        )
    return dataset


class DDSPBalancedDataset(Dataset):
    """Wrap a map-style dataset and append synthetic items so that classes reach ``target``.

    Indices ``[0, len(dataset))`` are the real items, untouched. Indices from ``len(dataset)`` on
    are synthetic, grouped by class in :attr:`classes` order (``k``-th synthetic item of a class at
    ``len(dataset) + offset[class] + k``). A synthetic item copies a real item of its class,
    drawn deterministically among the class's items, and replaces its waveform by a new song of
    the class's species of the same duration (or ``seconds``), sample rate and channel count (the
    mono song is copied to every channel); every other field (label, ids, paths) is the real
    item's. Templates are cached per process, so a real item is decoded at most once per worker.

    Randomness depends only on ``(seed, epoch, index)``: items are identical whatever the
    ``num_workers``, sampler or process, and :meth:`set_epoch` draws fresh songs. The epoch lives in
    shared memory, so persistent workers see ``set_epoch`` calls made between epochs.

    The defaults are the settings that helped a classifier most in
    ``benchmarks/classifier_gain.py``: songs over the noise floors of the whole dataset
    (``backgrounds="dataset"``), 1-3x as far as recorded, with reverb (:data:`DEFAULT_SCENE`).

    Args:
        dataset: Map-style dataset, or a ``DataLoader`` over one (its dataset is balanced; use
            `balance_loader` to get a loader back). Items are torchaudio-style tuples
            ``(waveform [channels, time], sample_rate, label, ...)`` or dicts with keys
            ``"waveform"``, ``"sample_rate"``, ``"label"``, unless ``layout`` says otherwise.
            Waveforms may be torch tensors or numpy arrays, ``[channels, time]`` or ``[time]``.
        bank: A :class:`SpeciesBank` or the path of one. Workers load the bank lazily from its
            path; the wrapper pickles without it.
        target: Items per class after balancing: ``"max"`` (the largest class), ``"mean"``
            (rounded up), an int, a finite float ratio of the largest class, or
            ``{label: count}`` (other classes untouched). Classes already at or above their
            target keep their real items only.
        seed: Base seed of all synthetic items.
        label_to_species: Dataset label → bank species: None (identity), a dict, or a callable
            returning a species name or None. Classes without a model stay as they are.
        labels: Every item's label, in index order, to avoid reading items. Otherwise the
            dataset's ``targets`` attribute is used, else one pass over the items (progress bar).
        layout: Where items keep their waveform, sample rate and label (:class:`ItemLayout`, or
            a dict of its fields); None: the torchaudio layout above.
        sample_rate: The dataset's sample rate in Hz when items do not carry one.
        seconds: Duration of synthetic items; None copies the template item's duration. At least
            one frame of the models (2 ms for the default hop of 64 samples at 32 kHz).
        scene: Where the song is heard (:class:`SceneConfig`); None gives the clean song.
        backgrounds: Which noise floors a "measured" scene draws from: "dataset" (those of up to
            256 real items of the wrapped dataset, every class, measured once here), "species"
            (the species' own training recordings, stored in the bank), or an array ``[n, 1025]``
            of `noise_floor` spectra at the models' sample rate. "dataset" decouples a rare
            species from the few recording channels it was learnt from: its songs are heard in
            the conditions of the whole dataset, as real test recordings will be.
        jitter: Jitter of the contours: None (each species' own defaults), a
            :class:`JitterConfig` for every species, or a dict of knobs that replace single
            values of each species' defaults (e.g. ``{"pitch_cents": 50}``).
        backend: Synthesis backend of :meth:`SpeciesBank.sample` ("numba" on CPU, or "torch").
        noise: What shapes the songs' noise (:meth:`SpeciesBank.sample`): "model" (the
            decoder's noise branch) or "recorded" (the recorded residual of the real frames a
            song was composed from, ``SpeciesBank.sample``'s default: BirdNET finds those songs
            more realistic). "model" is the default here because it measured as good or better
            for the classifier (validation splits of ``benchmarks/classifier_gain.py``: minority
            recall -0.011 on average with "recorded").
        quality_gate: ``(judge, min_confidence)``: a song the judge gives less than
            ``min_confidence`` for its species is redrawn (``SpeciesBank.sample``'s gate; e.g.
            ``(RealClipJudge(clips, 32000).confidence, 0.5)`` or
            ``(BirdNETJudge().confidence, 0.3)``). The judge travels to DataLoader workers, so
            it must pickle. None: no gate.
        strict: Raise instead of warning when a class that needs synthetic items has no model.
        return_synthetic_flag: Append ``is_synthetic`` (tuples: a last bool; dicts: a key).
        cache_dir: Keep synthetic songs as float wav files here, one per (seed, epoch, index) and
            settings; reused when a file has the expected length, one channel and the expected
            rate, rendered again otherwise. Clear it after retraining a model at the same path.
        bank_path: Where workers reload ``bank`` from; defaults to ``bank.path`` (needed for a
            bank built in memory and saved elsewhere).
        progress: Show a progress bar when items must be read (labels, backgrounds).
    """

    def __init__(
        self,
        dataset: Dataset | DataLoader,
        bank: SpeciesBank | str | Path,
        target: Target = "max",
        *,
        seed: int = 0,
        label_to_species: LabelToSpecies | None = None,
        labels: Sequence[Hashable] | None = None,
        layout: ItemLayout | Mapping[str, Any] | None = None,
        sample_rate: int | None = None,
        seconds: float | None = None,
        scene: SceneConfig | None = DEFAULT_SCENE,
        backgrounds: Backgrounds = "dataset",
        jitter: JitterConfig | Mapping[str, Any] | None = None,
        backend: Backend = "numba",
        noise: NoiseSource = "model",
        quality_gate: tuple[Judge, float] | None = None,
        strict: bool = False,
        return_synthetic_flag: bool = False,
        cache_dir: str | Path | None = None,
        bank_path: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        self.dataset = _base_dataset(dataset)
        self.seed = _whole_number(seed, "seed", 0)
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
                raise TypeError(f"seconds must be a number or None, got {seconds!r}")
            if not seconds > 0:
                raise ValueError(f"seconds must be > 0, got {seconds!r}")
            if not math.isfinite(seconds):
                raise ValueError(f"seconds must be finite, got {seconds!r}")
            seconds = float(seconds)
        if sample_rate is not None:
            sample_rate = check_sample_rate(sample_rate, "sample_rate")
        check_backend(backend)
        if quality_gate is not None:
            if not (isinstance(quality_gate, tuple) and len(quality_gate) == 2):
                raise TypeError("quality_gate must be a (judge, min_confidence) pair or None")
            if not callable(quality_gate[0]):
                raise TypeError(f"quality_gate's judge must be callable, got {quality_gate[0]!r}")
            if not 0 <= quality_gate[1] <= 1:
                raise ValueError(
                    f"quality_gate's min_confidence must be in [0, 1], got {quality_gate[1]}"
                )
        if isinstance(backgrounds, str) and backgrounds not in ("species", "dataset"):
            raise ValueError(
                f"backgrounds must be 'dataset', 'species' or an array, got {backgrounds!r}"
            )
        if isinstance(jitter, Mapping):
            # Fails early, with JitterConfig's own message, on unknown knobs or bad ranges.
            JitterConfig(**jitter)
        elif jitter is not None and not isinstance(jitter, JitterConfig):
            raise TypeError(f"jitter must be a JitterConfig, a dict or None, got {jitter!r}")
        self.layout = ItemLayout(**layout) if isinstance(layout, Mapping) else layout
        self.layout = self.layout or ItemLayout()
        self.sample_rate = sample_rate
        self.seconds = seconds
        self.scene = scene
        self.jitter = jitter
        self.backend = backend
        self.noise = check_noise(noise)
        self.quality_gate = quality_gate
        self.return_synthetic_flag = return_synthetic_flag

        if isinstance(bank, str | Path):
            bank = SpeciesBank.load(bank)
        path = bank_path if bank_path is not None else bank.path
        self._bank_path = Path(path) if path is not None else None
        self._bank_species = bank.species
        self._bank: SpeciesBank | None = bank

        all_labels = self._read_labels(labels, progress)
        by_class: dict[Hashable, list[int]] = {}
        for index, label in enumerate(all_labels):
            by_class.setdefault(label, []).append(index)
        try:
            self.classes: list[Hashable] = sorted(by_class)
        except TypeError:  # mixed label types: keep first-appearance order
            self.classes = list(by_class)
        self._real_indices = [np.asarray(by_class[c], np.int64) for c in self.classes]
        real_counts = Counter({c: len(by_class[c]) for c in self.classes})
        self.target = target
        targets = self._resolve_target(target, real_counts)
        self.species = self._map_species(label_to_species, targets, real_counts, strict)
        self._synthetic = np.array(
            [
                max(0, targets[c] - real_counts[c]) if self.species[c] is not None else 0
                for c in self.classes
            ],
            np.int64,
        )
        self._offsets = np.concatenate([[0], np.cumsum(self._synthetic)])
        used = sorted(
            {self.species[c] for c, n in zip(self.classes, self._synthetic, strict=True) if n > 0}
        )
        configs = [self.bank.entry(s).model.config for s in used]
        # One control frame of the slowest model: shorter songs cannot be rendered.
        self._min_seconds = max((c.hop_length / c.sample_rate for c in configs), default=0.0)
        if seconds is not None and seconds < self._min_seconds:
            raise ValueError(
                f"seconds={seconds!r} is too short to hold one frame of the species models "
                f"({self._min_seconds * 1000:.1f} ms); pass seconds >= {self._min_seconds}"
            )
        self.backgrounds = backgrounds if isinstance(backgrounds, str) else "array"
        self._backgrounds = self._background_pool(backgrounds, configs, progress)
        self._cache = None if cache_dir is None else SongCache(cache_dir, self._cache_settings())
        self._epoch = multiprocessing.RawValue("q", 0)
        self._epoch_calls = 0  # set_epoch calls in this process: `BalancedDataLoader` reads it
        self._templates: dict[int, _Template] = {}

    def __repr__(self) -> str:
        bank = str(self._bank_path) if self._bank_path is not None else "<in memory>"
        floors = "" if self._backgrounds is None else f" ({len(self._backgrounds)} floors)"
        return (
            f"{type(self).__name__}({type(self.dataset).__name__}: {len(self.dataset)} real + "
            f"{int(self._offsets[-1])} synthetic items in {len(self.classes)} classes, "
            f"bank={bank!r}, target={self.target!r}, seed={self.seed}, epoch={self.epoch}, "
            f"scene={_scene_repr(self.scene)}, backgrounds={self.backgrounds!r}{floors}, "
            f"backend={self.backend!r})"
        )

    # -- backgrounds and cache ------------------------------------------------------------------

    def _background_pool(
        self, backgrounds: Backgrounds, configs: list[Any], progress: bool
    ) -> np.ndarray | None:
        """The noise floors ``[n, 1025]`` every species draws from; None: each species' own."""
        if isinstance(backgrounds, str) and backgrounds == "species":
            return None
        pool = None if isinstance(backgrounds, str) else check_noise_floors(backgrounds)
        measured = self.scene is not None and self.scene.background == "measured"
        if not configs or not measured:
            return pool  # no song will be heard over a measured floor
        rates = sorted({c.sample_rate for c in configs})
        if len(rates) > 1:
            raise ValueError(
                f"shared backgrounds need models of one sample rate, the bank has {rates}"
            )
        if pool is not None:
            return pool
        return measure_dataset_backgrounds(
            self.dataset, self.layout, rates[0], self.sample_rate, progress=progress
        )

    def _cache_settings(self) -> str:
        """Everything besides (seed, epoch, index, species) that shapes a cached song."""
        floors = None if self._backgrounds is None else hashlib.sha1(self._backgrounds).hexdigest()
        jitter = sorted(self.jitter.items()) if isinstance(self.jitter, Mapping) else self.jitter
        gate = None
        if self.quality_gate is not None:  # by name: a judge's repr may hold a memory address
            judge, min_confidence = self.quality_gate
            gate = (getattr(judge, "__qualname__", type(judge).__qualname__), min_confidence)
        settings = (self.seconds, self.scene, jitter, self.backend, str(self._bank_path), floors)
        # jitter=None means each species' defaults, built on the class's: when a release changes
        # those (or how songs are rendered), songs cached by an older one must not be read.
        settings += (self.noise, JitterConfig(), __version__)
        return repr((*settings, gate))

    # -- labels and targets -------------------------------------------------------------------

    def _read_labels(self, labels: Sequence[Hashable] | None, progress: bool) -> list[Hashable]:
        n = len(self.dataset)
        if labels is None and hasattr(self.dataset, "targets"):
            labels = self.dataset.targets
        if labels is not None:
            labels = [plain_label(label) for label in labels]
            if len(labels) != n:
                raise ValueError(f"got {len(labels)} labels for a dataset of {n} items")
            return labels
        return [
            self.layout.label_of(self.dataset[i])
            for i in tqdm(range(n), desc="reading labels", disable=not progress)
        ]

    @staticmethod
    def _resolve_target(target: Target, counts: Counter) -> dict[Hashable, int]:
        largest = max(counts.values(), default=0)
        expected = "target must be 'max', 'mean', an int, a finite float or a dict"
        if isinstance(target, str):
            if target == "max":
                return dict.fromkeys(counts, largest)
            if target == "mean":
                return dict.fromkeys(counts, math.ceil(sum(counts.values()) / max(len(counts), 1)))
            raise ValueError(f"{expected}, got {target!r}")
        if isinstance(target, Mapping):
            unknown = [label for label in target if label not in counts]
            if unknown:
                raise ValueError(f"target names labels not in the dataset: {unknown}")
            if any(
                isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0
                for v in target.values()
            ):
                raise ValueError(f"target counts must be ints >= 0, got {dict(target)}")
            return {c: int(target.get(c, counts[c])) for c in counts}
        if isinstance(target, bool):
            raise ValueError(f"{expected}, not a bool")
        if isinstance(target, int | np.integer):
            if target < 0:
                raise ValueError(f"target count must be >= 0, got {target}")
            return dict.fromkeys(counts, int(target))
        if isinstance(target, float | np.floating):
            if not (math.isfinite(target) and target > 0):
                raise ValueError(f"target ratio must be a finite float > 0, got {target}")
            return dict.fromkeys(counts, math.ceil(target * largest))
        raise ValueError(f"{expected}, got {target!r}")

    def _map_species(
        self,
        label_to_species: LabelToSpecies | None,
        targets: dict[Hashable, int],
        counts: Counter,
        strict: bool,
    ) -> dict[Hashable, str | None]:
        if label_to_species is None:
            lookup: Callable[[Hashable], str | None] = lambda label: label  # noqa: E731
        elif isinstance(label_to_species, Mapping):
            lookup = label_to_species.get
        elif callable(label_to_species):
            lookup = label_to_species
        else:
            raise TypeError("label_to_species must be None, a dict or a callable")
        available = set(self.bank.species)
        species = {}
        for c in self.classes:
            name = lookup(c)
            species[c] = name if isinstance(name, str) and name in available else None
        missing = [c for c in self.classes if species[c] is None and targets[c] > counts[c]]
        if missing:
            message = (
                f"{len(missing)} class(es) below target have no model in the bank and are left "
                f"as they are: {missing}; bank species: {sorted(available)}"
            )
            if strict:
                raise ValueError(message)
            warnings.warn(message, stacklevel=3)
        return species

    # -- bank, epoch, pickling ----------------------------------------------------------------

    @property
    def bank(self) -> SpeciesBank:
        """The species bank, loaded from its path on first use in each process."""
        if self._bank is None:
            self._bank = SpeciesBank.load(self._bank_path, species=self._bank_species)
        return self._bank

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """Draw fresh synthetic items for ``epoch`` (an int in [0, 2**63)); call it before
        iterating a loader (`balance_loader`'s loader calls it itself)."""
        self._epoch.value = _whole_number(epoch, "epoch", 0, _MAX_EPOCH)
        self._epoch_calls += 1

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._bank_path is None:
            raise TypeError(
                "DDSPBalancedDataset cannot send its bank to another process without knowing "
                "where it was loaded from: pass bank=<path> or bank_path=<path>"
            )
        state["_bank"] = None
        state["_templates"] = {}
        # A DataLoader starting workers shares the epoch; anything else gets its current value.
        if get_spawning_popen() is None:
            state["_epoch"] = self.epoch
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["_epoch"], int):
            epoch = state["_epoch"]
            state["_epoch"] = multiprocessing.RawValue("q", epoch)
        self.__dict__.update(state)

    # -- items --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.dataset) + int(self._offsets[-1])

    def class_counts(self) -> dict[Hashable, ClassCount]:
        """``{label: ClassCount(real, synthetic)}``: ``real`` before balancing, ``total`` after."""
        return {
            c: ClassCount(len(real), int(n))
            for c, real, n in zip(self.classes, self._real_indices, self._synthetic, strict=True)
        }

    def synthetic_origin(self, index: int) -> tuple[Hashable, int] | None:
        """``(label, k)`` for the ``k``-th synthetic item of a class; None for a real item."""
        position = self._check_index(index) - len(self.dataset)
        if position < 0:
            return None
        slot, k = self._locate(position)
        return self.classes[slot], k

    def _locate(self, position: int) -> tuple[int, int]:
        """Synthetic position (index - len(dataset)) → (class slot, k)."""
        slot = int(np.searchsorted(self._offsets, position, side="right")) - 1
        return slot, position - int(self._offsets[slot])

    def _check_index(self, index: int) -> int:
        n = len(self)
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"index must be an integer, got {index!r}") from None
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        return index + n if index < 0 else index

    def __getitem__(self, index: int) -> Any:
        index = self._check_index(index)
        if index < len(self.dataset):
            item = self.dataset[index]
            return append_flag(item, False) if self.return_synthetic_flag else item
        item = self._synthetic_item(index)
        return append_flag(item, True) if self.return_synthetic_flag else item

    def _template(self, index: int) -> _Template:
        template = self._templates.get(index)
        if template is None:
            item = self.dataset[index]
            waveform = self.layout.get(item, "waveform")
            if getattr(waveform, "ndim", None) not in (1, 2):
                raise ValueError(
                    f"item {index}: waveform must be a [time] or [channels, time] tensor or "
                    f"array, got {type(waveform).__name__} {tuple(getattr(waveform, 'shape', ()))}"
                )
            template = _Template(
                item=self.layout.replace(item, "waveform", None),
                channels=int(waveform.shape[0]) if waveform.ndim == 2 else None,
                n_samples=int(waveform.shape[-1]),
                sample_rate=self.layout.sample_rate_of(item, self.sample_rate),
                dtype=waveform.dtype,
                is_tensor=isinstance(waveform, torch.Tensor),
            )
            self._templates[index] = template
        return template

    def _synthetic_item(self, index: int) -> Any:
        slot, _ = self._locate(index - len(self.dataset))
        epoch = self.epoch  # read once: set_epoch may run concurrently in the main process
        donor_seq, song_seq = np.random.SeedSequence([self.seed, epoch, index]).spawn(2)
        donor = int(np.random.default_rng(donor_seq).choice(self._real_indices[slot]))
        template = self._template(donor)
        rate = template.sample_rate
        n = template.n_samples if self.seconds is None else int(round(self.seconds * rate))
        if n < max(1, round(self._min_seconds * rate)):  # as `seconds` is checked, in samples
            raise ValueError(
                f"item {donor} lasts {n} samples at {rate} Hz, shorter than one frame of the "
                f"species models ({self._min_seconds * 1000:.1f} ms); pass seconds= to give "
                "synthetic items a length of their own"
            )
        species = self.species[self.classes[slot]]
        song = self._song(species, f"{self.seed}-{epoch}-{index}-{species}", n, rate, song_seq)
        if template.channels is not None:
            song = np.repeat(song[None, :], template.channels, axis=0)
        if template.is_tensor:
            waveform = torch.from_numpy(song).to(template.dtype)
        else:
            waveform = song.astype(template.dtype, copy=False)
        return self.layout.replace(copy.deepcopy(template.item), "waveform", waveform)

    def _song(
        self, species: str, name: str, n: int, rate: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        """A mono ``[n]`` float32 song, from the cache when it holds a valid one."""
        if self._cache is not None:
            song = self._cache.get(name, n, rate)
            if song is not None:
                return song
        jitter = self.jitter if isinstance(self.jitter, Mapping) else {}
        song = self.bank.sample(
            species,
            n=1,
            seconds=n / rate,
            sample_rate=rate,
            seed=seed,
            backend=self.backend,
            noise=self.noise,
            scene=self.scene,
            jitter=self.jitter if isinstance(self.jitter, JitterConfig) else None,
            background_spectra=self._backgrounds,
            judge=None if self.quality_gate is None else self.quality_gate[0],
            min_confidence=None if self.quality_gate is None else self.quality_gate[1],
            **jitter,
        )[0]
        # round(seconds * rate) may miss n by a sample.
        song = np.pad(song[:n], (0, max(0, n - song.shape[0])))
        if self._cache is not None:
            self._cache.put(name, song, rate)
        return song
