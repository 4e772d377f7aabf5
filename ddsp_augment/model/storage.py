"""Species model directories and training checkpoints: atomic, versioned, no code execution.

``models/<species>/``:
- ``config.json`` — format name + version, decoder config, training summary, metrics, and the
  sha256 of each file below (``"files"``). Written last, so a directory without it is an
  unfinished save and is rejected.
- ``weights.safetensors`` — model weights (safetensors cannot carry code, unlike pickle).
- ``contours.npz`` — the species' contour bank (no pickle), with each frame's recorded residual
  (``features.residual``; float16 dB) and its ``residual_version`` once training has finished
  (residuals of an older version are not loaded: such a model renders its decoder's noise).
- ``backgrounds.npz`` — each training recording's background magnitude (2048-point STFT).
- ``checkpoint/state.safetensors`` — last training state for ``--resume``: tensors and the JSON
  state (history, RNG states, ...) in one file, so it is replaced in one rename.

A save is one commit: the new data files are written beside the old ones as
``.<name>.pending``, ``config.json`` (listing their hashes) is renamed into place, then the
pending files are renamed over the old ones. A crash at any point leaves a directory that loads
as the old model or the new one, never a mix: the loader takes, for each file, the candidate
whose hash ``config.json`` records, and the next save first finishes an interrupted one.
Every file is validated on load (shapes, finite values, ranges); a bad one raises
:class:`ModelFileError` naming it.

``failed.json`` replaces the model files when training failed (the reason); loading such a
directory raises with that reason rather than using a half-trained model.

A shared prior (``training.prior``) is saved in the same format with species
:data:`PRIOR_SPECIES`: it is a starting point for training, not a species, so
:func:`find_model_dirs` (and with it ``SpeciesBank``) skips it in a folder and refuses it named.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..constants import F0_MAX_HZ, F0_MIN_HZ
from ..features.background import FLOOR_FFT_SIZE
from ..features.contours import ContourBank
from ..features.residual import RESIDUAL_FLOOR_DB
from ..io import PathError, atomic_write, read_json
from .decoder import DecoderConfig
from .species_model import SpeciesModel

__all__ = [
    "CHECKPOINT_FILE",
    "FAILED_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_FILES",
    "PRIOR_SPECIES",
    "ModelFileError",
    "SavedSpecies",
    "analysis_band",
    "find_model_dirs",
    "has_checkpoint",
    "is_model_dir",
    "load_checkpoint",
    "load_prior",
    "load_species_model",
    "load_weights",
    "mark_failed",
    "read_checkpoint",
    "save_checkpoint",
    "save_species_model",
    "sha256_file",
    "training_failure",
    "write_checkpoint",
]

FORMAT_NAME = "ddsp-augment-species-model"
FORMAT_VERSION = 1
#: Version 2: one ``state.safetensors`` with the JSON state in its metadata (1 had a state.json).
CHECKPOINT_VERSION = 2
CHECKPOINT_FILE = "state.safetensors"
MODEL_FILES = ("weights.safetensors", "contours.npz", "backgrounds.npz")
FAILED_FILE = "failed.json"
#: The species name a shared prior is saved under (no folder-named species starts with "__").
PRIOR_SPECIES = "__prior__"
_DECODER_INTS = ("sample_rate", "hop_length", "n_harmonics", "n_noise_bands", "hidden", "n_layers")
_LOAD_ERRORS = (
    OSError,
    ValueError,
    KeyError,
    RuntimeError,
    EOFError,
    SafetensorError,
    zipfile.BadZipFile,
)


class ModelFileError(PathError):
    """A model or checkpoint file is missing, corrupt, truncated or foreign."""


@dataclass
class SavedSpecies:
    """A loaded species model directory."""

    species: str
    model: SpeciesModel
    contours: ContourBank
    backgrounds: np.ndarray  # [n_recordings, 1025] background magnitude per bin
    info: dict[str, Any]  # config.json contents
    directory: Path | None = None


def analysis_band(info: dict[str, Any]) -> tuple[float, float]:
    """The band (Hz) a model's recordings were analysed in (``preprocess --f_min/--f_max``),
    where audio analysed for that model again has its F0 tracked and its bird measured: from
    ``info["training_data"]["band"]`` (``config.json``); the defaults for models saved before
    it was recorded."""
    low, high = info.get("training_data", {}).get("band", (F0_MIN_HZ, F0_MAX_HZ))
    return float(low), float(high)


def is_model_dir(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file()


def find_model_dirs(path: str | Path, species: Iterable[str] | None = None) -> dict[str, Path]:
    """``{species: directory}`` for ``path`` = one species model directory or a folder of them,
    in ``species`` order when given (else sorted by directory).

    Raises FileNotFoundError / ModelFileError naming the path for anything else (a missing path,
    a file such as a foreign ``.pth`` checkpoint, a folder without models, an unknown species).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such model directory (train with `ddsp-augment train`)"
        )
    if not path.is_dir():
        raise ModelFileError(
            path,
            "not a model directory (give models/ or models/<species>/ as written by "
            "`ddsp-augment train`)",
        )
    failure = training_failure(path)
    if failure is not None:
        raise ModelFileError(path, f"training failed, no usable model ({failure})")
    dirs = [path] if is_model_dir(path) else sorted(p for p in path.iterdir() if is_model_dir(p))
    failed = {
        p.name: reason
        for p in ([] if is_model_dir(path) else sorted(path.iterdir()))
        if p.is_dir() and (reason := training_failure(p)) is not None
    }
    if not dirs:
        raise ModelFileError(path, "contains no species model (no config.json, no */config.json)")
    wanted = None if species is None else list(species)
    if wanted is not None and PRIOR_SPECIES in wanted:
        raise ModelFileError(path / PRIOR_SPECIES, _NOT_A_SPECIES)
    found: dict[str, Path] = {}
    for directory in dirs:
        info = read_json(directory / "config.json", ModelFileError)
        name = str(info.get("species", directory.name))
        if name == PRIOR_SPECIES:
            if directory == path:
                raise ModelFileError(path, _NOT_A_SPECIES)
            continue  # the shared prior beside the species models it started
        if name in found:
            # Which one to use is the user's call, not sort order's.
            raise ModelFileError(
                path,
                f"{found[name].name} and {directory.name} both hold a model of species {name!r}; "
                "keep one, or pass one folder",
            )
        found[name] = directory
    if not found and (wanted is None or not failed):
        raise ModelFileError(path, "contains only a shared prior, no species model")
    if wanted is None:
        if failed:
            warnings.warn(f"{path}: skipping {sorted(failed)}: training failed", stacklevel=3)
        return found
    missing = sorted(set(wanted) - set(found))
    for name in missing:
        if name in failed:
            raise ModelFileError(path / name, f"training failed ({failed[name]})")
    if missing:
        raise ModelFileError(path, f"no model for species {missing}; have {sorted(found)}")
    return {name: found[name] for name in wanted}


