"""Leak-free evaluation splits for small bird-sound datasets, and controlled class imbalance.

Several clips of one species often come from one recordist, usually one session: the same bird,
microphone, site and background. A random clip split therefore leaks, so every split here keeps
each recordist *group* entirely on one side.

Group key: **the recordist alone**, across species. A recordist who recorded two species shares
microphone, site noise and background birds between them; with recordist-per-species groups,
their clips of species B could sit in test while their clips of species A sit in train, and the
classifier could exploit (or be confused by) the shared channel instead of the birds. Grouping by
recordist alone costs only some stratification freedom, so it is the default; pass
``recordist_groups(..., species=labels)`` to group by (species, recordist) instead.

Recordist names in crowd-sourced metadata are inconsistent (``"Timo Schnabel "``,
``"Buhl Johannes"`` vs ``"johannes buhl"``, ``"W. Agster"`` vs ``"Wilken Agster"``,
``"Sonnenburg"`` vs ``"Bodo Sonnenburg"``). :func:`recordist_groups` merges such aliases; when in
doubt it merges, because an over-merged group only makes the split stricter, while a missed alias
leaks.
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Sequence

import numpy as np

__all__ = [
    "choose_minority",
    "derived_seed",
    "make_imbalanced",
    "normalise_recordist",
    "recordist_folds",
    "recordist_groups",
]

# Candidate fold assignments tried per seed; the first without a defect is kept.
_FOLD_ATTEMPTS = 50


def derived_seed(*parts: int) -> int:
    """A seed for one use (split, condition, epoch, item...) derived from integer ``parts``:
    independent streams for every combination, the same ones on every run."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def normalise_recordist(name: str) -> str:
    """Canonical spelling: Unicode NFKC, case-folded, whitespace collapsed, words sorted.

    ``"Buhl  Johannes "`` and ``"johannes buhl"`` both give ``"buhl johannes"``.
    """
    words = unicodedata.normalize("NFKC", name).casefold().split()
    return " ".join(sorted(words))


def _is_alias(short: list[str], long: list[str]) -> bool:
    """Whether every word of ``short`` matches a distinct word of ``long``, one of them a surname.

    A word matches an equal word, or an initial (``"w."`` / ``"w"``) matches a word starting with
    that letter. At least one full word of ≥ 3 letters must match exactly, so ``"W."`` alone
    never merges with anyone.
    """
    if len(short) > len(long):
        return False
    remaining = list(long)
    exact = False
    for word in short:
        stem = word.rstrip(".")
        if word in remaining:
            remaining.remove(word)
            exact = exact or len(stem) >= 3
            continue
        if len(stem) == 1:
            match = next((w for w in remaining if w.startswith(stem)), None)
            if match is not None:
                remaining.remove(match)
                continue
        return False
    return exact


def recordist_groups(
    recordists: Sequence[str], species: Sequence[object] | None = None
) -> np.ndarray:
    """Integer group id ``[n]`` per recording, merging spelling variants of one recordist.

    Args:
        recordists: Recordist name per recording. An empty name (unknown recordist) gets a group
            of its own, i.e. that recording is treated as independent of all others.
        species: If given, groups are (species, recordist): the same person's recordings of
            different species may then fall on different sides of a split (see module docstring
            for why the default is the recordist alone).

    Returns:
        ``int64 [n]`` group ids, numbered in order of first appearance.
    """
    keys = [normalise_recordist(name) for name in recordists]
    unique = sorted({key for key in keys if key})
    parent = {key: key for key in unique}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    words = {key: key.split() for key in unique}
    for i, a in enumerate(unique):
        for b in unique[i + 1 :]:
            short, long = sorted((words[a], words[b]), key=len)
            if _is_alias(short, long):
                parent[find(a)] = find(b)

    ids: dict[object, int] = {}
    out = np.empty(len(keys), np.int64)
    for i, key in enumerate(keys):
        person: object = find(key) if key else ("unknown", i)
        group = (species[i], person) if species is not None else person
        out[i] = ids.setdefault(group, len(ids))
    return out


