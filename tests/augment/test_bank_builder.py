"""build_bank: one model per species from clips in memory, cached on data and settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddsp_augment.augment import bank_builder
from ddsp_augment.augment.bank_builder import BankBuildError, Clip, build_bank
from ddsp_augment.constants import SAMPLE_RATE
from ddsp_augment.io import load_audio
from ddsp_augment.model.storage import load_species_model
from ddsp_augment.training.train import CollapseError, TrainSettings

TINY = TrainSettings(
    epochs=2,
    steps_per_epoch=2,
    batch_size=2,
    crop_seconds=0.25,
    val_fraction=0.0,
    threads=1,
    decoder={"hidden": 16, "n_layers": 2},
    # Bit-identical for a seed on the CPU; on CUDA two runs differ in float rounding (atomic
    # adds in the backward pass), measured on an H200.
    device="cpu",
)


@pytest.fixture(scope="module")
def tit_clips(tonal_clips) -> list[Clip]:
    """Two real great tit songs (2-3 s each)."""
    clips = []
    for i, path in enumerate(tonal_clips["Parus_major"][:2]):
        audio, _ = load_audio(path, SAMPLE_RATE)
        clips.append(Clip(audio, "Parus_major", path.name, f"recordist{i}"))
    return clips


@pytest.fixture()
def count_training(monkeypatch):
    """Species names passed to ``train_species``, in call order (training still runs)."""
    calls: list[str] = []
    real = bank_builder.train_species

    def counted(recordings, directory, settings, **kwargs):
        calls.append(recordings[0].species)
        return real(recordings, directory, settings, **kwargs)

    monkeypatch.setattr(bank_builder, "train_species", counted)
    return calls


def _weights(directory) -> dict[str, torch.Tensor]:
    return load_species_model(directory).model.state_dict()


def test_models_are_cached_on_clips_and_settings(tit_clips, tmp_path, count_training):
    bank, failures = build_bank(tit_clips, tmp_path, TINY)
    assert bank.species == ["Parus_major"] and failures == {}
    assert count_training == ["Parus_major"]
    build_bank(tit_clips, tmp_path, TINY)  # same clips, same settings: reused
    assert len(count_training) == 1
    build_bank(tit_clips, tmp_path, TrainSettings(**{**vars(TINY), "seed": 1}))  # settings
    assert len(count_training) == 2
    quieter = Clip(0.5 * tit_clips[0].audio, "Parus_major", tit_clips[0].name, "recordist0")
    build_bank([quieter, tit_clips[1]], tmp_path, TINY)  # same names, other samples
    assert len(count_training) == 3


def test_a_cached_model_with_an_old_residual_is_retrained(tit_clips, tmp_path, count_training):
    build_bank(tit_clips, tmp_path, TINY)
    path = tmp_path / "Parus_major" / "contours.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "residual_version"}
    np.savez(path, **arrays)  # as saved before residuals carried a version (version 1)
    bank, _ = build_bank(tit_clips, tmp_path, TINY)
    assert count_training == ["Parus_major", "Parus_major"]
    assert bank.entry("Parus_major").contours.has_residual


def test_same_seed_gives_the_same_model(tit_clips, tmp_path):
    build_bank(tit_clips, tmp_path / "a", TINY)
    build_bank(tit_clips, tmp_path / "b", TINY)
    build_bank(tit_clips, tmp_path / "c", TrainSettings(**{**vars(TINY), "seed": 1}))
    a, b, c = (_weights(tmp_path / name / "Parus_major") for name in "abc")
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_a_collapsing_species_is_reported_cached_and_gets_no_model(
    tit_clips, tmp_path, monkeypatch
):
    calls: list[str] = []
    real = bank_builder.train_species

    def collapse_finch(recordings, directory, settings, **kwargs):
        calls.append(recordings[0].species)
        if recordings[0].species == "Fringilla_coelebs":
            raise CollapseError("Fringilla_coelebs: no epoch produced a usable model")
        return real(recordings, directory, settings, **kwargs)

    monkeypatch.setattr(bank_builder, "train_species", collapse_finch)
    finch = [Clip(c.audio, "Fringilla_coelebs", f"finch-{c.name}", c.recordist) for c in tit_clips]
    click = [Clip(np.ones(1000, np.float32), "Emberiza_citrinella", "click.wav")]
    clips = tit_clips + finch + click
    bank, failures = build_bank(clips, tmp_path, TINY)
    assert bank.species == ["Parus_major"]
    assert failures["Fringilla_coelebs"] == "Fringilla_coelebs: no epoch produced a usable model"
    assert "click.wav: too short (0.031 s)" in failures["Emberiza_citrinella"]
    assert sorted(failures) == ["Emberiza_citrinella", "Fringilla_coelebs"]
    assert sorted(calls) == ["Fringilla_coelebs", "Parus_major"]
    # A rerun reports the cached failures without training anything again.
    again_bank, again = build_bank(clips, tmp_path, TINY)
    assert again == failures and again_bank.species == ["Parus_major"]
    assert len(calls) == 2
    with pytest.raises(BankBuildError, match="no species model") as caught:
        build_bank(finch, tmp_path, TINY)
    assert list(caught.value.failures) == ["Fringilla_coelebs"]
    assert len(calls) == 2  # cached as well


def test_no_clips_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="clips"):
        build_bank([], tmp_path)


class _ShortCallScreen:
    """Hears "Other bird" in every active stretch shorter than ``seconds`` (deterministic)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.name = f"short<{seconds}"

    def __call__(self, audio, sample_rate, species, location):
        return "Other bird" if audio.size < self.seconds * sample_rate else None


