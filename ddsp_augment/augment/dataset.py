"""`DDSPBalancedDataset`: a drop-in `torch.utils.data.Dataset` wrapper that tops up rare classes
with songs synthesised by their species models.

Example::

    dataset = torchaudio.datasets.SPEECHCOMMANDS(...)          # any map-style dataset
    balanced = DDSPBalancedDataset(dataset, "models/", target="max", seed=0)
    loader = DataLoader(balanced, batch_size=32, shuffle=True, num_workers=2)
    for epoch in range(10):
        balanced.set_epoch(epoch)                             # fresh synthetic songs each epoch
        for batch in loader:
            ...
"""

from __future__ import annotations

import copy
import hashlib
import math
import multiprocessing
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from multiprocessing.context import get_spawning_popen
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..checks import Backend, check_backend
from ..constants import SAMPLE_RATE
from ..features.background import FLOOR_FFT_SIZE, noise_floor
from ..io import atomic_write, resample
from ..sampling.bank import SpeciesBank
from ..sampling.jitter import JitterConfig
from ..sampling.scene import SceneConfig

__all__ = ["ClassCount", "DDSPBalancedDataset"]

Target = str | int | float | Mapping[Hashable, int]
_MEASURED_BACKGROUND = SceneConfig(background="measured")
_FLAG_KEY = "is_synthetic"
# backgrounds="dataset" measures at most this many real items (4 KB of spectrum each).
_MAX_DATASET_BACKGROUNDS = 256


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


def _plain_label(label: Any) -> Hashable:
    """0-d tensors and numpy scalars → Python scalars, so labels hash and compare by value."""
    if isinstance(label, torch.Tensor | np.ndarray | np.generic) and np.ndim(label) == 0:
        return label.item()
    return label


def _replace_field(item: Any, key: int | str, value: Any) -> Any:
    """``item`` with ``item[key] = value``, same container type (tuple, namedtuple, list, dict)."""
    if isinstance(item, Mapping):
        return {**item, key: value}
    if isinstance(item, tuple) and hasattr(item, "_fields"):
        return item._replace(**{item._fields[key]: value})
    fields = list(item)
    fields[key] = value
    return type(item)(fields)


