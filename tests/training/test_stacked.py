"""Species trained together (``training.stacked``) against one at a time (``train_species``)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TEST_DATA, XC_GERMANY
from safetensors.numpy import load_file

from ddsp_augment import SpeciesBank
from ddsp_augment.model.losses import MultiScaleSpectralLoss
from ddsp_augment.model.species_model import SpeciesModel
from ddsp_augment.model.storage import ModelFileError, read_checkpoint, write_checkpoint
from ddsp_augment.training import stacked as stacked_module
from ddsp_augment.training import train as train_module
from ddsp_augment.training.preprocess import PreprocessSettings, preprocess_file
from ddsp_augment.training.stacked import _Group, _stack_key, train_stacked
from ddsp_augment.training.train import (
    CollapseError,
    TrainSettings,
    _prepare,
    _resolve_together,
    train_folder,
    train_species,
)

TINY = TrainSettings(
    epochs=3,
    steps_per_epoch=2,
    batch_size=2,
    crop_seconds=0.25,
    decoder={"hidden": 16, "n_layers": 2},
    threads=1,
    device="cpu",
)
quiet = lambda message: None  # noqa: E731
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def species():
    """Two species of real song: three great tit clips, two chaffinch clips (two recordists)."""
    settings = PreprocessSettings()
    tits = sorted((TEST_DATA / "Parus_major").glob("*.wav"))[:3]
    finches = [XC_GERMANY / "Fringilla_coelebs" / n for n in ("XC133308.mp3", "XC315675.mp3")]
    return [
        [preprocess_file(f, "Parus_major", f"p{i % 2}", settings) for i, f in enumerate(tits)],
        [preprocess_file(f, "Fringilla_coelebs", f"q{i}", settings) for i, f in enumerate(finches)],
    ]


@pytest.fixture(scope="module")
def reference(species, tmp_path_factory) -> Path:
    """The two species trained together with ``TINY``, undisturbed."""
    out = tmp_path_factory.mktemp("stacked-reference")
    results = train_stacked(species, out, TINY, progress=False, log=quiet)
    assert [r.species for r in results] == ["Parus_major", "Fringilla_coelebs"]
    return out


def weights(directory: Path) -> dict[str, np.ndarray]:
    return load_file(directory / "weights.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    mine, theirs = weights(a), weights(b)
    assert sorted(mine) == sorted(theirs)
    for name in mine:
        np.testing.assert_array_equal(theirs[name], mine[name], err_msg=name)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_one_step_has_train_species_losses_and_gradients(species, monkeypatch, device):
    """The stacked forward/backward is each species' own, to float32 rounding: the same crops,
    noise, initial weights, loudness normalisation, loss and gradients (relative error of each
    gradient's norm; a wrong crop, noise draw or normalisation moves the loss by far more)."""
    torch.set_num_threads(1)
    runs = [_prepare(recs, Path("unused"), TINY, CPU, quiet) for recs in species]
    group = _Group(runs, TINY, torch.device(device), quiet)
    captured = {}
    monkeypatch.setattr(
        _Group,
        "_update",
        lambda self, active: captured.update({n: p.grad.clone() for n, p in self.params.items()}),
    )
    losses = group._step([0, 1])
    for k, recs in enumerate(species):
        run = _prepare(recs, Path("unused"), TINY, CPU, quiet)  # a fresh sampler, same seed
        torch.manual_seed(TINY.seed)
        model = SpeciesModel(run.config).to(device)
        generator = torch.Generator(device).manual_seed(TINY.seed)
        f0, loud, conf, audio, floors, edges = run.sampler.batch(TINY.batch_size)
        t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        output, _ = model(t(f0), t(loud), t(conf), audio.shape[1], generator)
        loss = MultiScaleSpectralLoss(run.config.sample_rate)(
            output, t(audio), [t(f) for f in floors], band_edges=t(edges)
        )
        loss.backward()
        # CUDA's kernels for a stack and for one model sum in other orders: 1.2e-5 on an H200.
        rel = 5e-6 if device == "cpu" else 1e-4
        assert float(losses[k]) == pytest.approx(float(loss.detach()), rel=rel)
        for name, param in model.named_parameters():
            error = float((captured[name][k] - param.grad).norm() / param.grad.norm())
            # Measured: ≤ 3e-4 on the decoder, 8e-3 on the reverb taps, whose gradients sum
            # many terms of both signs through log-magnitudes of near-silent bins.
            assert error < (3e-2 if name == "reverb.ir" else 1e-3), name


def test_update_is_clipping_and_adam_per_species(species):
    """Per species: clip_grad_norm_(3.0), then torch.optim.Adam with its own learning rate and
    step count (reset on a restart); a species left out of a step keeps weights and moments."""
    runs = [_prepare(recs, Path("unused"), TINY, CPU, quiet) for recs in species]
    group = _Group(runs, TINY, torch.device("cpu"), quiet)
    group.progress[1].lr = 5e-4
    models = [SpeciesModel(run.config) for run in runs]
    for model, k in zip(models, (0, 1), strict=True):
        model.load_state_dict({n: v[k] for n, v in group.params.items()}, strict=False)
    optimizers = [
        torch.optim.Adam(m.parameters(), lr=lr) for m, lr in zip(models, (2e-3, 5e-4), strict=True)
    ]
    generator = torch.Generator().manual_seed(1)
    steps = ([1, 1], [2, 2], [2, 3], [3, 4])
    for active, adam_steps in zip(([0, 1], [0, 1], [1], [0, 1]), steps, strict=True):
        for name, param in group.params.items():
            # Large gradients on species 0 (clipped), small ones on species 1 (not clipped).
            grad = torch.randn(param.shape, generator=generator) * torch.tensor([10.0, 1e-3]).view(
                (-1,) + (1,) * (param.dim() - 1)
            )
            param.grad = grad
            for k, model in enumerate(models):
                model.get_parameter(name).grad = grad[k].clone()
        group._update(active)
        for k in active:
            torch.nn.utils.clip_grad_norm_(models[k].parameters(), 3.0)
            optimizers[k].step()
        assert group.adam_steps == adam_steps
    for k, model in enumerate(models):
        for name, param in model.named_parameters():
            torch.testing.assert_close(group.params[name][k], param.detach(), rtol=1e-5, atol=1e-7)


def test_stacked_models_match_train_species(species, reference, tmp_path):
    """Same files and fields as train_species, the same losses, metrics and weights to float32
    rounding. Over many steps Adam turns rounding-level gradient differences (those that cancel:
    masked harmonics, reverb taps past a crop's reach) into ±lr steps, so weights drift apart as
    train_species' own do between one and two threads (measured: max |Δw| 0.019 after 16 steps
    either way); the bounds below hold for these 6 steps."""
    for recs in species:
        name = recs[0].species
        alone = train_species(recs, tmp_path / name, TINY, progress=False, log=quiet)
        mine = json.loads((tmp_path / name / "config.json").read_text())
        theirs = json.loads((reference / name / "config.json").read_text())
        assert sorted(theirs) == sorted(mine)
        for key in ("species", "decoder", "training_data", "settings", "complete", "epochs_run"):
            assert theirs[key] == mine[key], key
        rows = list(zip(alone.history, _history(reference / name), strict=True))
        assert len(rows) == TINY.epochs
        # The first epoch's first step is the same to rounding; the epoch mean differs a little.
        assert rows[0][1]["loss"] == pytest.approx(rows[0][0]["loss"], rel=1e-3)
        for solo, together in rows:
            assert together["val_spectral_distance"] == pytest.approx(
                solo["val_spectral_distance"], rel=0.01
            )
        a, b = weights(tmp_path / name), weights(reference / name)
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=0, atol=0.02, err_msg=key)
        close = np.mean(np.concatenate([np.abs(b[k] - a[k]).ravel() < 1e-3 for k in a]))
        assert close > 0.25
    bank = SpeciesBank.load(reference)
    assert bank.species == ["Fringilla_coelebs", "Parus_major"]