_NOT_A_SPECIES = (
    "a shared prior (`train --prior shared`), not a species model: load the species folders "
    "trained from it"
)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pending(directory: Path, name: str) -> Path:
    return directory / f".{name}.pending"


def _write_json(path: Path, payload: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2), "utf-8"))


def mark_failed(directory: str | Path, species: str, reason: str) -> None:
    """Replace a species model directory's model files by ``failed.json`` with ``reason``.

    ``config.json`` goes first, so no reader ever sees a loadable model whose training failed
    (an earlier epoch's save would otherwise look like a finished model).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").unlink(missing_ok=True)
    for name in MODEL_FILES:
        (directory / name).unlink(missing_ok=True)
        _pending(directory, name).unlink(missing_ok=True)
    _write_json(directory / FAILED_FILE, {"species": species, "failed": reason})


def training_failure(directory: str | Path) -> str | None:
    """The reason training of the species in ``directory`` failed, or None."""
    path = Path(directory) / FAILED_FILE
    if not path.is_file():
        return None
    return str(read_json(path, ModelFileError).get("failed", "unknown reason"))


def _write_pending(directory: Path, name: str, save: Callable[[Path], None]) -> str:
    """``save`` (an atomic writer) ``name``'s new content as its pending file; its sha256."""
    pending = _pending(directory, name)
    save(pending)
    return sha256_file(pending)


