import json
import pickle

import numpy as np
import pytest
import torch

from ddsp_augment.features.contours import ContourBank, Segment
from ddsp_augment.model.decoder import DecoderConfig
from ddsp_augment.model.species_model import SpeciesModel
from ddsp_augment.model.storage import ModelFileError, load_species_model, save_species_model


def _save(directory, seed=0):
    torch.manual_seed(seed)
    model = SpeciesModel(DecoderConfig(hidden=16, n_layers=2))
    segment = Segment(
        np.full(100, 3000, np.float32), np.full(100, -20, np.float32), np.ones(100, np.float32), "r"
    )
    save_species_model(
        directory,
        "Parus_major",
        model,
        ContourBank([segment], 32000, 64),
        np.ones((1, 1025), np.float32),
        {"metrics": {"val_spectral_distance": 1.0}},
    )
    return model


def test_round_trip_gives_identical_audio(tmp_path):
    model = _save(tmp_path / "m")
    loaded = load_species_model(tmp_path / "m")
    assert loaded.species == "Parus_major"
    f0 = np.linspace(2000, 5000, 200).astype(np.float32)
    loud = np.full(200, -25, np.float32)
    conf = np.ones(200, np.float32)
    args = (f0, loud, conf, 199 * 64)
    a = model.synthesize(*args, np.random.default_rng(0), backend="torch")
    b = loaded.model.synthesize(*args, np.random.default_rng(0), backend="torch")
    np.testing.assert_array_equal(a, b)


def test_missing_directory_and_config(tmp_path):
    with pytest.raises(ModelFileError, match="not a directory"):
        load_species_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="config.json: missing"):
        load_species_model(tmp_path / "empty")


def test_foreign_config_is_rejected(tmp_path):
    _save(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelFileError, match="config.json: not a ddsp-augment"):
        load_species_model(tmp_path / "m")


def test_truncated_weights_are_rejected(tmp_path):
    _save(tmp_path / "m")
    weights = tmp_path / "m" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="weights.safetensors"):
        load_species_model(tmp_path / "m")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_is_never_executed(tmp_path):
    _save(tmp_path / "m")
    marker = tmp_path / "pwned"
    (tmp_path / "m" / "weights.safetensors").write_bytes(pickle.dumps(_Exploit(str(marker))))
    with pytest.raises(ModelFileError, match="weights.safetensors"):
        load_species_model(tmp_path / "m")
    assert not marker.exists()


def test_weights_from_another_architecture_are_rejected(tmp_path):
    _save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["decoder"]["hidden"] = 32
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="does not match the config"):
        load_species_model(tmp_path / "m")