def _history(directory: Path) -> list[dict[str, float]]:
    """history.csv but the wall seconds."""
    with open(directory / "history.csv", encoding="utf-8") as handle:
        rows = csv.DictReader(handle)
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in rows]


def test_early_stop_of_one_species_leaves_the_other_unchanged(
    species, reference, tmp_path, monkeypatch
):
    real = train_module._validate

    def tit_gets_worse(model, recordings, seed, with_background):
        metrics = real(model, recordings, seed, with_background)
        if recordings[0].species == "Parus_major":
            metrics["val_spectral_distance"] = 1.0 + 0.1 * len(calls)
            calls.append(1)
        return metrics

    calls: list[int] = []
    monkeypatch.setattr(stacked_module, "_validate", tit_gets_worse)
    settings = replace(TINY, patience=1)
    results = train_stacked(species, tmp_path, settings, progress=False, log=quiet)
    tit, finch = results
    assert len(tit.history) == 2 and tit.best["epoch"] == 1  # stopped after one stale epoch
    assert len(finch.history) == TINY.epochs
    assert_same_weights(reference / "Fringilla_coelebs", tmp_path / "Fringilla_coelebs")


def test_a_collapsing_species_fails_alone(species, reference, tmp_path, monkeypatch):
    real = train_module.detect_collapse

    def tit_collapses(output, harmonic, recording):
        if recording.species == "Parus_major":
            return "silent output (contrived)"
        return real(output, harmonic, recording)

    monkeypatch.setattr(train_module, "detect_collapse", tit_collapses)
    tit, finch = train_stacked(
        species, tmp_path, replace(TINY, epochs=5), progress=False, log=quiet
    )
    assert isinstance(tit, CollapseError) and "collapsed 3 times" in str(tit)
    assert (tmp_path / "Parus_major" / "failed.json").is_file()
    assert not (tmp_path / "Parus_major" / "config.json").exists()
    assert len(finch.history) == 5
    with pytest.warns(UserWarning, match="skipping \\['Parus_major'\\]: training failed"):
        bank = SpeciesBank.load(tmp_path)
    assert bank.species == ["Fringilla_coelebs"]
    # Its first three epochs are the undisturbed run's, bit for bit.
    assert _history(tmp_path / "Fringilla_coelebs")[:3] == _history(reference / "Fringilla_coelebs")


