"""A crash at any write leaves the old state or the new one, never a mix; files stay readable.

Each test stops a write sequence (``atomic_write``, a model save, a checkpoint, a training run)
before each of its write steps in turn (see ``_faults.py``) and checks what is on disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _faults import KILLED, count_steps, crash_during, snapshot

from ddsp_augment.features.contours import ContourBank, Segment
from ddsp_augment.io import atomic_write
from ddsp_augment.model.decoder import DecoderConfig
from ddsp_augment.model.species_model import SpeciesModel
from ddsp_augment.model.storage import (
    load_checkpoint,
    load_species_model,
    save_checkpoint,
    save_species_model,
)
from ddsp_augment.training.preprocess import PreprocessSettings, preprocess_file
from ddsp_augment.training.train import TrainSettings, train_species

TIT = Path(__file__).resolve().parent / "data" / "Parus_major"
CONFIG = DecoderConfig(hidden=16, n_layers=2)


def test_atomic_write_leaves_the_old_file_at_every_step(tmp_path):
    path = tmp_path / "file.bin"

    def write() -> None:
        atomic_write(path, lambda tmp: tmp.write_bytes(b"new" * 1000))

    assert count_steps(write) == 2  # fsync of the temp file, rename into place
    for step in range(2):
        atomic_write(path, lambda tmp: tmp.write_bytes(b"old"))
        crash_during(write, step)
        assert snapshot(tmp_path) == {"file.bin": b"old"}


def _save_version(directory: Path, version: int) -> None:
    """Version ``v`` of a model: every file (weights, contours, backgrounds, config) differs."""
    torch.manual_seed(version)
    segment = Segment(
        np.full(50, 1000.0 * (version + 1), np.float32),
        np.full(50, -20.0, np.float32),
        np.ones(50, np.float32),
        f"recording{version}",
    )
    save_species_model(
        directory,
        "Parus_major",
        SpeciesModel(CONFIG),
        ContourBank([segment], CONFIG.sample_rate, CONFIG.hop_length),
        np.full((1, 1025), version + 1.0, np.float32),
        {"metrics": {"version": version}},
    )


def _loaded_version(directory: Path) -> int:
    """Which version a directory loads as; fails on a mix of two versions."""
    saved = load_species_model(directory)
    version = saved.info["metrics"]["version"]
    torch.manual_seed(version)
    for key, value in SpeciesModel(CONFIG).state_dict().items():
        assert torch.equal(saved.model.state_dict()[key], value), key
    assert saved.contours.segments[0].f0_hz[0] == 1000.0 * (version + 1)
    assert saved.contours.segments[0].recording == f"recording{version}"
    np.testing.assert_array_equal(saved.backgrounds, version + 1.0)
    return version


def test_model_save_loads_as_old_or_new_model_after_a_crash_at_every_step(tmp_path):
    _save_version(tmp_path / "old", 0)
    steps = count_steps(lambda: _save_version(tmp_path / "count", 1))
    # 3 pending data files and config.json (the commit; each fsync + rename), then 3 renames
    # of the pending files.
    assert steps == 4 * 2 + 3
    outcomes = []
    for step in range(steps):
        work = tmp_path / f"crash{step}"
        shutil.copytree(tmp_path / "old", work)
        crash_during(lambda work=work: _save_version(work, 1), step)
        outcomes.append(_loaded_version(work))
        # The next save completes normally and leaves no pending file behind.
        _save_version(work, 2)
        assert _loaded_version(work) == 2
        assert not list(work.glob(".*.pending"))
    # Old until config.json is renamed into place (step 7), new from then on, even while the
    # new files are still pending.
    assert outcomes == [0] * 8 + [1] * 3


def test_model_files_are_readable_by_group_and_others_under_the_usual_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        _save_version(tmp_path / "model", 0)
        model = SpeciesModel(CONFIG)
        save_checkpoint(
            tmp_path / "model" / "checkpoint",
            model,
            torch.optim.Adam(model.parameters()),
            {"history": []},
            torch.Generator().manual_seed(0),
        )
    finally:
        os.umask(previous)
    modes = {
        str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777)
        for p in tmp_path.rglob("*")
        if p.is_file()
    }
    assert modes == {
        "model/config.json": "0o644",
        "model/weights.safetensors": "0o644",
        "model/contours.npz": "0o644",
        "model/backgrounds.npz": "0o644",
        "model/checkpoint/state.safetensors": "0o644",
    }


def _training_state(version: int) -> tuple[SpeciesModel, torch.optim.Optimizer, torch.Generator]:
    torch.manual_seed(version)
    model = SpeciesModel(CONFIG)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.full((1, 5), 2000.0), torch.full((1, 5), -20.0), torch.ones(1, 5), 256)[
        0
    ].square().mean().backward()
    optimizer.step()
    return model, optimizer, torch.Generator().manual_seed(version)


def test_checkpoint_is_old_or_new_after_a_crash_at_every_step(tmp_path):
    def save(directory: Path, version: int) -> None:
        model, optimizer, generator = _training_state(version)
        save_checkpoint(directory, model, optimizer, {"history": list(range(version))}, generator)

    save(tmp_path / "old", 1)
    steps = count_steps(lambda: save(tmp_path / "count", 2))
    assert steps == 2  # one file: fsync, rename
    for step in range(steps):
        work = tmp_path / f"crash{step}"
        shutil.copytree(tmp_path / "old", work)
        crash_during(lambda work=work: save(work, 2), step)
        model, optimizer, generator = _training_state(0)
        meta = load_checkpoint(work, model, optimizer, generator)
        assert meta["history"] == [0]  # the old checkpoint, whole
        reference, _, reference_generator = _training_state(1)
        for key, value in reference.state_dict().items():
            assert torch.equal(model.state_dict()[key], value)
        assert torch.equal(generator.get_state(), reference_generator.get_state())


@pytest.fixture(scope="module")
def recordings():
    files = sorted(TIT.glob("*.wav"))[:2]  # one to train on, one to validate on
    return [
        preprocess_file(f, "Parus_major", f"person{i % 2}", PreprocessSettings())
        for i, f in enumerate(files)
    ]


def _outcome(directory: Path) -> tuple[list[float], dict[str, torch.Tensor], list[float]]:
    """Losses of the saved history, final weights, losses in the checkpoint."""
    history = [
        float(line.split(",")[1])
        for line in (directory / "history.csv").read_text().splitlines()[1:]
    ]
    saved = load_species_model(directory)
    assert saved.info["complete"] is True
    model, optimizer, generator = _training_state(0)
    meta = load_checkpoint(directory / "checkpoint", model, optimizer, generator)
    return history, saved.model.state_dict(), [row["loss"] for row in meta["history"]]


# Two epochs that both improve (so both save the model): validation spectral distance 0.883
# then 0.867 (at the default learning rate the second epoch's single step no longer improves
# since the loss compares only the band the recording carries).
TRAIN = TrainSettings(
    epochs=2,
    steps_per_epoch=1,
    batch_size=2,
    seed=1,
    learning_rate=1e-2,
    crop_seconds=0.25,
    decoder={"hidden": 16, "n_layers": 2},
    device="cpu",  # bit-identical resumes: CUDA training is reproducible only to rounding
)


def test_resume_after_a_crash_at_any_write_of_training_equals_an_uninterrupted_run(
    recordings, tmp_path, one_torch_thread
):
    settings = TRAIN
    quiet = {"progress": False, "log": lambda _: None}
    steps = count_steps(lambda: train_species(recordings, tmp_path / "ref", settings, **quiet))
    history, weights, checkpoint = _outcome(tmp_path / "ref")
    assert len(history) == 2 and checkpoint == history
    # Each epoch improved, so each saved the model (11 steps), then history.csv and the
    # checkpoint (2 each); the final save takes 11 more.
    assert steps == 2 * (11 + 2 + 2) + 11
    # Crash before every write of epoch 2 (epoch 1's are the same kinds), and before and after
    # the commit of the final save (resuming then skips training: a path of its own).
    for step in [*range(15, 30), 37, 38]:
        work = tmp_path / f"crash{step}"
        crash_during(lambda work=work: train_species(recordings, work, settings, **quiet), step)
        train_species(recordings, work, settings, resume=True, **quiet)
        got_history, got_weights, got_checkpoint = _outcome(work)
        assert got_history == history and got_checkpoint == history, step
        for key, value in weights.items():
            assert torch.equal(got_weights[key], value), (step, key)


_KILLED_RUN = """
import sys
from pathlib import Path