def _append_flag(item: Any, flag: bool) -> Any:
    if isinstance(item, Mapping):
        return {**item, _FLAG_KEY: flag}
    if isinstance(item, list):
        return [*item, flag]
    return (*item, flag)


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

    Args:
        dataset: Map-style dataset. Items are torchaudio-style tuples ``(waveform [channels,
            time], sample_rate, label, ...)`` or dicts with keys ``"waveform"``, ``"sample_rate"``,
            ``"label"`` unless the ``*_index`` arguments say otherwise. Waveforms may be torch
            tensors or numpy arrays, ``[channels, time]`` or ``[time]``.
        bank: A :class:`SpeciesBank` or the path of one. Workers load the bank lazily from its
            path; the wrapper pickles without it.
        target: Items per class after balancing: ``"max"`` (the largest class), ``"mean"``
            (rounded up), an int, a float ratio of the largest class, or ``{label: count}`` (other
            classes untouched). Classes already at or above their target keep their real items only.
        label_to_species: Dataset label → bank species: None (identity), a dict, or a callable
            returning a species name or None. Classes without a model stay as they are.
        labels: Every item's label, in index order, to avoid reading items. Otherwise the
            dataset's ``targets`` attribute is used, else one pass over the items (progress bar).
        label_fn: ``item -> label``, for layouts ``label_index`` cannot express.
        waveform_index / sample_rate_index / label_index: Position (tuples) or key (dicts) of
            those fields; None means the defaults above.
        sample_rate: The dataset's sample rate when items do not carry one.
        seconds: Duration of synthetic items; None copies the template item's duration.
        seed: Base seed of all synthetic items.
        scene: Where the song is heard (:class:`SceneConfig`); default: over a measured
            recording background (see ``backgrounds``). None gives the clean song.
        backgrounds: Which measured backgrounds a "measured" scene draws from: "species" (the
            species' own training recordings, stored in the bank), "dataset" (the noise floors
            of up to 256 real items of the wrapped dataset, every class, measured once here), or
            an array ``[n, 1025]`` of `noise_floor` spectra at the
            models' sample rate. "dataset" decouples a rare species from the few recording
            channels it was learnt from: its songs are heard in the conditions of the whole
            dataset, as real test recordings will be.
        jitter: Jitter for every species (None: each species' own defaults); ``jitter_overrides``
            replace single knobs of those defaults (e.g. ``{"pitch_cents": 50}``).
        backend: Synthesis backend of :meth:`SpeciesBank.sample` ("numba" on CPU, or "torch").
        strict: Raise instead of warning when a class that needs synthetic items has no model.
        return_synthetic_flag: Append ``is_synthetic`` (tuples: a last bool; dicts: a key).
        cache_dir: Keep synthetic songs as float wav files here, one per (seed, epoch, index) and
            settings; reused when present. Clear it after retraining a model at the same path.
        bank_path: Where workers reload ``bank`` from; defaults to ``bank.path`` (needed for a
            bank built in memory and saved elsewhere).
        progress: Show a progress bar when labels must be read from the items.
    """

    def __init__(
        self,
        dataset: Dataset,
        bank: SpeciesBank | str | Path,
        target: Target = "max",
        label_to_species: Mapping[Hashable, str] | Callable[[Hashable], str | None] | None = None,
        labels: Sequence[Hashable] | None = None,
        label_fn: Callable[[Any], Hashable] | None = None,
        waveform_index: int | str | None = None,
        sample_rate_index: int | str | None = None,
        label_index: int | str | None = None,
        sample_rate: int | None = None,
        seconds: float | None = None,
        seed: int = 0,
        scene: SceneConfig | None = _MEASURED_BACKGROUND,
        backgrounds: str | np.ndarray = "species",
        jitter: JitterConfig | None = None,
        jitter_overrides: Mapping[str, Any] | None = None,
        backend: Backend = "numba",
        strict: bool = False,
        return_synthetic_flag: bool = False,
        cache_dir: str | Path | None = None,
        bank_path: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError("dataset must be map-style (with __getitem__ and __len__)")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if seconds is not None and seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        if sample_rate is not None and sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        check_backend(backend)
        if isinstance(backgrounds, str) and backgrounds not in ("species", "dataset"):
            raise ValueError(
                f"backgrounds must be 'species', 'dataset' or an array, got {backgrounds!r}"
            )
        if jitter_overrides:
            # Fails early, with JitterConfig's own message, on unknown knobs or bad ranges.
            JitterConfig(**jitter_overrides)
        self.dataset = dataset
        self.seed = seed
        self.seconds = seconds
        self.sample_rate = sample_rate
        self.scene = scene
        self.jitter = jitter
        self.jitter_overrides = dict(jitter_overrides or {})
        self.backend = backend
        self.return_synthetic_flag = return_synthetic_flag
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.label_fn = label_fn
        self._indices = (waveform_index, sample_rate_index, label_index)

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
        self._backgrounds = self._background_pool(backgrounds, progress)
        self._backgrounds_digest = (
            None if self._backgrounds is None else hashlib.sha1(self._backgrounds).hexdigest()
        )
        self._epoch = multiprocessing.RawValue("q", 0)
        self._templates: dict[int, _Template] = {}

    # -- backgrounds ----------------------------------------------------------------------------

    def _background_pool(self, backgrounds: str | np.ndarray, progress: bool) -> np.ndarray | None:
        """The noise floors ``[n, 1025]`` every species draws from; None: each species' own."""
        if isinstance(backgrounds, str) and backgrounds == "species":
            return None
        used = {
            self.species[c]
            for c, n in zip(self.classes, self._synthetic, strict=True)
            if self.species[c] is not None and n > 0
        }
        rates = {self.bank.entry(s).model.config.sample_rate for s in used}
        if len(rates) > 1:
            raise ValueError(
                f"shared backgrounds need models of one sample rate, the bank has {sorted(rates)}"
            )
        if not isinstance(backgrounds, str):
            pool = np.asarray(backgrounds, np.float32)
            if pool.ndim != 2 or pool.shape[0] == 0 or pool.shape[1] != FLOOR_FFT_SIZE // 2 + 1:
                raise ValueError(
                    f"backgrounds must be [n, {FLOOR_FFT_SIZE // 2 + 1}] noise floors, "
                    f"got shape {pool.shape}"
                )
            if not np.isfinite(pool).all() or (pool < 0).any():
                raise ValueError("backgrounds must be finite magnitudes >= 0")
            return pool
        model_rate = rates.pop() if rates else SAMPLE_RATE
        n = len(self.dataset)
        # Evenly spaced items: every class and recording session, without reading a big dataset.
        picks = np.unique(np.linspace(0, n - 1, min(n, _MAX_DATASET_BACKGROUNDS)).round())
        floors = []
        for i in tqdm(picks.astype(int), desc="measuring backgrounds", disable=not progress):
            item = self.dataset[i]
            audio = np.asarray(self._field(item, 0), np.float32)
            audio = audio.mean(axis=0) if audio.ndim == 2 else audio
            rate = self.sample_rate if self.sample_rate is not None else int(self._field(item, 1))
            if rate != model_rate:
                audio = resample(audio, rate, model_rate)
            if audio.shape[0] >= FLOOR_FFT_SIZE and np.isfinite(audio).all():
                floors.append(noise_floor(audio))
        if not floors:
            raise ValueError(
                f"backgrounds='dataset': no item of at least {FLOOR_FFT_SIZE} finite samples"
            )
        return np.stack(floors)

    # -- labels and targets -------------------------------------------------------------------

    def _key(self, item: Any, which: int) -> int | str:
        """Where field ``which`` (0 waveform, 1 sample rate, 2 label) sits in ``item``."""
        key = self._indices[which]
        if key is None:
            key = (
                ("waveform", "sample_rate", "label")[which] if isinstance(item, Mapping) else which
            )
        return key

    def _field(self, item: Any, which: int) -> Any:
        return item[self._key(item, which)]

    def _label_of(self, item: Any) -> Hashable:
        return _plain_label(self.label_fn(item) if self.label_fn else self._field(item, 2))

    def _read_labels(self, labels: Sequence[Hashable] | None, progress: bool) -> list[Hashable]:
        n = len(self.dataset)
        if labels is None and hasattr(self.dataset, "targets"):
            labels = self.dataset.targets
        if labels is not None:
            labels = [_plain_label(label) for label in labels]
            if len(labels) != n:
                raise ValueError(f"got {len(labels)} labels for a dataset of {n} items")
            return labels
        return [
            self._label_of(self.dataset[i])
            for i in tqdm(range(n), desc="reading labels", disable=not progress)
        ]

    def _resolve_target(self, target: Target, counts: Counter) -> dict[Hashable, int]:
        largest = max(counts.values(), default=0)
        if isinstance(target, str):
            if target == "max":
                return dict.fromkeys(counts, largest)
            if target == "mean":
                return dict.fromkeys(counts, math.ceil(sum(counts.values()) / max(len(counts), 1)))
            raise ValueError(
                f"target must be 'max', 'mean', an int, a float or a dict, got {target!r}"
            )
        if isinstance(target, Mapping):
            unknown = [label for label in target if label not in counts]
            if unknown:
                raise ValueError(f"target names labels not in the dataset: {unknown}")
            if any(not isinstance(v, int | np.integer) or v < 0 for v in target.values()):
                raise ValueError(f"target counts must be ints >= 0, got {dict(target)}")
            return {c: int(target.get(c, counts[c])) for c in counts}
        if isinstance(target, bool):
            raise ValueError("target must be 'max', 'mean', an int, a float or a dict, not a bool")
        if isinstance(target, int | np.integer):
            if target < 0:
                raise ValueError(f"target count must be >= 0, got {target}")
            return dict.fromkeys(counts, int(target))
        if isinstance(target, float):
            if not target > 0:
                raise ValueError(f"target ratio must be > 0, got {target}")
            return dict.fromkeys(counts, math.ceil(target * largest))
        raise ValueError(f"target must be 'max', 'mean', an int, a float or a dict, got {target!r}")

    def _map_species(
        self,
        label_to_species: Mapping[Hashable, str] | Callable[[Hashable], str | None] | None,
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
        """Draw fresh synthetic items for ``epoch`` (call before iterating the loader)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch.value = int(epoch)

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
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        return int(index)

    def __getitem__(self, index: int) -> Any:
        index = self._check_index(index)
        if index < len(self.dataset):
            item = self.dataset[index]
            return _append_flag(item, False) if self.return_synthetic_flag else item
        item = self._synthetic_item(index)
        return _append_flag(item, True) if self.return_synthetic_flag else item

    def _template(self, index: int) -> _Template:
        template = self._templates.get(index)
        if template is None:
            item = self.dataset[index]
            waveform = self._field(item, 0)
            if waveform.ndim not in (1, 2):
                raise ValueError(
                    f"item {index}: waveform must be [time] or [channels, time], "
                    f"got {tuple(waveform.shape)}"
                )
            rate = self.sample_rate if self.sample_rate is not None else int(self._field(item, 1))
            template = _Template(
                item=_replace_field(item, self._key(item, 0), None),
                channels=int(waveform.shape[0]) if waveform.ndim == 2 else None,
                n_samples=int(waveform.shape[-1]),
                sample_rate=rate,
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
        song = self._song(self.species[self.classes[slot]], epoch, index, n, rate, song_seq)
        if template.channels is not None:
            song = np.repeat(song[None, :], template.channels, axis=0)
        if template.is_tensor:
            waveform = torch.from_numpy(song).to(template.dtype)
        else:
            waveform = song.astype(template.dtype, copy=False)
        item = copy.deepcopy(template.item)
        return _replace_field(item, self._key(item, 0), waveform)

    def _song(
        self, species: str, epoch: int, index: int, n: int, rate: int, seed: np.random.SeedSequence
    ) -> np.ndarray:
        """A mono ``[n]`` float32 song, from the cache when present."""
        path = None
        if self.cache_dir is not None:
            settings = repr(
                (
                    species,
                    n,
                    rate,
                    self.scene,
                    self.jitter,
                    sorted(self.jitter_overrides.items()),
                    self.backend,
                    str(self._bank_path),
                    self._backgrounds_digest,
                )
            )
            digest = hashlib.sha1(settings.encode()).hexdigest()[:12]
            path = self.cache_dir / f"{self.seed}-{epoch}-{index}-{digest}.wav"
            if path.is_file():
                return sf.read(str(path), dtype="float32")[0]
        song = self.bank.sample(
            species,
            n=1,
            seconds=n / rate,
            sample_rate=rate,
            seed=seed,
            backend=self.backend,
            scene=self.scene,
            jitter=self.jitter,
            background_spectra=self._backgrounds,
            **self.jitter_overrides,
        )[0]
        # round(seconds * rate) may miss n by a sample.
        song = np.pad(song[:n], (0, max(0, n - song.shape[0])))
        if path is not None:
            atomic_write(
                path, lambda tmp: sf.write(str(tmp), song, rate, subtype="FLOAT", format="WAV")
            )
        return song