def _greedy_group_folds(
    labels: np.ndarray, groups: np.ndarray, n_folds: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One stratified group k-fold assignment, groups visited in random order.

    Same greedy rule as ``sklearn.model_selection.StratifiedGroupKFold``: each group goes to the
    fold that minimises the mean (over classes) spread across folds of the fraction of the class
    in each fold, ties to the smallest fold. sklearn visits groups sorted by the spread of their
    class counts and shuffles only ties, so with ``shuffle=True`` different seeds give (nearly)
    the same folds (on the bundled data: identical folds for 5 seeds) and repeated seeds would
    add no split variance; visiting groups in random order fixes that.
    """
    class_ids, y = np.unique(labels, return_inverse=True)
    group_ids, g = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(group_ids), len(class_ids)))
    np.add.at(counts, (g, y), 1)
    class_total = counts.sum(0)
    per_fold = np.zeros((n_folds, len(class_ids)))
    fold_of_group = np.empty(len(group_ids), np.int64)
    for group in rng.permutation(len(group_ids)):
        spreads = np.empty(n_folds)
        for fold in range(n_folds):
            per_fold[fold] += counts[group]
            spreads[fold] = np.mean(np.std(per_fold / class_total, axis=0))
            per_fold[fold] -= counts[group]
        sizes = per_fold.sum(1)
        best = np.flatnonzero(np.isclose(spreads, spreads.min()))
        fold_of_group[group] = best[np.argmin(sizes[best])]
        per_fold[fold_of_group[group]] += counts[group]
    fold_of_item = fold_of_group[g]
    return [
        (np.flatnonzero(fold_of_item != fold), np.flatnonzero(fold_of_item == fold))
        for fold in range(n_folds)
    ]


def _fold_defects(
    folds: list[tuple[np.ndarray, np.ndarray]], labels: np.ndarray, min_train: int
) -> tuple[int, int, int]:
    """Lexicographic badness of a fold assignment.

    (fold-class pairs with test recordings but no training recording, classes never tested,
    fold-class pairs with fewer than ``min_train`` training recordings).
    """
    untrained = thin = 0
    tested: set[int] = set()
    all_classes = np.unique(labels)
    for train_idx, test_idx in folds:
        train_counts = dict(zip(*np.unique(labels[train_idx], return_counts=True), strict=True))
        test_classes = set(labels[test_idx].tolist())
        untrained += sum(1 for c in test_classes if c not in train_counts)
        tested |= {c for c in test_classes if c in train_counts}
        thin += sum(1 for c in all_classes if train_counts.get(c, 0) < min_train)
    return untrained, len(set(all_classes.tolist()) - tested), thin


def recordist_folds(
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[int] | np.ndarray,
    n_folds: int,
    seed: int,
    min_train: int = 2,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified group k-fold: no group (recordist) is on both sides of any fold.

    Up to 50 randomised stratified group k-fold assignments are drawn from ``seed`` (the
    ``StratifiedGroupKFold`` greedy rule, see :func:`_greedy_group_folds` for why not sklearn's
    class itself). The first one is kept in which every species with test recordings in a fold
    keeps ≥ 1 training recording there, every species is tested in some fold, and every species
    keeps ≥ ``min_train`` training recordings in every fold (so a minority cut to k = 2 really
    has 2); failing that, the one with the fewest such defects, in that order of importance.
    A species recorded by few people can otherwise land entirely in one test fold.

    What happens when no assignment is perfect (e.g. a species with a single recordist, or fewer
    recordists than folds plus one): in a fold where a species has no training recording, its
    test recordings are **removed from that fold's test set** (a classifier cannot be expected to
    recognise a species it never heard, and moving them to train would break the recordist
    rule). A species with a single recordist is thus never tested but still trained on, as a
    distractor. A ``UserWarning`` names the classes and folds concerned. A species with fewer
    than ``min_train`` training recordings in a fold simply has fewer.

    Args:
        labels: Class index per recording ``[n]``.
        groups: Group id per recording ``[n]`` (see :func:`recordist_groups`).
        n_folds: Number of folds (≥ 2, ≤ number of groups).
        seed: Seed of the fold assignment.
        min_train: Training recordings per species and fold to aim for.

    Returns:
        ``n_folds`` pairs ``(train_idx, test_idx)`` of sorted ``int64`` index arrays.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if labels.shape != groups.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and groups {groups.shape} must be equal 1-D")
    n_groups = len(np.unique(groups))
    if n_folds < 2 or n_folds > n_groups:
        raise ValueError(f"n_folds must be in [2, {n_groups}] (number of groups), got {n_folds}")

    rng = np.random.default_rng([seed, n_folds])
    best: list[tuple[np.ndarray, np.ndarray]] = []
    best_defects: tuple[int, int, int] | None = None
    for _ in range(_FOLD_ATTEMPTS):
        folds = _greedy_group_folds(labels, groups, n_folds, rng)
        defects = _fold_defects(folds, labels, min_train)
        if best_defects is None or defects < best_defects:
            best, best_defects = folds, defects
        if defects == (0, 0, 0):
            break

    cleaned = []
    for fold, (train_idx, test_idx) in enumerate(best):
        trained = np.isin(labels[test_idx], labels[train_idx])
        if not trained.all():
            dropped = sorted(set(labels[test_idx][~trained].tolist()))
            warnings.warn(
                f"fold {fold} (seed {seed}): classes {dropped} have no training recording from "
                "another recordist; their recordings are left out of this fold's test set",
                stacklevel=2,
            )
        cleaned.append((train_idx.astype(np.int64), test_idx[trained].astype(np.int64)))
    return cleaned


def make_imbalanced(
    train_idx: Sequence[int] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[int] | np.ndarray,
    minority_classes: Sequence[int],
    k: int,
    seed: int,
) -> np.ndarray:
    """Cut each minority class of a training set down to ``k`` recordings.

    Kept recordings are drawn from as many distinct groups (recordists) as possible: recordists
    are shuffled and visited round-robin, one random recording each per round. Majority classes
    and the test set are not touched. A minority class with ≤ ``k`` training recordings keeps
    all of them.

    Args:
        train_idx: Indices of the full training set.
        labels: Class index per recording of the whole data set ``[n]``.
        groups: Group id per recording of the whole data set ``[n]``.
        minority_classes: Classes to cut.
        k: Training recordings kept per minority class (≥ 1).
        seed: Seed of the choice.

    Returns:
        Sorted ``int64`` indices, a subset of ``train_idx``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    train_idx = np.asarray(train_idx, np.int64)
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    minority = set(int(c) for c in minority_classes)
    kept = [train_idx[~np.isin(labels[train_idx], list(minority))]]
    for cls in sorted(minority):
        members = train_idx[labels[train_idx] == cls]
        if len(members) <= k:
            kept.append(members)
            continue
        by_group: dict[int, list[int]] = {}
        for index in rng.permutation(members):
            by_group.setdefault(int(groups[index]), []).append(int(index))
        queues = [by_group[g] for g in rng.permutation(sorted(by_group))]
        chosen: list[int] = []
        while len(chosen) < k:
            for queue in queues:
                if queue and len(chosen) < k:
                    chosen.append(queue.pop())
        kept.append(np.asarray(chosen, np.int64))
    return np.sort(np.concatenate(kept))


def choose_minority(classes: Sequence, fraction: float = 0.5, seed: int = 0) -> list:
    """Draw ``round(fraction * len(classes))`` classes (at least 1, at most all but one).

    Returns them in the order they appear in ``classes``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(classes) < 2:
        raise ValueError("need at least two classes to make some of them a minority")
    n = min(max(round(fraction * len(classes)), 1), len(classes) - 1)
    picked = set(np.random.default_rng(seed).choice(len(classes), size=n, replace=False).tolist())
    return [cls for i, cls in enumerate(classes) if i in picked]