import torch
from _faults import crash_at
from ddsp_augment.training.preprocess import PreprocessSettings, preprocess_file
from ddsp_augment.training.train import TrainSettings, train_species

torch.set_num_threads(1)
files = sorted(Path(sys.argv[1]).glob("*.wav"))[:2]
recordings = [
    preprocess_file(f, "Parus_major", f"person{i % 2}", PreprocessSettings())
    for i, f in enumerate(files)
]
settings = TrainSettings(**SETTINGS)
with crash_at(int(sys.argv[3]), kill=True):
    train_species(recordings, Path(sys.argv[2]), settings, progress=False, log=lambda _: None)
"""


def test_a_process_killed_while_writing_its_checkpoint_resumes_exactly(
    recordings, tmp_path, one_torch_thread
):
    """The issue's case, with a real kill: the process dies between the fsync and the rename of
    epoch 2's checkpoint (its temp file stays behind), and ``--resume`` gives the same model."""
    reference = train_species(
        recordings, tmp_path / "ref", TRAIN, progress=False, log=lambda _: None
    )
    script = _KILLED_RUN.replace("SETTINGS", repr(TRAIN.__dict__))
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    run = tmp_path / "run"
    # Step 28 is epoch 2's checkpoint rename (11 model-save + 2 history + 2 checkpoint steps in
    # epoch 1, then 11 + 2 again): the new checkpoint is complete but not yet in place.
    killed = subprocess.run(
        [sys.executable, "-c", script, str(TIT), str(run), "28"], env=env, capture_output=True
    )
    assert killed.returncode == KILLED, killed.stderr.decode()[-2000:]
    assert list((run / "checkpoint").glob(".state.safetensors.*.tmp.safetensors"))
    resumed = train_species(recordings, run, TRAIN, resume=True, progress=False, log=lambda _: None)
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in reference.history]
    a = load_species_model(tmp_path / "ref").model.state_dict()
    b = load_species_model(run).model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
