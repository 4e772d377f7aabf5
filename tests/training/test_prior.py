"""The shared prior: trained on every species pooled, species fine-tuned from it."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import torch

from ddsp_augment import SpeciesBank
from ddsp_augment.augment import bank_builder
from ddsp_augment.augment.bank_builder import Clip, build_bank
from ddsp_augment.model.storage import (
    PRIOR_SPECIES,
    ModelFileError,
    load_prior,
    load_species_model,
    sha256_file,
)
from ddsp_augment.training import prior as prior_module
from ddsp_augment.training.preprocess import preprocess_folder
from ddsp_augment.training.prior import PRIOR_DIR, prior_split, train_prior
from ddsp_augment.training.train import (
    TrainSettings,
    load_species_recordings,
    split_by_recordist,
    train_folder,
    train_species,
)

TINY = TrainSettings(
    epochs=2,
    steps_per_epoch=2,
    batch_size=2,
    crop_seconds=0.25,
    decoder={"hidden": 16, "n_layers": 2},
    seed=0,
    threads=1,
    device="cpu",
)
QUIET = {"progress": False, "log": lambda _: None}


@pytest.fixture(scope="module")
def processed(tonal_clips, tmp_path_factory):
    """Two species, two recordings each (held-out stretches validate them)."""
    data = tmp_path_factory.mktemp("prior-data")
    for species, paths in tonal_clips.items():
        (data / species).mkdir()
        for path in paths[:2]:
            (data / species / path.name).symlink_to(path)
    out = tmp_path_factory.mktemp("prior-processed")
    preprocess_folder(data, out, progress=False)
    return out


@pytest.fixture(scope="module")
def trained(processed, tmp_path_factory):
    """``train --prior shared`` on both species: (models folder, summary rows)."""
    models = tmp_path_factory.mktemp("prior-models")
    return models, train_folder(processed, models, TINY, progress=False, prior="shared")


@pytest.fixture(scope="module")
def recordings(processed):
    return {
        name: load_species_recordings(processed, name)
        for name in ("Parus_major", "Fringilla_coelebs")
    }


def _weights(directory) -> dict[str, torch.Tensor]:
    return load_species_model(directory).model.state_dict()


def test_train_folder_writes_the_prior_then_species_from_it(trained, recordings):
    models, rows = trained
    assert [r["species"] for r in rows] == [PRIOR_DIR, "Fringilla_coelebs", "Parus_major"]
    assert all(r["status"] == "trained" for r in rows)
    prior = load_prior(models / PRIOR_DIR)
    assert prior.species == PRIOR_SPECIES
    assert prior.info["prior_of"] == ["Fringilla_coelebs", "Parus_major"]
    assert prior.info["complete"] is True
    # Each species' held-out stretch stays out of the prior: 4 heads train it, 4 tails validate.
    data = prior.info["training_data"]
    assert len(data["recordings"]) == 4 and len(data["validation_recordings"]) == 4
    tails = {r.name for recs in recordings.values() for r in split_by_recordist(recs, 0.25, 0)[1]}
    assert {name.split("/", 1)[1] for name in data["validation_recordings"]} == tails
    weights_hash = sha256_file(models / PRIOR_DIR / "weights.safetensors")
    for species in ("Fringilla_coelebs", "Parus_major"):
        info = load_species_model(models / species).info
        assert info["prior"]["weights_sha256"] == weights_hash
        assert info["prior"]["species"] == ["Fringilla_coelebs", "Parus_major"]
        assert info["settings"]["prior"] == str(models / PRIOR_DIR)


def test_species_bank_never_takes_the_prior_for_a_species(trained, tmp_path):
    models, _ = trained
    assert SpeciesBank.load(models).species == ["Fringilla_coelebs", "Parus_major"]
    with pytest.raises(ModelFileError, match="shared prior") as error:
        SpeciesBank.load(models / PRIOR_DIR)
    assert error.value.path == models / PRIOR_DIR
    with pytest.raises(ModelFileError, match="shared prior"):
        SpeciesBank.load(models, species=[PRIOR_SPECIES])
    with pytest.raises(ModelFileError, match="not a shared prior"):
        load_prior(models / "Parus_major")
    alone = tmp_path / "models"
    shutil.copytree(models / PRIOR_DIR, alone / PRIOR_DIR)
    with pytest.raises(ModelFileError, match="only a shared prior, no species model"):
        SpeciesBank.load(alone)


def test_a_species_starts_from_the_prior_weights(trained, recordings, tmp_path):
    models, _ = trained
    prior_dir = models / PRIOR_DIR
    prior = load_prior(prior_dir)
    # One step at a vanishing learning rate: the saved model is the starting point.
    frozen_lr = replace(
        TINY, epochs=1, steps_per_epoch=1, learning_rate=1e-12, prior=str(prior_dir)
    )
    train_species(recordings["Parus_major"], tmp_path / "from_prior", frozen_lr, **QUIET)
    start = load_species_model(tmp_path / "from_prior")
    for name, value in prior.model.state_dict().items():
        torch.testing.assert_close(start.model.state_dict()[name], value, rtol=0, atol=1e-9)
    # The prior's loudness normalisation, not the species' own.
    assert start.model.config == prior.model.config
    # From scratch the same seed gives the prior's own initial weights, which its training moved.
    scratch = replace(frozen_lr, prior=None)
    train_species(recordings["Parus_major"], tmp_path / "scratch", scratch, **QUIET)
    first = "decoder.output.weight"
    differ = _weights(tmp_path / "scratch")[first] - prior.model.state_dict()[first]
    assert float(differ.abs().max()) > 1e-3


def test_freezing_the_core_trains_only_the_output_and_reverb(trained, recordings, tmp_path):
    models, _ = trained
    settings = replace(TINY, prior=str(models / PRIOR_DIR), prior_freeze="core")
    train_species(recordings["Fringilla_coelebs"], tmp_path / "finch", settings, **QUIET)
    after, before = _weights(tmp_path / "finch"), load_prior(models / PRIOR_DIR).model.state_dict()
    moved = {name for name in before if not torch.equal(after[name], before[name])}
    assert moved and all(name.startswith(("decoder.output.", "reverb.")) for name in moved)


def test_a_prior_of_another_architecture_is_refused_naming_its_file(trained, recordings, tmp_path):
    models, _ = trained
    other = replace(TINY, decoder={"hidden": 8, "n_layers": 2}, prior=str(models / PRIOR_DIR))
    with pytest.raises(ModelFileError, match=r"hidden 16 \(species settings: 8\)") as error:
        train_species(recordings["Parus_major"], tmp_path / "tit", other, **QUIET)
    assert error.value.path == models / PRIOR_DIR / "config.json"


def test_a_prior_needs_two_species(recordings, tmp_path):
    with pytest.raises(ValueError, match="recordings: a shared prior needs at least two"):
        train_prior(recordings["Parus_major"], tmp_path / "prior", TINY, **QUIET)


def test_prior_validation_is_capped_and_taken_from_every_species(recordings, monkeypatch):
    pooled = [r for recs in recordings.values() for r in recs]
    train, val = prior_split(pooled, TINY)
    assert len(train) == len(val) == 4
    assert [r.species for r in val] == ["Fringilla_coelebs", "Parus_major"] * 2
    # The cap stops after the recording that reaches it, species taken in turn.
    monkeypatch.setattr(prior_module, "_VAL_SECONDS", val[0].seconds + 0.01)
    assert [r.name for r in prior_split(pooled, TINY)[1]] == [val[0].name, val[1].name]


@pytest.fixture(scope="module")
def clips(recordings):
    return [
        Clip(r.audio, species, r.name, r.recordist)
        for species, recs in recordings.items()
        for r in recs
    ]


def test_build_bank_trains_the_prior_once_and_species_from_it(clips, tmp_path, monkeypatch):
    calls: list[str] = []
    real = bank_builder.train_prior

    def counted(recordings, directory, settings, **kwargs):
        calls.append(str(directory))
        return real(recordings, directory, settings, **kwargs)

    monkeypatch.setattr(bank_builder, "train_prior", counted)
    tits = [c for c in clips if c.species == "Parus_major"]
    bank, failures = build_bank(tits, tmp_path, TINY, prior_clips=clips)
    assert failures == {} and bank.species == ["Parus_major"] and len(calls) == 1
    info = bank.entry("Parus_major").info
    assert info["prior"]["weights_sha256"] == sha256_file(
        tmp_path / PRIOR_DIR / "weights.safetensors"
    )
    first = _weights(tmp_path / "Parus_major")
    build_bank(tits, tmp_path, TINY, prior_clips=clips)  # cached: neither prior nor species
    assert len(calls) == 1
    for name, value in _weights(tmp_path / "Parus_major").items():
        assert torch.equal(value, first[name])
    # Other prior clips: a new prior, and the species is retrained from it.
    fewer = [c for c in clips if c.name != clips[-1].name]
    build_bank(tits, tmp_path, TINY, prior_clips=fewer)
    assert len(calls) == 2
    assert not torch.equal(
        _weights(tmp_path / "Parus_major")["decoder.output.weight"], first["decoder.output.weight"]
    )


def test_build_bank_refuses_a_prior_of_one_species(clips, tmp_path):
    tits = [c for c in clips if c.species == "Parus_major"]
    with pytest.raises(ValueError, match="prior_clips: a shared prior needs clips of at least two"):
        build_bank(tits, tmp_path, TINY, prior_clips=tits)


def test_build_bank_without_a_prior_keys_models_without_the_prior_fields(clips):
    # So models cached before priors existed stay valid.
    tits = [c for c in clips if c.species == "Parus_major"]
    pre = bank_builder.PreprocessSettings()
    key = bank_builder._fingerprint(tits, TINY, pre)
    assert key == bank_builder._fingerprint(tits, replace(TINY, prior_freeze="core"), pre)
    assert key != bank_builder._fingerprint(tits, TINY, pre, prior="abc")


def test_cli_train_prior_shared(processed, tmp_path, capsys):
    from ddsp_augment.cli import main

    models = tmp_path / "models"
    argv = ["train", "--data_path", str(processed), "--output_path", str(models), "--prior"]
    tiny = ["--epochs", "1", "--steps_per_epoch", "1", "--batch_size", "2", "--device", "cpu"]
    assert main([*argv, "shared", *tiny]) == 0
    table = capsys.readouterr().out
    assert PRIOR_DIR in table and table.count("trained") == 3
    prior_hash = sha256_file(models / PRIOR_DIR / "weights.safetensors")
    assert load_species_model(models / "Parus_major").info["prior"]["weights_sha256"] == prior_hash