def test_a_screen_keeps_other_birds_out_of_the_models(tit_clips, tmp_path, count_training):
    plain, _ = build_bank(tit_clips, tmp_path / "plain", TINY)
    lengths = [len(s) / 500 for s in plain.entry("Parus_major").contours.segments]
    cut = float(np.median(lengths))
    assert min(lengths) < cut  # some stretches are shorter than others

    screen = _ShortCallScreen(cut)
    bank, _ = build_bank(tit_clips, tmp_path / "plain", TINY, screen=screen)
    kept = [len(s) / 500 for s in bank.entry("Parus_major").contours.segments]
    assert count_training == ["Parus_major"] * 2  # another screen: another model
    assert sorted(kept) == sorted(x for x in lengths if x >= cut)
    build_bank(tit_clips, tmp_path / "plain", TINY, screen=screen)
    assert len(count_training) == 2  # the same screen: reused

    with pytest.raises(BankBuildError) as error:
        build_bank(tit_clips, tmp_path / "none", TINY, screen=_ShortCallScreen(1e3))
    reason = error.value.failures["Parus_major"]
    assert reason.count("every active stretch is heard as another species: Other bird") == 2


class _PlaceScreen:
    """Hears nothing; notes where it was told each clip was recorded."""

    name = "place"

    def __init__(self) -> None:
        self.places = set()

    def __call__(self, audio, sample_rate, species, location):
        self.places.add(location)


def test_clips_are_screened_where_they_were_recorded(tit_clips, tmp_path, count_training):
    from dataclasses import replace

    screen = _PlaceScreen()
    build_bank(tit_clips, tmp_path / "m", TINY, screen=screen)
    assert screen.places == {None}
    placed = [replace(c, location=(51.5, 10.0)) for c in tit_clips]
    build_bank(placed, tmp_path / "m", TINY, screen=screen)
    assert screen.places == {None, (51.5, 10.0)} and len(count_training) == 2
    moved = [replace(placed[0], location=(-33.9, 18.4)), *placed[1:]]
    build_bank(moved, tmp_path / "m", TINY, screen=screen)
    assert (-33.9, 18.4) in screen.places and len(count_training) == 3  # moved: trained again
    build_bank(placed, tmp_path / "plain", TINY)  # no screen: locations do not matter
    build_bank(moved, tmp_path / "plain", TINY)
    assert len(count_training) == 4
