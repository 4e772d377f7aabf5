import csv
import warnings

import numpy as np
import pytest
from classifier_gain.splits import (
    choose_minority,
    make_imbalanced,
    normalise_recordist,
    recordist_folds,
    recordist_groups,
)
from conftest import XC_GERMANY

MANIFEST = XC_GERMANY / "manifest.csv"


@pytest.fixture(scope="module")
def bundled():
    with open(MANIFEST, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    species = sorted({r["species"] for r in rows})
    labels = np.array([species.index(r["species"]) for r in rows])
    groups = recordist_groups([r["recordist"] for r in rows])
    return labels, groups, [r["recordist"] for r in rows]


def test_normalise_recordist():
    assert normalise_recordist(" Buhl  Johannes ") == normalise_recordist("johannes buhl")
    assert normalise_recordist("Jorge Leitão") == "jorge leitão"


def test_recordist_groups_merge_aliases_only():
    names = [
        "Timo Schnabel ",
        "Timo Schnabel",
        "Buhl Johannes",
        "johannes buhl",
        "W. Agster",
        "Wilken Agster",
        "Sonnenburg",
        "Bodo Sonnenburg",
        "Johannes Dag Mayer",
        "W.",
        "",
        "",
    ]
    g = recordist_groups(names)
    assert g[0] == g[1] and g[2] == g[3] and g[4] == g[5] and g[6] == g[7]
    distinct = [g[0], g[2], g[4], g[6], g[8], g[9], g[10], g[11]]
    assert len(set(distinct)) == len(distinct)  # unknown recordists are singletons


def test_recordist_groups_per_species():
    g = recordist_groups(["Ann Lee", "Ann Lee", "Ann Lee"], species=["a", "b", "a"])
    assert g[0] == g[2] != g[1]


def test_folds_on_bundled_manifest_never_share_a_recordist(bundled):
    labels, groups, names = bundled
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a perfect assignment exists: nothing dropped
        folds = recordist_folds(labels, groups, n_folds=3, seed=0)
    assert len(folds) == 3
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(labels)))  # each clip tested exactly once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        people_train = {normalise_recordist(names[i]) for i in train}
        assert not people_train & {normalise_recordist(names[i]) for i in test}
        assert set(labels[test]) <= set(labels[train])
        assert np.bincount(labels[train]).min() >= 2  # room for k = 2 minorities
    assert len(set(labels[tested])) == len(set(labels))


def test_folds_depend_on_seed(bundled):
    labels, groups, _ = bundled
    a = recordist_folds(labels, groups, 3, seed=0)
    b = recordist_folds(labels, groups, 3, seed=1)
    assert [t.tolist() for _, t in a] == [
        t.tolist() for _, t in recordist_folds(labels, groups, 3, 0)
    ]
    assert {tuple(t) for _, t in a} != {tuple(t) for _, t in b}


def test_single_recordist_species_is_dropped_from_test_with_warning():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    groups = np.array([0, 1, 2, 3, 4, 5, 6, 6])  # class 2: one recordist
    with pytest.warns(UserWarning, match="left out"):
        folds = recordist_folds(labels, groups, 2, seed=0)
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert set(labels[test]) <= set(labels[train])
    tested = np.concatenate([test for _, test in folds])
    assert 2 not in labels[tested]  # never tested...
    assert any(2 in labels[train] for train, _ in folds)  # ...but still trained on


def test_folds_reject_bad_fold_count():
    with pytest.raises(ValueError):
        recordist_folds([0, 1, 0, 1], [0, 0, 1, 1], n_folds=3, seed=0)


def test_make_imbalanced_cuts_minority_only(bundled):
    labels, groups, _ = bundled
    train, test = recordist_folds(labels, groups, 3, seed=0)[0]
    minority = [0, 3, 7]
    kept = make_imbalanced(train, labels, groups, minority, k=2, seed=0)
    assert set(kept) <= set(train) and not set(kept) & set(test)
    for cls in range(labels.max() + 1):
        before = train[labels[train] == cls]
        after = kept[labels[kept] == cls]
        if cls in minority:
            assert len(after) == min(2, len(before))
            # distinct recordists whenever the class has that many in training
            assert len(set(groups[after])) == min(2, len(set(groups[before])))
        else:
            assert after.tolist() == before.tolist()
    again = make_imbalanced(train, labels, groups, minority, k=2, seed=0)
    assert again.tolist() == kept.tolist()


def test_make_imbalanced_small_class_and_bad_k():
    labels = np.array([0, 0, 0, 1])
    groups = np.array([0, 0, 1, 2])
    kept = make_imbalanced(np.arange(4), labels, groups, [0, 1], k=2, seed=3)
    assert (labels[kept] == 0).sum() == 2 and len(set(groups[kept[labels[kept] == 0]])) == 2
    assert (labels[kept] == 1).sum() == 1  # fewer than k available: all kept
    with pytest.raises(ValueError):
        make_imbalanced(np.arange(4), labels, groups, [0], k=0, seed=0)


def test_choose_minority():
    classes = [f"s{i}" for i in range(20)]
    picked = choose_minority(classes, 0.5, seed=0)
    assert len(picked) == 10 and set(picked) <= set(classes)
    assert picked == [c for c in classes if c in picked]  # original order
    assert picked == choose_minority(classes, 0.5, seed=0)
    assert picked != choose_minority(classes, 0.5, seed=1)
    assert len(choose_minority(["a", "b"], 0.01, seed=0)) == 1
    assert len(choose_minority(["a", "b", "c"], 0.99, seed=0)) == 2
    with pytest.raises(ValueError):
        choose_minority(classes, 1.0)
