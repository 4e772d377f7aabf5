"""Every file of a model directory is validated on load; a damaged one is named with its fault."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ddsp_augment.features.contours import ContourBank, Segment
from ddsp_augment.model.decoder import DecoderConfig
from ddsp_augment.model.species_model import SpeciesModel
from ddsp_augment.model.storage import (
    ModelFileError,
    find_model_dirs,
    load_species_model,
    save_species_model,
)
from ddsp_augment.sampling.bank import SpeciesBank


def _save(directory: Path, species: str = "Parus_major") -> None:
    torch.manual_seed(0)
    segment = Segment(
        np.full(60, 3000, np.float32), np.full(60, -20, np.float32), np.ones(60, np.float32), "r"
    )
    save_species_model(
        directory,
        species,
        SpeciesModel(DecoderConfig(hidden=16, n_layers=2)),
        ContourBank([segment], 32000, 64),
        np.ones((2, 1025), np.float32),
        {},
    )


def _edit_config(directory: Path, edit) -> None:
    path = directory / "config.json"
    payload = json.loads(path.read_text())
    edit(payload)
    path.write_text(json.dumps(payload))


#: A residual of the current kind (``features.residual.RESIDUAL_VERSION``): older ones are not
#: loaded at all, so not checked.
_V2 = {"residual_version": np.array(2)}


def _rewrite_npz(directory: Path, name: str, **arrays) -> None:
    """Replace arrays of an npz and record its new hash (a consistent but damaged model)."""
    from ddsp_augment.model.storage import sha256_file

    path = directory / name
    with np.load(path) as data:
        content = {key: data[key] for key in data.files}
    content.update(arrays)
    with open(path, "wb") as handle:
        np.savez(handle, **content)
    _edit_config(directory, lambda p: p["files"].__setitem__(name, sha256_file(path)))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("loudness_std", float("nan"), "decoder loudness_std must be finite, got nan"),
        ("loudness_mean", float("inf"), "decoder loudness_mean must be finite, got inf"),
        ("loudness_std", -1.0, "loudness_std must be > 0, got -1.0"),
        ("reverb_seconds", 0.0, "decoder reverb_seconds must be > 0, got 0.0"),
        ("hidden", 16.5, "decoder hidden must be an integer, got 16.5"),
        ("sample_rate", True, "decoder sample_rate must be an integer, got True"),
        ("n_layers", "2", "decoder n_layers must be an integer, got '2'"),
    ],
)
def test_bad_decoder_config_values_are_named(tmp_path, key, value, message):
    _save(tmp_path / "m")
    _edit_config(tmp_path / "m", lambda p: p["decoder"].__setitem__(key, value))
    with pytest.raises(ModelFileError, match=message) as error:
        load_species_model(tmp_path / "m")
    assert error.value.path == tmp_path / "m" / "config.json"


@pytest.mark.parametrize(
    ("backgrounds", "message"),
    [
        (np.ones((2, 513), np.float32), r"must have shape \[recordings, 1025\], got \(2, 513\)"),
        (np.ones(1025, np.float32), r"must have shape \[recordings, 1025\], got \(1025,\)"),
        (np.ones((0, 1025), np.float32), r"got \(0, 1025\)"),
        (np.full((2, 1025), np.nan, np.float32), "backgrounds contains NaN or infinite values"),
        (-np.ones((2, 1025), np.float32), r"backgrounds outside \[0.0, inf\]"),
        (np.ones((2, 1025), np.int16), "backgrounds must be float, got int16"),
    ],
)
def test_bad_backgrounds_are_named(tmp_path, backgrounds, message):
    _save(tmp_path / "m")
    _rewrite_npz(tmp_path / "m", "backgrounds.npz", backgrounds=backgrounds)
    with pytest.raises(ModelFileError, match=message) as error:
        load_species_model(tmp_path / "m")
    assert error.value.path == tmp_path / "m" / "backgrounds.npz"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"f0_hz": np.full(60, np.nan, np.float32)}, "f0_hz contains NaN or infinite values"),
        ({"f0_hz": np.full(60, 20000, np.float32)}, r"f0_hz outside \[0.0, 16000.0\]"),
        ({"loudness_db": np.full(60, -np.inf, np.float32)}, "loudness_db contains NaN"),
        ({"confidence": np.full(60, 2, np.float32)}, r"confidence outside \[0.0, 1.0\]"),
        ({"grid": np.array([16000, 64])}, "contours are on a 16000 Hz / hop 64 grid"),
        ({"residual_db": np.full((60, 257), np.nan, np.float16), **_V2}, "residual_db contains"),
        ({"residual_db": np.full((60, 257), 90, np.float16), **_V2}, r"residual_db outside \[-121"),
        ({"residual_db": np.zeros((59, 257), np.float16)}, "inconsistent"),
    ],
)
def test_bad_contours_are_named(tmp_path, arrays, message):
    _save(tmp_path / "m")
    _rewrite_npz(tmp_path / "m", "contours.npz", **arrays)
    with pytest.raises(ModelFileError, match=message) as error:
        load_species_model(tmp_path / "m")
    assert error.value.path == tmp_path / "m" / "contours.npz"


def test_nan_weights_are_named(tmp_path):
    from safetensors.torch import load_file, save_file

    from ddsp_augment.model.storage import sha256_file

    _save(tmp_path / "m")
    path = tmp_path / "m" / "weights.safetensors"
    state = load_file(str(path))
    state[next(iter(state))][...] = float("nan")
    save_file(state, str(path))
    _edit_config(tmp_path / "m", lambda p: p["files"].__setitem__(path.name, sha256_file(path)))
    with pytest.raises(ModelFileError, match="weights contain NaN or infinite values"):
        load_species_model(tmp_path / "m")


def test_a_file_changed_behind_the_configs_back_is_named(tmp_path):
    _save(tmp_path / "m")
    with open(tmp_path / "m" / "backgrounds.npz", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01")
    with pytest.raises(ModelFileError, match="sha256 differs from the one config.json records"):
        load_species_model(tmp_path / "m")


def test_two_model_folders_naming_the_same_species_are_refused(tmp_path):
    _save(tmp_path / "models" / "a", "Parus_major")
    _save(tmp_path / "models" / "b", "Parus_major")
    message = r"a and b both hold a model of species 'Parus_major'"
    with pytest.raises(ModelFileError, match=message):
        SpeciesBank.load(tmp_path / "models")
    with pytest.raises(ModelFileError, match=message):
        find_model_dirs(tmp_path / "models")
