"""The classifier benchmark's conditions and protocol (its splits and metrics live in
test_splits and test_classification): classic copies, the extra clips of the balancing
conditions, validation splits, the DDSP training set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from classifier_gain import cli
from classifier_gain.classifiers import ClipDataset, set_epoch
from classifier_gain.cli import parse_args
from classifier_gain.conditions import (
    ddsp_training_set,
    extra_clips,
    scene_backgrounds,
    scene_config,
)
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


def test_classic_scene_copies_are_the_classic_copies_heard_in_the_scene():
    corpus = _Corpus()
    floors = scene_backgrounds(ClipDataset(corpus.waveforms, corpus.labels))
    assert floors.shape == (5, 1025)
    classic = extra_clips(corpus, np.arange(5), {1: 3}, augment=True, seed=7)
    # Twice as far, nothing else: spreading halves the amplitude (air absorption at 3 kHz over
    # one more metre is ~0.02 dB).
    far = scene_config({"scene": {"background": "none", "distance_m": [2.0, 2.0], "rt60_s": None}})
    farther = extra_clips(corpus, np.arange(5), {1: 3}, True, 7, far, floors)
    for j in range(3):
        ratio = farther[j][0].norm() / classic[j][0].norm()
        assert ratio == pytest.approx(0.5, abs=0.005)
    # The shared default scene: same length, other samples, repeatable for a seed.
    scene = scene_config({})
    placed = extra_clips(corpus, np.arange(5), {1: 3}, True, 7, scene, floors)
    again = extra_clips(corpus, np.arange(5), {1: 3}, True, 7, scene, floors)
    for j in range(3):
        assert placed[j][0].shape == classic[j][0].shape and placed[j][2] == 1
        assert torch.isfinite(placed[j][0]).all()
        assert not torch.equal(placed[j][0], classic[j][0])
        assert torch.equal(placed[j][0], again[j][0])
    with pytest.raises(ValueError, match="augment"):
        extra_clips(corpus, np.arange(5), {1: 3}, False, 7, scene, floors)


def test_cli_takes_a_k_curve_and_rejects_unknown_ddsp_options():
    args = parse_args(["--k", "1", "2", "4", "--classifier", "linear", "cnn"])
    assert args.k == [1, 2, 4] and args.classifier == ["linear", "cnn"]
    assert "classic+scene" in args.conditions and args.seeds == [0, 1, 2]
    with pytest.raises(SystemExit):
        parse_args(["--ddsp_options", '{"backgrounds": "species"}'])
    with pytest.raises(SystemExit):
        parse_args(["--k", "0"])


def test_cli_quick_keeps_the_chosen_classifier_and_names_a_missing_birdnet_extra(
    monkeypatch, capsys
):
    assert parse_args(["--quick"]).classifier == ["linear"]
    monkeypatch.setattr(cli, "birdnet_available", lambda: True)
    assert parse_args(["--quick", "--classifier", "birdnet"]).classifier == ["birdnet"]
    monkeypatch.setattr(cli, "birdnet_available", lambda: False)
    with pytest.raises(SystemExit):
        parse_args(["--classifier", "linear", "birdnet"])
    assert 'pip install -e ".[birdnet]"' in capsys.readouterr().err


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


def test_paired_bootstrap_matches_scipy_percentile_bootstrap():
    from classifier_gain.classifiers import paired_bootstrap_ci
    from scipy.stats import bootstrap

    diffs = np.random.default_rng(3).normal(0.03, 0.05, 9)
    mean, lo, hi = paired_bootstrap_ci(diffs, 20000, seed=0)
    reference = bootstrap(
        (diffs,), np.mean, n_resamples=20000, method="percentile", random_state=1
    ).confidence_interval
    assert mean == pytest.approx(diffs.mean())
    assert lo == pytest.approx(reference.low, abs=0.002)
    assert hi == pytest.approx(reference.high, abs=0.002)


def _gate_corpus():
    """Two tonal species as a benchmark corpus: 3 clips of Parus_major, 2 of Fringilla_coelebs
    (the small bank's species), one recordist each."""
    from classifier_gain.corpus import Corpus

    waveforms, labels = _tiny_corpus()
    return Corpus(
        root=None,
        names=[f"s{label}/{i}.wav" for i, label in enumerate(labels)],
        classes=["Parus_major", "Fringilla_coelebs"],
        labels=labels,
        recordists=[f"r{i}" for i in range(len(labels))],
        locations=[None] * len(labels),
        groups=np.arange(len(labels)),
        waveforms=waveforms,
        fingerprint="tiny",
    )


def test_ddsp_gate_judges_every_song_with_a_judge_of_the_split_training_clips(
    small_bank, tmp_path, monkeypatch
):
    from classifier_gain import conditions

    corpus = _gate_corpus()
    # Fringilla (class 1) is the minority, cut to clip 3: it needs 2 songs to reach 3.
    split = Split(0, 0, [1], np.array([0, 1, 2, 3]), np.arange(5), np.array([4]))
    monkeypatch.setattr(conditions, "build_bank", lambda *args, **kwargs: (small_bank, {}))
    small_bank.gate_stats = type(small_bank.gate_stats)()
    options = {"gate": {"min_confidence": 0.0}}
    dataset, failures = conditions.training_set("ddsp+gate", split, corpus, options, tmp_path)
    assert failures == {} and len(dataset) == 6
    judge, threshold = dataset.quality_gate
    # The real-clip judge knows the training side only: both species, fitted on clips 0-3.
    assert judge.__self__.species == ["Fringilla_coelebs", "Parus_major"]
    assert threshold == 0.0
    # 2 kHz vs 3 kHz tones: the judge tells the training clips apart.
    assert judge(corpus.waveforms[3][0].numpy(), 32000, "Fringilla_coelebs") > 0.9
    assert judge(corpus.waveforms[0][0].numpy(), 32000, "Fringilla_coelebs") < 0.1
    songs = [dataset[i] for i in (4, 5)]
    assert [label for _, _, label in songs] == [1, 1]
    assert all(w.shape == (1, 16000) and torch.isfinite(w).all() for w, _, _ in songs)
    # Threshold 0 accepts every first draw: each song judged once.
    stats = dataset.bank.gate_stats
    assert (stats.items, stats.draws, stats.accepted) == (2, 2, 2)
    plain, _ = conditions.training_set("ddsp", split, corpus, options, tmp_path)
    assert plain.quality_gate is None and len(plain) == 6


def test_gate_settings_reject_unknown_judges_and_keys():
    from classifier_gain.conditions import gate_settings

    assert gate_settings({}) == {"judge": "real", "min_confidence": 0.5}
    with pytest.raises(ValueError, match="judge"):
        gate_settings({"gate": {"judge": "perch"}})
    with pytest.raises(ValueError, match="unknown keys"):
        gate_settings({"gate": {"threshold": 0.2}})
    with pytest.raises(ValueError, match="min_confidence"):
        gate_settings({"gate": {"min_confidence": 1.5}})


def test_species_models_are_cached_per_species_and_clip_set(tmp_path):
    from classifier_gain.conditions import species_model_dir

    from ddsp_augment.augment.bank_builder import Clip

    audio = np.zeros(8, np.float32)
    a, b, c = (Clip(audio, "A", name) for name in ("A/1.wav", "A/2.wav", "A/3.wav"))
    # The same recordings kept in another split (in another order) reuse the model.
    assert species_model_dir(tmp_path, [a, b]) == species_model_dir(tmp_path, [b, a])
    assert species_model_dir(tmp_path, [a, b]) != species_model_dir(tmp_path, [a, c])
    assert species_model_dir(tmp_path, [a, b]).parent == tmp_path


def test_a_screened_model_is_keyed_by_where_its_clips_were_recorded(tmp_path):
    from classifier_gain.conditions import species_model_dir

    from ddsp_augment.augment.bank_builder import Clip

    class Screen:
        name = "fake"

    audio = np.zeros(8, np.float32)
    here = [Clip(audio, "A", "A/1.wav", location=(51.0, 10.0))]
    moved = [Clip(audio, "A", "A/1.wav", location=(40.0, -3.0))]
    unknown = [Clip(audio, "A", "A/1.wav")]
    # Only a screen asks where: unscreened, the three are one model.
    assert species_model_dir(tmp_path, here) == species_model_dir(tmp_path, moved)
    assert species_model_dir(tmp_path, here) == species_model_dir(tmp_path, unknown)
    screened = [species_model_dir(tmp_path, clips, screen=Screen()) for clips in (here, moved)]
    assert screened[0] != screened[1]
    # A screened model of clips with no place keeps the key it had before places were read.
    assert species_model_dir(tmp_path, unknown, screen=Screen()) not in screened


def test_the_corpus_reads_where_each_clip_was_recorded_and_splits_carry_it(tmp_path):
    from classifier_gain.conditions import split_species_clips
    from classifier_gain.corpus import load_corpus

    rng = np.random.default_rng(0)
    for species in ("Parus_major", "Fringilla_coelebs"):
        for i in range(2):
            path = tmp_path / species / f"{i}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, 0.1 * rng.standard_normal(3200).astype(np.float32), 32000)
    (tmp_path / "manifest.csv").write_text(
        "path,recordist,lat,lng\n"
        "Parus_major/0.wav,Ann,51.5,10.25\n"
        "Parus_major/1.wav,Bob,,\n"  # xeno-canto hides some sites: no place
        "Fringilla_coelebs/0.wav,Cy,-33.9,18.4\n"
    )
    corpus = load_corpus(tmp_path)
    places = dict(zip(corpus.names, corpus.locations, strict=True))
    assert places == {
        "Fringilla_coelebs/0.wav": (-33.9, 18.4),
        "Fringilla_coelebs/1.wav": None,
        "Parus_major/0.wav": (51.5, 10.25),
        "Parus_major/1.wav": None,
    }
    minority = corpus.classes.index("Parus_major")
    train = np.array([i for i, n in enumerate(corpus.names) if n != "Parus_major/1.wav"])
    split = Split(0, 0, [minority], train, np.arange(4), np.array([]))
    clips, every = split_species_clips(split, corpus)
    assert [(c.name, c.location) for c in clips["Parus_major"]] == [
        ("Parus_major/0.wav", (51.5, 10.25))
    ]
    assert {c.name: c.location for c in every} == {
        n: places[n] for n in corpus.names if n != "Parus_major/1.wav"
    }


def test_run_gives_the_same_rows_with_one_or_two_jobs(tmp_path):
    from classifier_gain.classifiers import LogMelCache
    from classifier_gain.protocol import run

    corpus = _gate_corpus()
    splits = [
        Split(0, 0, [1], np.array([0, 1, 3]), np.array([0, 1, 3]), np.array([2, 4])),
        Split(0, 1, [1], np.array([1, 2, 4]), np.array([1, 2, 4]), np.array([0, 3])),
    ]
    cache = LogMelCache()
    cache.add(corpus.waveforms)
    kwargs = dict(
        corpus=corpus,
        test_corpus=corpus,
        classifier="linear",
        classifier_options={"epochs": 2},
        cache=cache,
        ddsp_options={},
        cache_root=tmp_path,
    )
    one, cpu_one = run(splits, ["baseline", "classic"], jobs=1, **kwargs)
    two, cpu_two = run(splits, ["baseline", "classic"], jobs=2, **kwargs)
    assert cpu_one == 0.0 and cpu_two > 0.0  # worker CPU is counted only with workers
    # Class 0 keeps 2 clips, minority class 1 one: classic adds one copy.
    for condition, n_train in (("baseline", 3), ("classic", 4)):
        assert [r["fold"] for r in two[condition]] == [0, 1]
        for a, b in zip(one[condition], two[condition], strict=True):
            assert a["minority_recall"] == b["minority_recall"]
            assert a["macro_f1"] == pytest.approx(b["macro_f1"], abs=1e-9)
            assert a["n_train"] == b["n_train"] == n_train


def test_resynthesis_share_re_sings_the_kept_clips_in_the_scene(small_bank, tmp_path, monkeypatch):
    from classifier_gain import conditions

    corpus = _gate_corpus()
    split = Split(0, 0, [1], np.array([0, 1, 2, 3]), np.arange(5), np.array([4]))
    monkeypatch.setattr(conditions, "build_bank", lambda *args, **kwargs: (small_bank, {}))
    options = {"resynthesis": 0.5}
    dataset, _ = conditions.training_set("ddsp", split, corpus, options, tmp_path)
    # 4 real clips, then 1 recombined song and 1 re-sung copy of clip 3 (the kept minority clip).
    balanced, resung = dataset.datasets
    assert len(balanced) == 5 and len(resung) == 1
    assert resung.species == ["Fringilla_coelebs"] and resung.targets == [1]
    assert resung.noise == "model"  # the songs' noise source (DDSP_SONG_DEFAULTS), not the bank's
    assert torch.equal(resung.waveforms[0], corpus.waveforms[3])
    first = resung[0][0]
    assert first.shape == (1, 16000) and torch.isfinite(first).all() and first.abs().max() > 0
    assert torch.equal(first, resung[0][0])  # seeded by (seed, epoch, index)
    set_epoch(dataset, 1)
    assert not torch.equal(first, resung[0][0])  # drawn afresh every epoch


def test_cnn_budget_is_chosen_only_on_validation_by_the_mean_over_conditions():
    def record(steps, recalls):
        conditions = {f"c{i}": {"minority_recall": {"mean": r}} for i, r in enumerate(recalls)}
        options = {"steps": steps}
        return {"classifier": "cnn", "classifier_options": options, "conditions": conditions}

    runs = [record(100, [0.1, 0.3]), record(200, [0.25, 0.2]), record(400, [0.0, 0.35])]
    choice = cli.cnn_steps_choice(runs, validation=True)
    assert choice["scores"] == pytest.approx({"100": 0.2, "200": 0.225, "400": 0.175})
    assert choice["chosen"] == 200
    assert cli.cnn_steps_choice(runs, validation=False)["chosen"] is None
    args = parse_args(["--classifier", "linear", "cnn", "--cnn_steps", "100", "200"])
    assert [(c, o.get("steps")) for c, o in cli._variants(args)] == [
        ("linear", None),
        ("cnn", 100),
        ("cnn", 200),
    ]


def test_shared_prior_is_trained_once_per_split_and_starts_every_species(
    small_bank, tmp_path, monkeypatch
):
    from classifier_gain import conditions

    from ddsp_augment.training.train import CollapseError

    corpus = _gate_corpus()
    split = Split(0, 0, [1], np.array([0, 1, 2, 3]), np.arange(5), np.array([4]))
    priors, starts = [], []

    def fake_prior(recordings, directory, settings, **kwargs):
        priors.append(([r.species for r in recordings], settings.steps_per_epoch))

    def fake_build(clips, directory, settings, **kwargs):
        starts.append((clips[0].species, settings.prior, directory))
        return small_bank, {}

    monkeypatch.setattr(conditions, "train_prior", fake_prior)
    monkeypatch.setattr(conditions, "build_bank", fake_build)
    options = {"prior": {"steps_per_epoch": 7}}
    for _ in range(2):  # the second split's run finds the prior cached
        dataset, failures = conditions.training_set("ddsp", split, corpus, options, tmp_path)
        assert failures == {} and len(dataset) == 6
    # One prior, on all 4 training clips of both species (never the test clip 4).
    assert priors == [(["Parus_major"] * 3 + ["Fringilla_coelebs"], 7)]
    prior_dir = Path(starts[0][1])
    assert prior_dir.parent == tmp_path / "models" / "priors"
    assert [s[0] for s in starts] == ["Fringilla_coelebs"] * 2 and starts[0] == starts[1]
    clips = conditions.split_species_clips(split, corpus)[0]["Fringilla_coelebs"]
    models = tmp_path / "models"
    assert starts[0][2] == conditions.species_model_dir(models, clips, prior_dir)
    assert starts[0][2] != conditions.species_model_dir(models, clips)  # from scratch: another

    def collapse(recordings, directory, settings, **kwargs):
        raise CollapseError("prior: no epoch produced a usable model")

    monkeypatch.setattr(conditions, "train_prior", collapse)
    options = {"prior": {"steps_per_epoch": 8}}  # another prior: trained, collapses
    conditions.training_set("ddsp", split, corpus, options, tmp_path)
    assert starts[-1][1] is None  # the species trains from scratch
