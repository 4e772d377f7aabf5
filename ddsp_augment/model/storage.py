"""Species model directories and training checkpoints: atomic, versioned, no code execution.

``models/<species>/``:
- ``config.json`` — format name + version, decoder config, training summary, metrics. Written
  last, so a directory without it is an unfinished save and is rejected.
- ``weights.safetensors`` — model weights (safetensors cannot carry code, unlike pickle).
- ``contours.npz`` — the species' contour bank (no pickle).
- ``backgrounds.npz`` — each training recording's background magnitude (2048-point STFT).
- ``checkpoint/`` — last training state for ``--resume`` (safetensors + JSON).
- ``failed.json`` — instead of the model files when training failed (the reason); loading such a
  directory raises with that reason rather than using a half-trained model.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..features.contours import ContourBank
from ..io import atomic_write
from .species_model import DecoderConfig, SpeciesModel

__all__ = [
    "FAILED_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ModelFileError",
    "SavedSpecies",
    "is_model_dir",
    "load_checkpoint",
    "load_species_model",
    "mark_failed",
    "save_checkpoint",
    "save_species_model",
    "training_failure",
]

FORMAT_NAME = "ddsp-augment-species-model"
FORMAT_VERSION = 1
FAILED_FILE = "failed.json"
_MODEL_FILES = ("config.json", "weights.safetensors", "contours.npz", "backgrounds.npz")
_LOAD_ERRORS = (
    OSError,
    ValueError,
    KeyError,
    RuntimeError,
    EOFError,
    SafetensorError,
    zipfile.BadZipFile,
)


class ModelFileError(ValueError):
    """A model or checkpoint file is missing, corrupt, truncated or foreign."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class SavedSpecies:
    """A loaded species model directory."""

    species: str
    model: SpeciesModel
    contours: ContourBank
    backgrounds: np.ndarray  # [n_recordings, 1025] background magnitude per bin
    info: dict[str, Any]  # config.json contents
    directory: Path | None = None


def is_model_dir(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file()


def _write_json(path: Path, payload: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2), "utf-8"))


def mark_failed(directory: str | Path, species: str, reason: str) -> None:
    """Replace a species model directory's model files by ``failed.json`` with ``reason``.

    ``config.json`` goes first, so no reader ever sees a loadable model whose training failed
    (an earlier epoch's save would otherwise look like a finished model).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in _MODEL_FILES:
        (directory / name).unlink(missing_ok=True)
    _write_json(directory / FAILED_FILE, {"species": species, "failed": reason})


def training_failure(directory: str | Path) -> str | None:
    """The reason training of the species in ``directory`` failed, or None."""
    path = Path(directory) / FAILED_FILE
    return str(_read_json(path).get("failed", "unknown reason")) if path.is_file() else None


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ModelFileError(path, "missing")
    try:
        payload = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(path, f"not valid JSON ({error})") from error
    if not isinstance(payload, dict):
        raise ModelFileError(path, "not a JSON object")
    return payload


def save_species_model(
    directory: str | Path,
    species: str,
    model: SpeciesModel,
    contours: ContourBank,
    backgrounds: np.ndarray,
    info: dict[str, Any],
) -> None:
    """Write a species model directory atomically file by file, ``config.json`` last."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(directory / "weights.safetensors", lambda tmp: save_file(state, str(tmp)))
    contours.save(directory / "contours.npz")

    def write_backgrounds(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, backgrounds=np.asarray(backgrounds, np.float32))

    atomic_write(directory / "backgrounds.npz", write_backgrounds)
    (directory / FAILED_FILE).unlink(missing_ok=True)  # a retrained species is usable again
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "species": species,
        "decoder": model.config.to_dict(),
        **info,
    }
    _write_json(directory / "config.json", payload)


def load_species_model(directory: str | Path, device: str | torch.device = "cpu") -> SavedSpecies:
    """Load a species model directory; a bad file raises :class:`ModelFileError` naming it."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(directory, "not a directory")
    failure = training_failure(directory)
    if failure is not None:
        raise ModelFileError(directory, f"training failed, no usable model ({failure})")
    config_path = directory / "config.json"
    info = _read_json(config_path)
    if info.get("format") != FORMAT_NAME:
        raise ModelFileError(config_path, f"not a {FORMAT_NAME} config (foreign file?)")
    if info.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            config_path,
            f"format version {info.get('format_version')!r}; "
            f"this ddsp-augment reads {FORMAT_VERSION}",
        )
    try:
        config = DecoderConfig.from_dict(info["decoder"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(config_path, f"bad decoder config ({error})") from error
    model = SpeciesModel(config)
    weights = directory / "weights.safetensors"
    if not weights.is_file():
        raise ModelFileError(weights, "missing")
    try:
        state = load_file(str(weights), device=str(device))
        model.load_state_dict(state, strict=True)
    except _LOAD_ERRORS as error:
        raise ModelFileError(weights, f"corrupt or does not match the config ({error})") from error
    model.to(device).eval()
    try:
        contours = ContourBank.load(directory / "contours.npz")
    except ValueError as error:
        raise ModelFileError(directory / "contours.npz", str(error)) from error
    backgrounds_path = directory / "backgrounds.npz"
    try:
        with np.load(backgrounds_path, allow_pickle=False) as data:
            backgrounds = data["backgrounds"]
    except _LOAD_ERRORS as error:
        raise ModelFileError(backgrounds_path, f"unreadable ({error})") from error
    species = str(info.get("species", directory.name))
    return SavedSpecies(species, model, contours, backgrounds, info, directory)


def save_checkpoint(
    directory: str | Path,
    model: SpeciesModel,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    generator: torch.Generator,
) -> None:
    """Training state for resume: tensors in safetensors, the rest in JSON (written last)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, values in optim["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["generator"] = generator.get_state()
    atomic_write(directory / "state.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    payload = {
        "format": FORMAT_NAME + "-checkpoint",
        "format_version": FORMAT_VERSION,
        "param_groups": optim["param_groups"],
        **state,
    }
    _write_json(directory / "state.json", payload)


def load_checkpoint(
    directory: str | Path,
    model: SpeciesModel,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote into ``model``/``optimizer``/``generator``."""
    directory = Path(directory)
    meta_path = directory / "state.json"
    meta = _read_json(meta_path)
    if meta.get("format") != FORMAT_NAME + "-checkpoint":
        raise ModelFileError(meta_path, "not a ddsp-augment training checkpoint")
    tensor_path = directory / "state.safetensors"
    try:
        tensors = load_file(str(tensor_path))
        model.load_state_dict(
            {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True
        )
        optim_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                optim_state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": optim_state, "param_groups": meta["param_groups"]})
        generator.set_state(tensors["generator"])
    except _LOAD_ERRORS as error:
        raise ModelFileError(tensor_path, f"corrupt or foreign checkpoint ({error})") from error
    return meta
