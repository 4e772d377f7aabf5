"""What does class balancing do for a bird-species classifier? Honest, split-by-recordist numbers.

Protocol (every condition sees the same splits, seeds and test clips):

1. Stratified group k-fold over recordists (``classifier_gain.splits.recordist_folds``): no
   recordist is on both sides of a split. Repeated for every seed.
2. Per seed, a fraction of the species (default half) becomes the *minority*; in each split
   their training recordings are cut to ``k`` (default 2, from distinct recordists where
   possible). Majority species and the test set are untouched.
3. Conditions (the training set differs, nothing else):

   - ``baseline``: the imbalanced training set as is.
   - ``oversample``: minority clips repeated up to the balance target.
   - ``classic``: the balance target filled with audiomentations copies of the minority clips
     (PitchShift, TimeStretch, Gain, AddGaussianSNR), drawn afresh every classifier epoch.
   - ``ddsp``: the balance target filled with DDSP songs (``ddsp_training_set``), drawn afresh
     every classifier epoch, heard over the noise floors of the whole training set at 1-3x the
     recorded distance with reverb (:data:`DDSP_SONG_DEFAULTS`).
   - ``ddsp+classic``: half of the missing clips DDSP songs, half classic copies.
   - ``oracle``: all real training recordings of the minority species (the upper bound).

   Balance target per minority species = the median training count of the majority species.
4. Classifier (``--classifier``): ``linear`` (logistic regression on log-mel statistics; the
   default, seconds per split) or ``cnn`` (small CNN from scratch; minutes per split). Trained in
   epochs on random 3 s crops (``set_epoch`` before each, as in any training loop), scored on
   whole test clips.
5. Metrics per split (macro-F1, balanced accuracy, minority and majority recall), mean ± std over
   splits; paired per-split differences vs ``baseline`` and vs the best non-DDSP condition with a
   95 % bootstrap CI; ``gap_recovered`` = (cond − baseline) / (oracle − baseline) on minority
   recall. Nothing is tuned on the test folds: all settings are fixed before the run.

Every clip is decoded once per run (32 kHz, kept in memory) and its log-mel computed once.

    python benchmarks/classifier_gain.py --quick        # CI smoke run, < 3 min on 2 cores
    python benchmarks/classifier_gain.py                # default: 3 seeds x 3 folds, linear
    python benchmarks/classifier_gain.py --full         # 5 seeds x 3 folds
    python benchmarks/classifier_gain.py --validation --seeds 100 101 102 103 104 105
                                                        # choose settings away from test folds
    python benchmarks/classifier_gain.py --data_root my_data --test_root my_test --classifier cnn

Writes ``<output_path>/classifier_gain.{json,md,png}`` (default ``results/``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import math
import platform
import random
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere without installing the package
    sys.path.insert(0, str(ROOT))

from classifier_gain.classifiers import (  # noqa: E402
    ClipDataset,
    FeatureConfig,
    LinearClipClassifier,
    LogMelCache,
    classification_scores,
    gap_recovered,
    make_classifier,
    paired_bootstrap_ci,
)
from classifier_gain.splits import (  # noqa: E402
    choose_minority,
    make_imbalanced,
    normalise_recordist,
    recordist_folds,
    recordist_groups,
)

from ddsp_augment.constants import SAMPLE_RATE  # noqa: E402
from ddsp_augment.io import AudioError, atomic_write, load_audio, scan_folder  # noqa: E402
from ddsp_augment.training.preprocess import read_manifest  # noqa: E402

__all__ = ["Corpus", "TrainingSplit", "ddsp_training_set", "main"]

DEFAULT_DATA = ROOT / "benchmarks" / "data" / "xc-germany"
_FAILED_MARKER = "FAILED.txt"  # in a model folder: training collapsed, with the reason
NON_DDSP_CONDITIONS = ("baseline", "oversample", "classic", "oracle")
DDSP_CONDITIONS = ("ddsp", "ddsp+classic")
ALL_CONDITIONS = ("baseline", "oversample", "classic", "ddsp", "ddsp+classic", "oracle")
METRICS = ("macro_f1", "balanced_accuracy", "minority_recall", "majority_recall")
# Minority recall is what balancing is for; it drives gap_recovered and "best non-DDSP".
PRIMARY_METRIC = "minority_recall"
N_BOOT = 10000
QUICK_SPECIES = 10
# Species models for the DDSP conditions: one thread each, two species at a time; ~40 steps on
# 2 recordings keeps the default run's up-to-90 models within the 15-minute budget.
DDSP_TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 2,
    "steps_per_epoch": 20,
    "batch_size": 8,
    "val_fraction": 0.0,
    "threads": 1,
}
# How the DDSP songs are heard, chosen on validation splits (seeds 100-105, scored on the cut
# minority recordings of recordists the kept ones do not share), never on the test folds:
# over the noise floors of the whole training set rather than the species' own two recordings,
# 1-3x as far as recorded (0-9.5 dB quieter over the background), with reverb. README: numbers.
DDSP_SONG_DEFAULTS: dict[str, Any] = {
    "backgrounds": "dataset",
    "scene": {"background": "measured", "distance_m": (1.0, 3.0), "rt60_s": (0.2, 1.0)},
    "jitter": None,
    "synthetic_factor": 1.0,
}


# --- data --------------------------------------------------------------------------------------


@dataclass
class Corpus:
    """Every clip of a data root, decoded once at 32 kHz.

    ``labels[i]`` indexes ``classes``; ``groups[i]`` is the recordist group
    (``splits.recordist_groups``; a file without a manifest row is its own group).
    """

    root: Path
    names: list[str]  # path relative to root, posix
    classes: list[str]
    labels: np.ndarray  # int64 [n]
    recordists: list[str]
    groups: np.ndarray  # int64 [n]
    waveforms: list[torch.Tensor]  # [1, time] float32 at SAMPLE_RATE
    fingerprint: str  # hash of file names, sizes and the manifest
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def dataset(self, indices: Sequence[int]) -> ClipDataset:
        return ClipDataset([self.waveforms[i] for i in indices], self.labels[indices], SAMPLE_RATE)


def load_corpus(
    root: Path, classes: Sequence[str] | None = None, species: Sequence[str] | None = None
) -> Corpus:
    """Decode ``root/<species>/*`` once at 32 kHz.

    Args:
        root: Data folder.
        classes: Fixed class list (for an external test set: labels follow the training classes,
            clips of other species are skipped with a warning).
        species: Keep only these species.
    """
    recordist_of = read_manifest(root)
    entries = [(p, s) for p, s in scan_folder(root) if species is None or s in species]
    if classes is not None:
        unknown = sorted({s for _, s in entries if s not in classes})
        if unknown:
            warnings.warn(
                f"{root}: species not in the training data, skipped: {unknown}", stacklevel=2
            )
        entries = [(p, s) for p, s in entries if s in classes]
    if not entries:
        raise SystemExit(f"{root}: no audio files in <species>/ folders")
    digest = hashlib.sha1()
    names, labels_by_name, recordists, waveforms, skipped = [], [], [], [], []
    clipped = 0
    for path, name in tqdm(entries, desc=f"decoding {root.name}", unit="clip"):
        relative = path.relative_to(root).as_posix()
        digest.update(f"{relative}:{path.stat().st_size};".encode())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                audio, _ = load_audio(path, SAMPLE_RATE)
            except AudioError as error:
                skipped.append((relative, error.reason))
                continue
        clipped += any("clipped" in str(w.message) for w in caught)
        names.append(relative)
        labels_by_name.append(name)
        recordists.append(recordist_of.get(relative, ""))
        waveforms.append(torch.from_numpy(audio)[None])
    if skipped:
        warnings.warn(
            f"{root}: skipped {len(skipped)} unreadable clip(s): {skipped[:3]}", stacklevel=2
        )
    if clipped:
        print(f"{root.name}: {clipped} clip(s) have > 0.1 % clipped samples (kept)")
    if (root / "manifest.csv").is_file():
        digest.update((root / "manifest.csv").read_bytes())
    class_list = list(classes) if classes is not None else sorted(set(labels_by_name))
    return Corpus(
        root=root,
        names=names,
        classes=class_list,
        labels=np.array([class_list.index(s) for s in labels_by_name], np.int64),
        recordists=recordists,
        groups=recordist_groups(recordists),
        waveforms=waveforms,
        fingerprint=digest.hexdigest()[:16],
        skipped=skipped,
    )


# --- splits ------------------------------------------------------------------------------------


@dataclass
class Split:
    seed: int
    fold: int
    minority: list[int]
    train_idx: np.ndarray  # imbalanced training set (corpus indices)
    full_train_idx: np.ndarray  # before cutting the minority (the oracle's training set)
    test_idx: np.ndarray  # test corpus indices


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def make_splits(
    corpus: Corpus,
    test_corpus: Corpus | None,
    seeds: Sequence[int],
    n_folds: int,
    minority: float | list[str],
    k: int,
) -> list[Split]:
    """All (seed, fold) splits; with an external test set, one split per seed (all data trains)."""
    splits = []
    n = len(corpus.labels)
    for seed in seeds:
        if isinstance(minority, float):
            chosen = choose_minority(list(range(len(corpus.classes))), minority, seed)
        else:
            chosen = [corpus.classes.index(s) for s in minority]
        if test_corpus is None:
            folds = recordist_folds(corpus.labels, corpus.groups, n_folds, seed)
        else:
            folds = [(np.arange(n), np.arange(len(test_corpus.labels)))]
        for fold, (train_idx, test_idx) in enumerate(folds):
            kept = make_imbalanced(
                train_idx, corpus.labels, corpus.groups, chosen, k, _derived_seed(seed, fold)
            )
            splits.append(Split(seed, fold, chosen, kept, train_idx, test_idx))
    return splits


def validation_split(split: Split, corpus: Corpus) -> Split:
    """``split`` scored on its validation clips instead of its test fold: the minority
    recordings the cut removed from training, from recordists none of the kept recordings of
    that species share. For choosing settings without looking at the test folds (the oracle,
    which trains on these clips, does not apply)."""
    kept = split.train_idx
    held_out = []
    for i in np.setdiff1d(split.full_train_idx, kept):
        label = corpus.labels[i]
        kept_groups = set(corpus.groups[kept[corpus.labels[kept] == label]])
        if label in split.minority and corpus.groups[i] not in kept_groups:
            held_out.append(i)
    return dataclasses.replace(split, test_idx=np.asarray(held_out, np.int64))


def _check_recordist_overlap(corpus: Corpus, test_corpus: Corpus) -> None:
    train_people = {normalise_recordist(r) for r in corpus.recordists if r.strip()}
    test_people = {normalise_recordist(r) for r in test_corpus.recordists if r.strip()}
    shared = sorted(train_people & test_people)
    if shared:
        warnings.warn(
            f"{len(shared)} recordist(s) appear in both --data_root and --test_root "
            f"(scores may be optimistic): {shared[:5]}",
            stacklevel=2,
        )


# --- training sets per condition ---------------------------------------------------------------


@dataclass
class TrainingSplit:
    """What the DDSP hook gets for one split (all of it from that split's training side only).

    Attributes:
        dataset: The imbalanced real training set: items ``(waveform [1, time] float32,
            32000, label_index)``, ``dataset.targets`` = labels.
        names: Each item's file path relative to ``data_root`` (same order as ``dataset``).
        data_root: Where those files are (for ``ddsp_augment.training.preprocess``).
        recordists: Each item's recordist ("" if unknown).
        classes: Species name of every label index (``classes[label]``).
        minority: Label indices of the minority species of this split.
        n_synthetic: ``{label_index: number of synthetic clips to add}`` for minority species.
        seed: Seed for everything random in the hook.
        cache_dir: Folder unique to (data, split, DDSP options).
        options: DDSP settings from ``--ddsp_options`` (JSON), part of the cache keys.
        model_root: Folder unique to (data, DDSP options), shared by all splits; see
            :meth:`model_dir`.
        model_failures: Filled by the hook: ``{species: reason}`` for models that could not be
            trained (their class then gets no synthetic songs).
    """

    dataset: ClipDataset
    names: list[str]
    data_root: Path
    recordists: list[str]
    classes: list[str]
    minority: list[int]
    n_synthetic: dict[int, int]
    seed: int
    cache_dir: Path
    options: dict[str, Any]
    model_root: Path
    model_failures: dict[str, str] = field(default_factory=dict)

    def model_dir(self, label: int) -> Path:
        """Where the model of class ``label`` trained on exactly this split's recordings of it
        lives: keyed by species and its training files, so splits (and seeds) that keep the
        same recordings share one model instead of retraining it."""
        files = sorted(
            n for n, t in zip(self.names, self.dataset.targets, strict=True) if t == label
        )
        digest = hashlib.sha1(json.dumps(files).encode()).hexdigest()[:12]
        return self.model_root / f"{self.classes[label]}-{digest}"


def _ddsp_train_settings(options: dict[str, Any]) -> dict[str, Any]:
    """Every ``TrainSettings`` field the species models of the DDSP conditions are trained with."""
    from dataclasses import asdict

    from ddsp_augment.training.train import TrainSettings

    return asdict(TrainSettings(**{**DDSP_TRAIN_DEFAULTS, **options.get("train", {})}))


def ddsp_training_set(split: TrainingSplit) -> Dataset:
    """The DDSP-balanced training set of one split. THE hook for the ``ddsp`` conditions.

    Must:

    (a) train one species model per minority class ``c`` in ``split.minority`` on that species'
        recordings in ``split.dataset`` only (files ``split.names`` under ``split.data_root``,
        recordists ``split.recordists``; never the test side or the cut recordings), saved in
        ``split.model_dir(c)`` and reused when present. Default run: 3 seeds × 3 folds × 10
        minority species = up to 90 models from ~2 recordings each, and the whole run must stay
        ≤ 15 min on 2 cores;
    (b) return ``DDSPBalancedDataset(split.dataset, bank, target={c: count_c + n for c, n in
        split.n_synthetic.items()}, labels=split.dataset.targets,
        label_to_species=dict(enumerate(split.classes)), seed=split.seed)``, where ``count_c`` is
        the number of real items of class ``c``: a map dataset whose first
        ``len(split.dataset)`` items are the real ones unchanged, followed by exactly
        ``split.n_synthetic[c]`` synthetic items of each class ``c``, every item
        ``(waveform [1, time] float32 tensor, 32000, label_index)``. A species whose model
        collapses (``CollapseError``: a few seconds of noisy calls can defeat 40 steps) gets
        no songs and is listed in ``split.model_failures``; the failure is cached like a model.
        If no minority model could be trained, ``split.dataset`` itself is returned.

    ``split.options["train"]`` overrides :data:`DDSP_TRAIN_DEFAULTS` (keys of ``TrainSettings``);
    the other keys override :data:`DDSP_SONG_DEFAULTS`: ``backgrounds`` and ``scene`` (keys of
    ``SceneConfig``) place the songs, ``jitter`` overrides ``JitterConfig`` knobs,
    ``synthetic_factor`` scales the number of songs (1: balance).
    """
    from ddsp_augment.augment.dataset import DDSPBalancedDataset
    from ddsp_augment.model.storage import ModelFileError, load_species_model
    from ddsp_augment.sampling.bank import SpeciesBank
    from ddsp_augment.sampling.scene import SceneConfig
    from ddsp_augment.training.preprocess import analyse_audio
    from ddsp_augment.training.train import CollapseError, TrainSettings, train_species

    settings = TrainSettings(**_ddsp_train_settings(split.options))
    targets = np.asarray(split.dataset.targets)
    wanted = [c for c in split.minority if split.n_synthetic.get(c, 0) > 0]
    # ``synthetic_factor`` > 1 adds that many times the songs needed to balance.
    song = {**DDSP_SONG_DEFAULTS, **{k: v for k, v in split.options.items() if k != "train"}}
    factor = float(song["synthetic_factor"])

    def fit(label: int) -> str | None:
        """Train (or find) the model of ``label``; the reason if it cannot be trained."""
        directory = split.model_dir(label)
        failed = directory / _FAILED_MARKER
        if failed.is_file():
            return failed.read_text()
        with contextlib.suppress(ModelFileError):
            if load_species_model(directory).info.get("complete"):
                return None
        species = split.classes[label]
        recordings = [
            analyse_audio(
                split.dataset[i][0][0].numpy(),
                split.names[i],
                species,
                split.recordists[i] or split.names[i],
            )
            for i in np.flatnonzero(targets == label)
        ]
        try:
            train_species(recordings, directory, settings, progress=False, log=lambda _: None)
        except CollapseError as error:
            reason = str(error)
            directory.mkdir(parents=True, exist_ok=True)
            atomic_write(failed, lambda tmp: tmp.write_text(reason))
            return reason
        return None

    from joblib import Parallel, delayed

    reasons = Parallel(n_jobs=min(2, len(wanted)) or 1)(delayed(fit)(c) for c in wanted)
    failed = {c: r for c, r in zip(wanted, reasons, strict=True) if r is not None}
    split.model_failures.update({split.classes[c]: r for c, r in failed.items()})
    wanted = [c for c in wanted if c not in failed]
    if not wanted:
        return split.dataset
    entries = {split.classes[c]: load_species_model(split.model_dir(c)) for c in wanted}
    counts = np.bincount(targets, minlength=len(split.classes))
    return DDSPBalancedDataset(
        split.dataset,
        SpeciesBank(entries),
        target={c: int(counts[c]) + round(factor * split.n_synthetic[c]) for c in wanted},
        labels=list(targets),
        label_to_species=dict(enumerate(split.classes)),
        seed=split.seed,
        scene=SceneConfig(
            **{
                key: tuple(value) if isinstance(value, list) else value  # JSON has no tuples
                for key, value in song["scene"].items()
            }
        ),
        backgrounds=song["backgrounds"],
        jitter=song["jitter"],  # None, or knobs that replace the species defaults
        progress=False,
    )


@contextlib.contextmanager
def _seeded_global_rngs(seed: int) -> Iterator[None]:
    """audiomentations draws from the global ``random`` and ``np.random``: seed them for one
    call and restore them afterwards, so classic augmentation repeats exactly and disturbs
    nothing else."""
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the library's own RNG, restored below
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002


def _classic_chain():
    from audiomentations import AddGaussianSNR, Compose, Gain, PitchShift, TimeStretch

    # Moderate ranges: ±2 semitones and ±15 % tempo stay within the natural variation of one
    # species' song; larger shifts would move songs towards other species.
    return Compose(
        [
            PitchShift(min_semitones=-2.0, max_semitones=2.0, p=0.5),
            TimeStretch(min_rate=0.85, max_rate=1.15, leave_length_unchanged=False, p=0.5),
            Gain(min_gain_db=-6.0, max_gain_db=6.0, p=1.0),
            AddGaussianSNR(min_snr_db=10.0, max_snr_db=40.0, p=0.5),
        ]
    )


CLASSIC_DESCRIPTION = (
    "audiomentations Compose: PitchShift ±2 st (p=0.5), TimeStretch 0.85-1.15 (p=0.5), "
    "Gain ±6 dB (p=1), AddGaussianSNR 10-40 dB (p=0.5); one copy per missing clip, sources "
    "cycled over the class's kept clips, drawn afresh every classifier epoch"
)


def _deficits(labels: np.ndarray, minority: Sequence[int], n_classes: int) -> dict[int, int]:
    """Missing clips per minority class to reach the median majority training count."""
    counts = np.bincount(labels, minlength=n_classes)
    majority = [c for c in range(n_classes) if c not in set(minority) and counts[c] > 0]
    target = int(round(float(np.median(counts[majority])))) if majority else int(counts.max())
    return {c: max(0, target - int(counts[c])) for c in minority if counts[c] > 0}


class ClassicCopies(Dataset):
    """Classic-augmented copies of real clips, drawn afresh every epoch (as an audiomentations
    transform in a training loop would be): item ``j`` is a copy of ``waveforms[j]`` through
    :func:`_classic_chain`, seeded by ``(seed, epoch, j)``; items ``(waveform [1, time], 32000,
    label)``."""

    def __init__(self, waveforms: list[torch.Tensor], labels: list[int], seed: int) -> None:
        self.waveforms = waveforms
        self.targets = labels
        self.seed = seed
        self.epoch = 0
        self.chain = _classic_chain()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.waveforms)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        with _seeded_global_rngs(_derived_seed(self.seed, self.epoch, index)):
            audio = self.chain(self.waveforms[index][0].numpy(), sample_rate=SAMPLE_RATE)
        waveform = torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None]
        return waveform, SAMPLE_RATE, self.targets[index]


def _extra_clips(
    corpus: Corpus,
    train_idx: np.ndarray,
    n_extra: dict[int, int],
    augment: bool,
    seed: int,
) -> Dataset:
    """``n_extra[c]`` copies of class ``c``'s training clips (cycled), classic-augmented or not."""
    waveforms, labels = [], []
    for cls, n in n_extra.items():
        sources = train_idx[corpus.labels[train_idx] == cls]
        waveforms += [corpus.waveforms[sources[j % len(sources)]] for j in range(n)]
        labels += [cls] * n
    if augment:
        return ClassicCopies(waveforms, labels, seed)
    return ClipDataset(waveforms, labels, SAMPLE_RATE)


def training_set(
    condition: str, split: Split, corpus: Corpus, ddsp_options: dict[str, Any], cache_root: Path
) -> tuple[Dataset, dict[str, str]]:
    """The training dataset of ``condition`` on ``split``, and ``{species: reason}`` for the
    DDSP models that could not be trained."""
    if condition == "oracle":
        return corpus.dataset(split.full_train_idx), {}
    base = corpus.dataset(split.train_idx)
    if condition == "baseline":
        return base, {}
    deficits = _deficits(corpus.labels[split.train_idx], split.minority, len(corpus.classes))
    seed = _derived_seed(split.seed, split.fold, 1)
    if condition in ("oversample", "classic"):
        extra = _extra_clips(corpus, split.train_idx, deficits, condition == "classic", seed)
        return ConcatDataset([base, extra]), {}
    if condition in DDSP_CONDITIONS:
        n_classic = {c: n // 2 for c, n in deficits.items()} if condition == "ddsp+classic" else {}
        n_ddsp = {c: n - n_classic.get(c, 0) for c, n in deficits.items()}
        # Models depend on the data and the full training settings only (a new TrainSettings field
        # retrains); other DDSP options (how many songs, which scene) reuse them.
        train_settings = _ddsp_train_settings(ddsp_options)
        data_key = json.dumps([corpus.fingerprint, train_settings], sort_keys=True)
        split_key = json.dumps(
            [data_key, [corpus.names[i] for i in split.train_idx], split.minority, seed]
        )
        hook_split = TrainingSplit(
            dataset=base,
            names=[corpus.names[i] for i in split.train_idx],
            data_root=corpus.root,
            recordists=[corpus.recordists[i] for i in split.train_idx],
            classes=corpus.classes,
            minority=list(split.minority),
            n_synthetic=n_ddsp,
            seed=seed,
            cache_dir=cache_root / "splits" / hashlib.sha1(split_key.encode()).hexdigest()[:16],
            options=ddsp_options,
            model_root=cache_root / "models" / hashlib.sha1(data_key.encode()).hexdigest()[:16],
        )
        balanced = ddsp_training_set(hook_split)
        if not n_classic:
            return balanced, hook_split.model_failures
        classic = _extra_clips(corpus, split.train_idx, n_classic, True, seed)
        return ConcatDataset([balanced, classic]), hook_split.model_failures
    raise ValueError(f"unknown condition {condition!r}")


# --- running and reporting ---------------------------------------------------------------------


def run_condition(
    condition: str,
    split: Split,
    corpus: Corpus,
    test_corpus: Corpus,
    args: argparse.Namespace,
    cache: LogMelCache,
    ddsp_options: dict[str, Any],
) -> dict[str, Any]:
    """Train on the condition's training set, score the split's test clips."""
    start = time.perf_counter()
    dataset, failures = training_set(
        condition, split, corpus, ddsp_options, args.cache_dir / "ddsp"
    )
    for species, reason in failures.items():
        warnings.warn(
            f"seed {split.seed} fold {split.fold} {condition}: no DDSP model of {species}, "
            f"its class gets no synthetic songs ({reason})",
            stacklevel=2,
        )
    built = time.perf_counter()
    classifier = make_classifier(
        args.classifier,
        len(corpus.classes),
        seed=_derived_seed(split.seed, split.fold, 2),
        cache=cache,
        **({"steps": args.cnn_steps} if args.classifier == "cnn" else {}),
    )
    classifier.fit(dataset)
    proba = classifier.predict_proba([test_corpus.waveforms[i] for i in split.test_idx])
    y_true = test_corpus.labels[split.test_idx]
    scores = classification_scores(y_true, proba.argmax(1), split.minority, len(corpus.classes))
    return {
        "seed": split.seed,
        "fold": split.fold,
        "n_train": len(dataset),
        "n_test": len(split.test_idx),
        "ddsp_model_failures": failures,
        **{m: scores[m] for m in METRICS},
        "per_class_recall": scores["per_class_recall"],
        "seconds_build": built - start,
        "seconds": time.perf_counter() - start,
    }


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def _ci(diffs: np.ndarray, seed: int) -> dict[str, float]:
    mean, lo, hi = paired_bootstrap_ci(diffs, N_BOOT, seed)
    return {"mean": mean, "lo": lo, "hi": hi}


def summarise(
    results: dict[str, list[dict[str, Any]]], splits: list[Split], classes: list[str]
) -> dict[str, dict[str, Any]]:
    """Per-condition means, stds, paired CIs, gap recovered and per-species recall."""
    table = {
        c: {m: np.array([r[m] for r in rows], np.float64) for m in METRICS}
        for c, rows in results.items()
    }
    means = {c: {m: float(np.nanmean(v)) for m, v in t.items()} for c, t in table.items()}
    non_ddsp = [c for c in results if c not in DDSP_CONDITIONS and c != "oracle"]
    best = max(non_ddsp, key=lambda c: means[c][PRIMARY_METRIC]) if non_ddsp else None
    out = {}
    for c, rows in results.items():
        entry: dict[str, Any] = {
            m: {"mean": means[c][m], "std": float(np.nanstd(table[c][m]))} for m in METRICS
        }
        if "baseline" in results and "oracle" in results:
            entry["gap_recovered"] = gap_recovered(
                means[c][PRIMARY_METRIC],
                means["baseline"][PRIMARY_METRIC],
                means["oracle"][PRIMARY_METRIC],
            )
        if "baseline" in results and c != "baseline":
            entry["vs_baseline"] = {
                m: _ci(table[c][m] - table["baseline"][m], i) for i, m in enumerate(METRICS)
            }
        if c in DDSP_CONDITIONS and best is not None:
            entry["vs_best_non_ddsp"] = {
                "reference": best,
                **{m: _ci(table[c][m] - table[best][m], i) for i, m in enumerate(METRICS)},
            }
        recall = np.array([r["per_class_recall"] for r in rows])  # [splits, classes]
        is_minority = np.array([[k in s.minority for k in range(len(classes))] for s in splits])
        entry["per_species"] = {
            name: {
                "recall": _nanmean(recall[:, k]),
                "recall_as_minority": _nanmean(recall[is_minority[:, k], k]),
                "recall_as_majority": _nanmean(recall[~is_minority[:, k], k]),
            }
            for k, name in enumerate(classes)
        }
        entry["per_split"] = [
            {
                key: r[key]
                for key in ("seed", "fold", "n_train", "n_test", "ddsp_model_failures", *METRICS)
            }
            for r in rows
        ]
        if c in DDSP_CONDITIONS:
            entry["ddsp_model_failures"] = sum(len(r["ddsp_model_failures"]) for r in rows)
        entry["seconds"] = float(sum(r["seconds"] for r in rows))
        out[c] = entry
    return out


def _nanmean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def markdown_table(summary: dict[str, dict[str, Any]], settings: dict[str, Any]) -> str:
    def cell(entry: dict[str, float]) -> str:
        return f"{entry['mean']:.3f} ± {entry['std']:.3f}"

    def ci(entry: dict[str, float] | None) -> str:
        if not entry or entry["mean"] is None or not math.isfinite(entry["mean"]):
            return ""
        return f"{entry['mean']:+.3f} [{entry['lo']:+.3f}, {entry['hi']:+.3f}]"

    protocol = (
        f"{len(settings['seeds'])} seed(s) × {settings['folds']} recordist-grouped fold(s)"
        if settings["test_root"] is None
        else f"{len(settings['seeds'])} seed(s), tested on `{settings['test_root']}`"
    )
    lines = [
        (
            "**Validation run** (scored on cut minority recordings, not the test folds). "
            if settings["scored_on"] != "test folds"
            else ""
        )
        + f"Classifier gain on `{settings['data_root_name']}` ({settings['n_species']} species, "
        f"{settings['n_clips']} clips): {settings['classifier']} classifier, "
        f"{protocol} = {settings['n_splits']} splits, minority = {settings['minority']} "
        f"cut to k = {settings['k']} training recordings; mean ± std over splits; "
        "Δ = paired difference in minority recall with 95 % bootstrap CI.",
        "",
        "| condition | macro-F1 | balanced acc. | minority recall | majority recall "
        "| Δ min. recall vs baseline | gap recovered |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, entry in summary.items():
        gap = entry.get("gap_recovered")
        gap_text = f"{gap:.2f}" if gap is not None and math.isfinite(gap) else ""
        delta = ci(entry.get("vs_baseline", {}).get(PRIMARY_METRIC))
        lines.append(
            f"| {c} | {cell(entry['macro_f1'])} | {cell(entry['balanced_accuracy'])} "
            f"| {cell(entry['minority_recall'])} | {cell(entry['majority_recall'])} "
            f"| {delta} | {gap_text} |"
        )
    for c, entry in summary.items():
        if "vs_best_non_ddsp" in entry:
            versus = entry["vs_best_non_ddsp"]
            lines.append(
                f"\n{c} vs {versus['reference']} (best non-DDSP): Δ minority recall "
                f"{ci(versus[PRIMARY_METRIC])}, Δ macro-F1 {ci(versus['macro_f1'])}"
            )
    failed = {
        species
        for entry in summary.values()
        for row in entry["per_split"]
        for species in row.get("ddsp_model_failures") or {}
    }
    if failed:
        n = max(entry.get("ddsp_model_failures", 0) for entry in summary.values())
        lines.append(
            f"\n{n} species model(s) could not be trained (collapsed) and their classes got no "
            f"DDSP songs in that split: {', '.join(sorted(failed))}."
        )
    return "\n".join(lines) + "\n"


def bar_chart(summary: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = list(summary)
    width = 0.8 / len(conditions)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = np.arange(len(METRICS))
    for i, c in enumerate(conditions):
        heights = [summary[c][m]["mean"] for m in METRICS]
        errors = [summary[c][m]["std"] for m in METRICS]
        ax.bar(
            x + (i - (len(conditions) - 1) / 2) * width,
            heights,
            width,
            yerr=errors,
            capsize=3,
            label=c,
        )
    ax.set_xticks(x, [m.replace("_", " ") for m in METRICS])
    top = max(summary[c][m]["mean"] + summary[c][m]["std"] for c in conditions for m in METRICS)
    ax.set_ylim(0, min(1.0, 1.2 * top) if math.isfinite(top) else 1.0)
    ax.set_ylabel("score (mean ± std over splits)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=min(len(conditions), 6), loc="upper right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def _default_conditions() -> list[str]:
    """DDSP conditions join the default once ``ddsp_augment.augment.dataset`` exists."""
    if importlib.util.find_spec("ddsp_augment.augment.dataset") is None:
        return list(NON_DDSP_CONDITIONS)
    return list(ALL_CONDITIONS)


def _parse_minority(value: str) -> float | list[str]:
    try:
        return float(value)
    except ValueError:
        return [s for s in value.replace(",", " ").split() if s]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data_root",
        type=Path,
        default=DEFAULT_DATA,
        help="<species>/<clip> folders, optional manifest.csv (path, recordist)",
    )
    parser.add_argument(
        "--test_root",
        type=Path,
        default=None,
        help="external test set (same layout); then all of data_root trains",
    )
    parser.add_argument(
        "--minority",
        type=_parse_minority,
        default=0.5,
        help="fraction of species drawn per seed, or comma-separated species",
    )
    parser.add_argument("--k", type=int, default=2, help="training recordings kept per minority")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2")
    parser.add_argument("--folds", type=int, default=None, help="default: 3")
    parser.add_argument("--classifier", choices=("linear", "cnn"), default="linear")
    parser.add_argument("--cnn_steps", type=int, default=400)
    parser.add_argument(
        "--conditions",
        nargs="+",
        choices=ALL_CONDITIONS,
        default=None,
        help="default: all non-DDSP ones, plus DDSP once ddsp_augment.augment.dataset exists",
    )
    parser.add_argument("--species", nargs="+", default=None, help="use only these species")
    parser.add_argument(
        "--ddsp_options",
        type=json.loads,
        default={},
        help="JSON dict passed to ddsp_training_set (part of its cache key)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: seed 0, 2 folds, {QUICK_SPECIES} species, linear",
    )
    parser.add_argument("--full", action="store_true", help="5 seeds x 3 folds")
    parser.add_argument(
        "--validation",
        action="store_true",
        help="score on each split's cut minority recordings of new recordists instead of its "
        "test fold (for choosing settings; use other --seeds than the reported run; no oracle)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (use 1 when other jobs share the cores: 2 busy threads on 2 shared "
        "cores made CNN steps 10x slower)",
    )
    parser.add_argument("--output_path", type=Path, default=ROOT / "results")
    parser.add_argument("--cache_dir", type=Path, default=ROOT / ".cache" / "classifier_gain")
    args = parser.parse_args(argv)
    if args.quick and args.full:
        parser.error("--quick and --full exclude each other")
    preset = {"seeds": [0], "folds": 2} if args.quick else {}
    preset = {"seeds": [0, 1, 2, 3, 4], "folds": 3} if args.full else preset
    args.seeds = args.seeds or preset.get("seeds", [0, 1, 2])
    args.folds = args.folds or preset.get("folds", 3)
    if args.quick:
        args.classifier = "linear"
    args.explicit_conditions = args.conditions is not None
    args.conditions = args.conditions or _default_conditions()
    if args.k < 1:
        parser.error("--k must be >= 1")
    if args.validation and args.test_root is not None:
        parser.error("--validation scores on data_root's own cut recordings, not --test_root")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    timing: dict[str, float] = {}

    species = args.species
    if args.quick and species is None:
        species = sorted(p.name for p in args.data_root.iterdir() if p.is_dir())[:QUICK_SPECIES]
    corpus = load_corpus(args.data_root, species=species)
    test_corpus = corpus
    if args.test_root is not None:
        test_corpus = load_corpus(args.test_root, classes=corpus.classes)
        _check_recordist_overlap(corpus, test_corpus)
    if isinstance(args.minority, list):
        unknown = [s for s in args.minority if s not in corpus.classes]
        if unknown:
            raise SystemExit(f"--minority: unknown species {unknown}; known: {corpus.classes}")
    timing["decode_s"] = time.perf_counter() - started

    t0 = time.perf_counter()
    cache = LogMelCache(FeatureConfig())
    cache.add(corpus.waveforms)
    if test_corpus is not corpus:
        cache.add(test_corpus.waveforms)
    timing["log_mel_s"] = time.perf_counter() - t0

    splits = make_splits(
        corpus,
        None if args.test_root is None else test_corpus,
        args.seeds,
        args.folds,
        args.minority,
        args.k,
    )
    conditions = list(args.conditions)
    if args.validation:
        splits = [validation_split(split, corpus) for split in splits]
        conditions = [c for c in conditions if c != "oracle"]
    skipped: dict[str, str] = {}
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in conditions}
    jobs = [(s, c) for s in splits for c in conditions]
    with tqdm(total=len(jobs), desc="splits x conditions", unit="fit") as bar:
        for split in splits:
            for condition in list(conditions):
                try:
                    row = run_condition(
                        condition, split, corpus, test_corpus, args, cache, args.ddsp_options
                    )
                except NotImplementedError as error:
                    if args.explicit_conditions:
                        raise
                    # Default run before the hook is filled in: report without DDSP.
                    warnings.warn(f"{condition} skipped: {error}", stacklevel=2)
                    skipped[condition] = str(error)
                    conditions.remove(condition)
                    results.pop(condition)
                    bar.total -= len(splits)
                    bar.refresh()
                    continue
                results[condition].append(row)
                bar.set_postfix_str(f"seed {split.seed} fold {split.fold} {condition}")
                bar.update()
    timing.update({f"{c}_s": float(sum(r["seconds"] for r in rows)) for c, rows in results.items()})

    summary = summarise(results, splits, corpus.classes)
    minority_text = (
        f"{args.minority:g} of species (drawn per seed)"
        if isinstance(args.minority, float)
        else ", ".join(args.minority)
    )
    settings = {
        "data_root": str(args.data_root),
        "data_root_name": args.data_root.name,
        "data_fingerprint": corpus.fingerprint,
        "test_root": str(args.test_root) if args.test_root else None,
        "n_clips": len(corpus.names),
        "n_test_clips": len(test_corpus.names) if test_corpus is not corpus else None,
        "n_species": len(corpus.classes),
        "species": corpus.classes,
        "n_recordist_groups": int(len(np.unique(corpus.groups))),
        "grouping": "recordist alone across species, spelling variants merged "
        "(classifier_gain.splits.recordist_groups)",
        "seeds": list(args.seeds),
        "folds": args.folds if args.test_root is None else None,
        "n_splits": len(splits),
        "minority": minority_text,
        "minority_per_seed": {
            str(s.seed): [corpus.classes[c] for c in s.minority] for s in splits if s.fold == 0
        },
        "k": args.k,
        "balance_target": "median training count of the majority species in the split",
        "classic": CLASSIC_DESCRIPTION,
        "classifier": args.classifier,
        "classifier_options": {"steps": args.cnn_steps}
        if args.classifier == "cnn"
        else {"epochs": LinearClipClassifier(1).epochs},
        "augmented_items": "drawn afresh every classifier epoch (set_epoch), DDSP and classic",
        "features": {k: getattr(FeatureConfig(), k) for k in FeatureConfig.__dataclass_fields__},
        "conditions": conditions,
        "skipped_conditions": skipped,
        "primary_metric": PRIMARY_METRIC,
        "gap_recovered": "(cond - baseline) / (oracle - baseline) of mean minority recall",
        "ci": f"paired percentile bootstrap over splits, {N_BOOT} resamples, 95 %",
        "ddsp_options": args.ddsp_options,
        "ddsp_songs": {
            **DDSP_SONG_DEFAULTS,
            **{k: v for k, v in args.ddsp_options.items() if k != "train"},
        },
        "ddsp_train": _ddsp_train_settings(args.ddsp_options),
        "quick": args.quick,
        "scored_on": "validation: cut minority recordings of recordists the kept ones do not "
        "share (not the test folds)"
        if args.validation
        else "test folds",
        "threads": torch.get_num_threads(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    timing["total_s"] = time.perf_counter() - started
    report = {"conditions": summary, "settings": settings, "timing": timing}

    out = args.output_path
    out.mkdir(parents=True, exist_ok=True)
    stem = "classifier_gain_validation" if args.validation else "classifier_gain"
    text = json.dumps(_nan_to_none(report), indent=2)
    atomic_write(out / f"{stem}.json", lambda tmp: tmp.write_text(text + "\n"))
    table = markdown_table(summary, settings)
    table += f"\nWall time {timing['total_s']:.0f} s (decode {timing['decode_s']:.0f} s).\n"
    atomic_write(out / f"{stem}.md", lambda tmp: tmp.write_text(table))
    bar_chart(
        summary,
        out / f"{stem}.png",
        f"{args.data_root.name}: {args.classifier}, {len(splits)} splits, k={args.k}",
    )
    print(table)
    print(f"wrote {out / stem}.json, .md, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
