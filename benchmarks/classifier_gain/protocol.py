"""The split protocol and the run loop: every condition sees the same splits, seeds and tests.

1. Stratified group k-fold over recordists (:func:`.splits.recordist_folds`): no recordist is on
   both sides of a split. Repeated for every seed.
2. Per seed, a fraction of the species (default half) becomes the *minority*; in each split
   their training recordings are cut to ``k`` (from distinct recordists where possible).
   Majority species and the test set are untouched.
3. Every condition (:mod:`.conditions`) trains a fresh classifier on its training set and
   scores the split's test clips whole.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits  # a scikit-learn dependency
from tqdm.auto import tqdm

from .classifiers import (
    BirdNETEmbeddings,
    LogMelCache,
    classification_scores,
    make_classifier,
)
from .conditions import (
    DDSP_CONDITIONS,
    split_species_clips,
    train_species_models,
    training_set,
)
from .corpus import Corpus
from .splits import choose_minority, derived_seed, make_imbalanced, recordist_folds

__all__ = ["METRICS", "Split", "make_splits", "run", "run_condition", "validation_split"]

METRICS = ("macro_f1", "balanced_accuracy", "minority_recall", "majority_recall")


@dataclass
class Split:
    seed: int
    fold: int
    minority: list[int]
    train_idx: np.ndarray  # imbalanced training set (corpus indices)
    full_train_idx: np.ndarray  # before cutting the minority (the oracle's training set)
    test_idx: np.ndarray  # test corpus indices


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
                train_idx, corpus.labels, corpus.groups, chosen, k, derived_seed(seed, fold)
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


def run_condition(
    condition: str,
    split: Split,
    corpus: Corpus,
    test_corpus: Corpus,
    classifier: str,
    classifier_options: dict[str, Any],
    cache: LogMelCache | BirdNETEmbeddings,
    ddsp_options: dict[str, Any],
    cache_root: Path,
) -> dict[str, Any]:
    """Train on the condition's training set, score the split's test clips: one result row."""
    start, cpu = time.perf_counter(), time.process_time()
    dataset, failures = training_set(condition, split, corpus, ddsp_options, cache_root)
    for species, reason in failures.items():
        warnings.warn(
            f"seed {split.seed} fold {split.fold} {condition}: no DDSP model of {species}, "
            f"its class gets no synthetic songs ({reason})",
            stacklevel=2,
        )
    built = time.perf_counter()
    model = make_classifier(
        classifier,
        len(corpus.classes),
        seed=derived_seed(split.seed, split.fold, 2),
        cache=cache,
        **classifier_options,
    )
    model.fit(dataset)
    proba = model.predict_proba([test_corpus.waveforms[i] for i in split.test_idx])
    y_true = test_corpus.labels[split.test_idx]
    scores = classification_scores(y_true, proba.argmax(1), split.minority, len(corpus.classes))
    # A gated dataset's bank counts its draws over this fit (every epoch).
    gated = getattr(dataset, "quality_gate", None) is not None
    return {
        "seed": split.seed,
        "fold": split.fold,
        "n_train": len(dataset),
        "n_test": len(split.test_idx),
        "ddsp_model_failures": failures,
        **{m: scores[m] for m in METRICS},
        "per_class_recall": scores["per_class_recall"],
        "gate": dataset.bank.gate_stats.as_dict() if gated else None,
        "seconds_build": built - start,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
    }


# Relative cost of a condition's fit (its training set's draws: classic copies, DDSP songs,
# the gate's redraws and judgements), measured on the linear classifier: only the order in
# which :func:`run` hands out its tasks, costliest first, so that no long fit is left to run
# alone at the end while the other cores idle.
_COST = {"ddsp+gate": 8.0, "ddsp": 4.0, "classic+scene": 3.0, "ddsp+classic": 3.0, "classic": 2.5}


def _run_task(split: Split, condition: str, threads: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """One condition on one split, in a worker with ``threads`` torch threads.

    numpy's BLAS gets one thread, as in a worker of ``jobs`` = 2 on 2 cores: the products here
    are small (the gate judge's mel filters: ~20 ms each with 2 threads on 2 busy cores, 0.2 ms
    with one), and BLAS rounds by thread count, so the rows do not depend on ``jobs`` or cores.
    """
    torch.set_num_threads(threads)
    with threadpool_limits(limits=1, user_api="blas"):
        return run_condition(condition, split, **kwargs)


def run(
    splits: Sequence[Split],
    conditions: Sequence[str],
    jobs: int = 1,
    **kwargs: Any,
) -> tuple[dict[str, list[dict[str, Any]]], float]:
    """Every condition on every split (``kwargs`` go to :func:`run_condition`).

    The DDSP species models of every split are trained first, ``jobs`` at a time
    (:func:`.conditions.train_species_models`); then ``jobs`` fits run at a time, one torch
    thread each, each (split, condition) a task of its own, the costliest conditions first
    (every fit is seeded by its split, so the rows depend neither on ``jobs`` nor on the order).

    Returns:
        Rows by condition, in split order, and the CPU seconds spent in worker processes
        (0 with ``jobs`` = 1).
    """
    worker_cpu = 0.0
    if any(c in DDSP_CONDITIONS for c in conditions):
        worker_cpu += train_species_models(
            [split_species_clips(split, kwargs["corpus"]) for split in splits],
            kwargs["cache_root"] / "models",
            kwargs["ddsp_options"],
            jobs,
        )
    threads = torch.get_num_threads() if jobs == 1 else 1
    tasks = [(s, c) for c in conditions for s in range(len(splits))]
    tasks.sort(key=lambda task: -_COST.get(task[1], 1.0))  # stable: split order within a cost
    rows = Parallel(n_jobs=jobs, return_as="generator")(
        delayed(_run_task)(splits[s], condition, threads, kwargs) for s, condition in tasks
    )
    by_task = {}
    done = tqdm(zip(tasks, rows, strict=True), total=len(tasks), desc="fits", unit="fit")
    for task, row in done:
        by_task[task] = row
        worker_cpu += row["cpu_seconds"] if jobs > 1 else 0.0
    results = {c: [by_task[s, c] for s in range(len(splits))] for c in conditions}
    return results, worker_cpu