def test_resume_after_interruption_equals_uninterrupted_run(species, reference, tmp_path):
    def interrupt(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stacked(species, tmp_path, TINY, progress=False, log=quiet, on_epoch_end=interrupt)
    checkpoints = list((tmp_path / "checkpoints").glob("stacked-*/state.safetensors"))
    assert len(checkpoints) == 1
    results = train_stacked(species, tmp_path, TINY, resume=True, progress=False, log=quiet)
    for result in results:
        assert [row["epoch"] for row in result.history] == [1, 2, 3]
        assert_same_weights(reference / result.species, tmp_path / result.species)
        assert _history(tmp_path / result.species) == _history(reference / result.species)


def test_resume_on_another_device_names_the_device_of_the_checkpoint(species, tmp_path):
    def interrupt(epoch):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stacked(species, tmp_path, TINY, progress=False, log=quiet, on_epoch_end=interrupt)
    (directory,) = (tmp_path / "checkpoints").glob("stacked-*")
    tensors, state = read_checkpoint(directory)
    assert state["device"] == "cpu"
    tensors["generator.1"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state
    write_checkpoint(directory, tensors, {**state, "device": "cuda"})
    with pytest.raises(ModelFileError, match="written by a run on cuda, this run is on cpu"):
        train_stacked(species, tmp_path, TINY, resume=True, progress=False, log=quiet)


def test_species_of_different_architectures_train_in_separate_groups(species, tmp_path):
    runs = [_prepare(recs, Path("unused"), TINY, CPU, quiet) for recs in species]
    assert _stack_key(runs[0]) == _stack_key(runs[1])  # loudness normalisation differs, allowed
    assert runs[0].config.loudness_mean != runs[1].config.loudness_mean
    short = replace(TINY, crop_seconds=10.0)  # crops as long as each species' shortest clip
    runs = [_prepare(recs, Path("unused"), short, CPU, quiet) for recs in species]
    assert _stack_key(runs[0]) != _stack_key(runs[1])
    # A low-voiced species' loss listens lower (loss_f_min): it trains apart.
    low = [[replace(r, band=(500.0, 12000.0)) for r in recs] for recs in species]
    assert _stack_key(_prepare(species[0], Path("unused"), TINY, CPU, quiet)) != _stack_key(
        _prepare(low[0], Path("unused"), TINY, CPU, quiet)
    )
    results = train_stacked(species, tmp_path, replace(short, epochs=1), progress=False, log=quiet)
    assert [len(r.history) for r in results] == [1, 1]
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2


def test_train_folder_together(tonal_clips, tmp_path):
    from ddsp_augment.training.preprocess import preprocess_folder

    data, processed = tmp_path / "data", tmp_path / "processed"
    for name, paths in tonal_clips.items():
        (data / name).mkdir(parents=True)
        for path in paths[:2]:
            (data / name / path.name).symlink_to(path)
    preprocess_folder(data, processed, progress=False)
    summary = train_folder(
        processed, tmp_path / "models", replace(TINY, epochs=1), together=True, progress=False
    )
    assert [(r["species"], r["status"]) for r in summary] == [
        ("Fringilla_coelebs", "trained"),
        ("Parus_major", "trained"),
    ]
    assert SpeciesBank.load(tmp_path / "models").species == ["Fringilla_coelebs", "Parus_major"]
    with pytest.raises(ValueError, match="together=True trains in one process"):
        train_folder(processed, tmp_path / "m2", TINY, jobs=2, together=True)
    with pytest.raises(ValueError, match="together must be"):
        train_folder(processed, tmp_path / "m2", TINY, together="yes")  # type: ignore[arg-type]


def test_auto_stacks_on_cuda_only(monkeypatch):
    assert _resolve_together("auto", 1, "cpu") is False
    assert _resolve_together(True, 1, "cpu") is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _resolve_together("auto", 1, "auto") is True
    assert _resolve_together("auto", 1, "cuda") is True
    assert _resolve_together("auto", 4, "cuda") is False  # jobs asked for: one at a time
    assert _resolve_together(False, 1, "cuda") is False


def test_resume_after_a_crash_at_a_write_equals_the_uninterrupted_run(species, reference, tmp_path):
    """Killed between two species' saves, before the group checkpoint's rename (both species
    saved ahead of it), and inside the final saves: resuming gives the undisturbed models."""
    from _faults import count_steps, crash_during

    train = lambda out, **kw: train_stacked(species, out, TINY, progress=False, log=quiet, **kw)  # noqa: E731
    # Per epoch: each species' model save if it improved (11 writes) and history.csv (2), then
    # the checkpoint (2); at the end each species' final save (11). The great tit's second
    # epoch does not improve on its first here (no model save); the others all do.
    epochs = [2 * 13 + 2, 2 + 13 + 2, 2 * 13 + 2]
    assert count_steps(lambda: train(tmp_path / "count")) == sum(epochs) + 2 * 11
    third = sum(epochs[:2])
    for step in (third + 13, third + epochs[2] - 1, sum(epochs) + 11 + 7):
        work = tmp_path / f"crash{step}"
        crash_during(lambda work=work: train(work), step)
        train(work, resume=True)
        for name in ("Parus_major", "Fringilla_coelebs"):
            assert_same_weights(reference / name, work / name)
            assert _history(work / name) == _history(reference / name), (step, name)


def test_stacked_species_start_from_a_shared_prior_with_frozen_layers(species, tmp_path):
    """``TrainSettings(prior=..., prior_freeze="core")``: every species of the stack starts from
    the prior, keeps its input and dilated-conv layers, trains the rest, and records it."""
    from ddsp_augment.training.prior import train_prior

    prior = tmp_path / "__prior__"
    pooled = [rec for recs in species for rec in recs]
    train_prior(pooled, prior, replace(TINY, epochs=1), progress=False, log=quiet)
    settings = replace(TINY, epochs=1, prior=str(prior), prior_freeze="core")
    results = train_stacked(species, tmp_path / "models", settings, progress=False, log=quiet)
    start = weights(prior)
    for result in results:
        trained = weights(tmp_path / "models" / result.species)
        for name, value in start.items():
            if name.startswith(("decoder.input.", "decoder.core.")):
                np.testing.assert_array_equal(trained[name], value, err_msg=name)
            else:
                assert np.abs(trained[name] - value).max() > 1e-4, name
        info = json.loads((tmp_path / "models" / result.species / "config.json").read_text())
        assert info["prior"]["path"] == str(prior)