def _finish_save(directory: Path) -> None:
    """Rename the pending files that the committed ``config.json`` lists over the old ones.

    Completes a save interrupted after its commit; pending files of an uncommitted save (their
    hash is not the recorded one) are left to be overwritten.
    """
    try:
        files = json.loads((directory / "config.json").read_text("utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return
    for name in MODEL_FILES:
        pending = _pending(directory, name)
        if (
            pending.is_file()
            and isinstance(files, dict)
            and sha256_file(pending) == files.get(name)
        ):
            os.replace(pending, directory / name)


def save_species_model(
    directory: str | Path,
    species: str,
    model: SpeciesModel,
    contours: ContourBank,
    backgrounds: np.ndarray,
    info: dict[str, Any],
) -> None:
    """Write a species model directory as one commit (see the module docstring)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _finish_save(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}

    def write_backgrounds(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, backgrounds=np.asarray(backgrounds, np.float32))

    hashes = {
        "weights.safetensors": _write_pending(
            directory,
            "weights.safetensors",
            lambda path: atomic_write(path, lambda tmp: save_file(state, str(tmp))),
        ),
        "contours.npz": _write_pending(directory, "contours.npz", contours.save),
        "backgrounds.npz": _write_pending(
            directory, "backgrounds.npz", lambda path: atomic_write(path, write_backgrounds)
        ),
    }
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "species": species,
        "decoder": model.config.to_dict(),
        **info,
        "files": hashes,
    }
    (directory / FAILED_FILE).unlink(missing_ok=True)  # a retrained species is usable again
    _write_json(directory / "config.json", payload)  # the commit
    _finish_save(directory)


def _committed(directory: Path, name: str, files: dict[str, str] | None) -> Path:
    """The file holding ``name``'s committed content: itself, or a not yet renamed pending file.

    ``files`` is config.json's hash list (None for models saved before it existed: no check).
    """
    path = directory / name
    if files is None:
        if not path.is_file():
            raise ModelFileError(path, "missing")
        return path
    expected = files.get(name)
    for candidate in (path, _pending(directory, name)):
        if candidate.is_file() and sha256_file(candidate) == expected:
            return candidate
    if not path.is_file():
        raise ModelFileError(path, "missing")
    raise ModelFileError(
        path, "sha256 differs from the one config.json records (file modified or damaged)"
    )


def _check_finite(path: Path, name: str, values: np.ndarray, low: float, high: float) -> None:
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        raise ModelFileError(path, f"{name} must be float, got {values.dtype}")
    if not np.all(np.isfinite(values)):
        raise ModelFileError(path, f"{name} contains NaN or infinite values")
    if values.size and (values.min() < low or values.max() > high):
        raise ModelFileError(
            path, f"{name} outside [{low}, {high}] ({values.min():g} to {values.max():g})"
        )


def _decoder_config(path: Path, values: Any) -> DecoderConfig:
    """config.json's decoder config, with every number checked (NaN passes ``<= 0`` tests)."""
    if not isinstance(values, dict):
        raise ModelFileError(path, "decoder config missing or not an object")
    for name, value in values.items():
        integer = name in _DECODER_INTS or name == "kernel_size"
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            kind = "an integer" if integer else "a number"
            raise ModelFileError(path, f"decoder {name} must be {kind}, got {value!r}")
        if not integer and not math.isfinite(value):
            raise ModelFileError(path, f"decoder {name} must be finite, got {value!r}")
    if not values.get("reverb_seconds", 1.0) > 0:
        raise ModelFileError(
            path, f"decoder reverb_seconds must be > 0, got {values['reverb_seconds']}"
        )
    try:
        return DecoderConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise ModelFileError(path, f"bad decoder config ({error})") from error


def _load_contours(path: Path, config: DecoderConfig) -> ContourBank:
    try:
        contours = ContourBank.load(path)
    except ValueError as error:
        raise ModelFileError(path, str(error)) from error
    if (contours.sample_rate, contours.hop_length) != (config.sample_rate, config.hop_length):
        raise ModelFileError(
            path,
            f"contours are on a {contours.sample_rate} Hz / hop {contours.hop_length} grid, the "
            f"model on {config.sample_rate} Hz / hop {config.hop_length}",
        )
    for field, low, high in (
        ("f0_hz", 0.0, config.sample_rate / 2),
        ("loudness_db", -math.inf, math.inf),
        ("confidence", 0.0, 1.0),
    ):
        _check_finite(
            path, field, np.concatenate([getattr(s, field) for s in contours.segments]), low, high
        )
    residual = contours.concatenated()[2]
    if residual is not None:  # filtered-noise gains in dB: floor -120, never loud
        _check_finite(path, "residual_db", residual, RESIDUAL_FLOOR_DB - 1.0, 40.0)
    return contours


def _load_backgrounds(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            backgrounds = data["backgrounds"]
    except _LOAD_ERRORS as error:
        raise ModelFileError(path, f"unreadable ({error})") from error
    bins = FLOOR_FFT_SIZE // 2 + 1
    if backgrounds.ndim != 2 or backgrounds.shape[0] == 0 or backgrounds.shape[1] != bins:
        raise ModelFileError(
            path, f"backgrounds must have shape [recordings, {bins}], got {backgrounds.shape}"
        )
    _check_finite(path, "backgrounds", backgrounds, 0.0, math.inf)
    return backgrounds


def _read_model_config(directory: Path) -> tuple[dict[str, Any], DecoderConfig]:
    config_path = directory / "config.json"
    info = read_json(
        config_path, ModelFileError, file_format=(FORMAT_NAME, FORMAT_VERSION, "config")
    )
    species = info.setdefault("species", directory.name)
    if not isinstance(species, str) or not species:
        raise ModelFileError(config_path, f"species must be a non-empty string, got {species!r}")
    files = info.get("files")
    if files is not None and (
        not isinstance(files, dict) or not all(isinstance(files.get(n), str) for n in MODEL_FILES)
    ):
        raise ModelFileError(config_path, f"files must map {list(MODEL_FILES)} to sha256 hashes")
    return info, _decoder_config(config_path, info.get("decoder"))


def load_weights(
    directory: str | Path, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """The committed weights of a model directory (a state dict), checked against its hash."""
    directory = Path(directory)
    info, _ = _read_model_config(directory)
    path = _committed(directory, "weights.safetensors", info.get("files"))
    try:
        return load_file(str(path), device=str(device))
    except _LOAD_ERRORS as error:
        raise ModelFileError(path, f"corrupt ({error})") from error


def load_species_model(directory: str | Path, device: str | torch.device = "cpu") -> SavedSpecies:
    """Load and validate a model directory; a bad file raises :class:`ModelFileError` naming it."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(directory, "not a directory")
    failure = training_failure(directory)
    if failure is not None:
        raise ModelFileError(directory, f"training failed, no usable model ({failure})")
    info, config = _read_model_config(directory)
    files = info.get("files")
    model = SpeciesModel(config)
    weights = _committed(directory, "weights.safetensors", files)
    try:
        state = load_file(str(weights), device=str(device))
        model.load_state_dict(state, strict=True)
    except _LOAD_ERRORS as error:
        raise ModelFileError(weights, f"corrupt or does not match the config ({error})") from error
    if not all(bool(torch.isfinite(v).all()) for v in state.values()):
        raise ModelFileError(weights, "weights contain NaN or infinite values")
    model.to(device).eval()
    contours = _load_contours(_committed(directory, "contours.npz", files), config)
    backgrounds = _load_backgrounds(_committed(directory, "backgrounds.npz", files))
    return SavedSpecies(info["species"], model, contours, backgrounds, info, directory)


def load_prior(directory: str | Path, device: str | torch.device = "cpu") -> SavedSpecies:
    """Load a shared prior's model directory (``training.prior.train_prior``), validated like a
    species model; a species model given instead raises :class:`ModelFileError` naming it."""
    directory = Path(directory)
    if not (directory / "config.json").is_file() and training_failure(directory) is None:
        raise ModelFileError(directory, "no shared prior here (no config.json)")
    saved = load_species_model(directory, device)
    if saved.species != PRIOR_SPECIES:
        raise ModelFileError(
            directory / "config.json",
            f"a model of species {saved.species!r}, not a shared prior (`train --prior shared`)",
        )
    return saved


def save_checkpoint(
    directory: str | Path,
    model: SpeciesModel,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    generator: torch.Generator,
) -> None:
    """Training state for resume, as one file: tensors, with the JSON-able ``state`` (history,
    RNG states, ...) and the optimizer's param groups in its metadata. One rename replaces it,
    so a crash leaves the previous epoch's checkpoint or this one, never parts of both."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, values in optim["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["generator"] = generator.get_state()
    write_checkpoint(
        directory,
        tensors,
        {"param_groups": optim["param_groups"], "device": generator.device.type, **state},
    )


def write_checkpoint(directory: str | Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """``directory/state.safetensors``: ``tensors`` and the JSON-able ``state``, in one atomic
    file (the format :func:`save_checkpoint` and stacked training share)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT_NAME + "-checkpoint", "format_version": CHECKPOINT_VERSION}
    metadata = {"state": json.dumps({**payload, **state})}
    atomic_write(
        directory / CHECKPOINT_FILE, lambda tmp: save_file(tensors, str(tmp), metadata=metadata)
    )


def has_checkpoint(directory: str | Path) -> bool:
    return (Path(directory) / CHECKPOINT_FILE).is_file()


def read_checkpoint(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, state)`` of the file :func:`write_checkpoint` wrote; an unreadable, foreign or
    older-version file raises :class:`ModelFileError` naming it."""
    path = Path(directory) / CHECKPOINT_FILE
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("state", "null"))
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (*_LOAD_ERRORS, json.JSONDecodeError) as error:
        raise ModelFileError(path, f"unreadable checkpoint ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME + "-checkpoint":
        raise ModelFileError(path, "not a ddsp-augment training checkpoint")
    if meta.get("format_version") != CHECKPOINT_VERSION:
        raise ModelFileError(
            path,
            f"checkpoint version {meta.get('format_version')!r}; this ddsp-augment reads "
            f"{CHECKPOINT_VERSION} (train without --resume)",
        )
    return tensors, meta


def load_checkpoint(
    directory: str | Path,
    model: SpeciesModel,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote into ``model``/``optimizer``/``generator``;
    returns its ``state``."""
    path = Path(directory) / CHECKPOINT_FILE
    tensors, meta = read_checkpoint(directory)
    try:
        model.load_state_dict(
            {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True
        )
        optim_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                optim_state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": optim_state, "param_groups": meta["param_groups"]})
        random_state = tensors["generator"]
    except _LOAD_ERRORS as error:
        raise ModelFileError(path, f"corrupt or foreign checkpoint ({error})") from error
    restore_generator(generator, random_state, meta, path)
    return meta


def restore_generator(
    generator: torch.Generator, state: torch.Tensor, meta: dict[str, Any], path: Path
) -> None:
    """``generator.set_state(state)`` for a checkpoint's random state. A CPU generator's state
    cannot seed a CUDA one nor the reverse, and a resumed run on another device would not be
    the run it resumes anyway (other kernels, other rounding): that raises
    :class:`ModelFileError` naming the device to resume on."""
    here = generator.device.type
    if state.numel() != generator.get_state().numel():
        # Checkpoints from before the device was recorded do not say which it was.
        there = meta.get("device")
        advice = f"resume with --device {there}" if there else "resume on that device"
        raise ModelFileError(
            path,
            f"written by a run on {there or 'another device'}, this run is on {here}: "
            f"{advice}, or train without --resume",
        )
    try:
        generator.set_state(state)
    except RuntimeError as error:
        raise ModelFileError(path, f"corrupt random state ({error})") from error
