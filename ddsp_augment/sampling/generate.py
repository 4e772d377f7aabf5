"""`generate`: new songs from trained species models, each reproducible from its JSON sidecar.

Layout written under ``output_path``::

    <species>/<species>_<seed>_<i>.wav    the song (16-bit PCM)
    <species>/<species>_<seed>_<i>.png    its spectrogram
    <species>/<species>_<seed>_<i>.json   every parameter used (the sidecar)
    <species>/<species>_<seed>_contact_sheet.png   real | synthetic spectrograms side by side

Song ``i`` of seed ``s`` draws all its randomness from ``SeedSequence(s, spawn_key=(i,))``, so
any single file can be rendered again without rendering the others: :func:`regenerate` reads a
sidecar, checks the model files still hash the same, and writes the identical audio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..checks import Backend, NoiseSource, check_backend, check_noise
from ..constants import SAMPLE_RATE
from ..io import (
    AUDIO_EXTENSIONS,
    PathError,
    atomic_write,
    load_audio,
    read_json,
    resample,
    save_audio,
)
from ..model.storage import find_model_dirs
from ..plotting import contact_sheet, spectrogram_png
from ..training.preprocess import load_processed
from .bank import SpeciesBank, check_sample_args
from .gate import GateStats, Judge, gated_draw
from .jitter import JitterConfig
from .scene import SceneConfig

__all__ = [
    "SIDECAR_FORMAT",
    "SIDECAR_VERSION",
    "SidecarError",
    "SongRequest",
    "generate_songs",
    "model_fingerprint",
    "read_sidecar",
    "real_clips",
    "regenerate",
    "render_song",
    "song_seed",
]

SIDECAR_FORMAT = "ddsp-augment-song"
SIDECAR_VERSION = 1
_MODEL_FILES = ("weights.safetensors", "contours.npz", "backgrounds.npz")
_SHEET_ROWS = 6  # contact sheets beyond this many rows get too tall to read


class SidecarError(PathError):
    """A sidecar unusable for regenerating its song; ``str(e)`` is ``"<path>: <reason>"``."""


@dataclass(frozen=True)
class SongRequest:
    """Everything that determines one generated file's audio."""

    species: str
    seed: int
    index: int
    seconds: float
    sample_rate: int
    backend: Backend
    jitter: JitterConfig
    scene: SceneConfig | None
    noise: NoiseSource = "recorded"
    # Which clip of the song's seed: a quality gate's redraws are draws 1, 2, ... (0: the first).
    draw: int = 0

    @property
    def stem(self) -> str:
        return f"{self.species}_{self.seed}_{self.index}"


def song_seed(seed: int, index: int, draw: int = 0) -> np.random.SeedSequence:
    """The seed sequence of song ``index`` of a run seeded ``seed`` (independent of ``n``);
    ``draw`` > 0: of a quality gate's ``draw``-th redraw of it."""
    return np.random.SeedSequence(seed, spawn_key=(index,) if draw == 0 else (index, draw))


def render_song(bank: SpeciesBank, request: SongRequest) -> np.ndarray:
    """The audio ``[round(seconds * sample_rate)]`` float32 of ``request``."""
    return bank.sample(
        request.species,
        n=1,
        seconds=request.seconds,
        sample_rate=request.sample_rate,
        seed=song_seed(request.seed, request.index, request.draw),
        backend=request.backend,
        scene=request.scene,
        jitter=request.jitter,
        noise=request.noise,
    )[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_fingerprint(directory: str | Path) -> dict[str, str]:
    """sha256 of a model directory's weights, contour bank and background spectra.

    The contours and backgrounds are hashed too: they drive sampling as much as the weights.
    """
    directory = Path(directory)
    return {
        name: _sha256(directory / name) for name in _MODEL_FILES if (directory / name).is_file()
    }


def _loudest_window(audio: np.ndarray, length: int) -> np.ndarray:
    """The ``length``-sample stretch of ``audio`` with the most energy (zero padded if short)."""
    if audio.shape[0] <= length:
        return np.pad(audio, (0, length - audio.shape[0]))
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    start = int(np.argmax(energy[length:] - energy[:-length]))
    return audio[start : start + length]


def real_clips(
    real_path: str | Path, species: str, sample_rate: int, seconds: float, limit: int
) -> list[tuple[str, np.ndarray]]:
    """Up to ``limit`` ``(name, audio [seconds * sample_rate])`` crops of ``real_path/species/*``.

    Reads audio files, or preprocessed ``.npz`` files, and keeps each one's loudest stretch.
    Unreadable files are passed over: the sheet is an illustration, not a measurement.
    """
    folder = Path(real_path) / species
    if not folder.is_dir():
        return []
    clips = []
    for file in sorted(folder.iterdir()):
        suffix = file.suffix.lower()
        if suffix not in (*AUDIO_EXTENSIONS, ".npz"):
            continue
        try:
            with warnings.catch_warnings():
                # Clipping warnings matter for training data, not for a picture of the clip.
                warnings.simplefilter("ignore")
                if suffix == ".npz":
                    rec = load_processed(file)
                    audio = resample(rec.audio, rec.sample_rate, sample_rate)
                else:
                    audio, _ = load_audio(file, sample_rate)
        except ValueError:  # AudioError and load_processed's errors
            continue
        clips.append((file.name, _loudest_window(audio, int(round(seconds * sample_rate)))))
        if len(clips) == limit:
            break
    return clips


def _config_to_dict(config: Any) -> dict[str, Any] | None:
    return None if config is None else dataclasses.asdict(config)


def _config_from_dict(cls: type, values: Mapping[str, Any]) -> Any:
    """Rebuild a frozen config dataclass from its JSON dict (lists back to tuples)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _sidecar(
    request: SongRequest, model_dir: Path, wav: Path, png: Path, verdict: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "file": wav.name,
        "spectrogram": png.name,
        "wav_sha256": _sha256(wav),
        "species": request.species,
        "seed": request.seed,
        "index": request.index,
        "draw": request.draw,
        "seed_derivation": "SeedSequence(seed, spawn_key=(index,), or (index, draw) for a "
        "gate's redraw) -> SpeciesBank.sample(n=1)",
        "gate": verdict,
        "seconds": request.seconds,
        "sample_rate": request.sample_rate,
        "backend": request.backend,
        "noise": request.noise,
        "jitter": _config_to_dict(request.jitter),
        "scene": _config_to_dict(request.scene),
        "model": {"directory": str(model_dir.resolve()), "sha256": model_fingerprint(model_dir)},
        "versions": {
            "ddsp_augment": __version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
    }


def _gated_song(
    bank: SpeciesBank,
    request: SongRequest,
    gate: tuple[Judge, float],
    max_draws: int,
    stats: GateStats,
) -> tuple[SongRequest, np.ndarray, dict[str, Any]]:
    """:func:`.gate.gated_draw` over draws 0, 1, ... of ``request``: the request of the clip
    kept, its audio and the verdict a sidecar records."""
    judge, min_confidence = gate
    attempts: list[SongRequest] = []
    clips: list[np.ndarray] = []
    scores: list[float] = []

    def draw() -> np.ndarray:
        attempts.append(dataclasses.replace(request, draw=len(attempts)))
        clips.append(render_song(bank, attempts[-1]))
        return clips[-1]

    def judged(audio: np.ndarray, sample_rate: int, species: str) -> float:
        scores.append(float(judge(audio, sample_rate, species)))
        return scores[-1]

    kept = gated_draw(
        draw, judged, request.species, request.sample_rate, min_confidence, max_draws, stats
    )
    index = next(i for i, clip in enumerate(clips) if clip is kept)
    verdict = {
        "confidence": scores[index],
        "min_confidence": min_confidence,
        "accepted": scores[index] >= min_confidence,
        "draws": len(clips),
    }
    return attempts[index], kept, verdict


def _write_song(
    request: SongRequest,
    audio: np.ndarray,
    model_dir: Path,
    folder: Path,
    verdict: dict[str, Any] | None = None,
) -> Path:
    wav = folder / f"{request.stem}.wav"
    png = folder / f"{request.stem}.png"
    save_audio(wav, audio, request.sample_rate)
    spectrogram_png(
        audio,
        request.sample_rate,
        png,
        f"{request.species} — seed {request.seed}, #{request.index}",
    )
    payload = _sidecar(request, model_dir, wav, png, verdict)
    atomic_write(
        folder / f"{request.stem}.json",
        lambda tmp: tmp.write_text(json.dumps(payload, indent=2), "utf-8"),
    )
    return wav


def generate_songs(
    model_path: str | Path,
    output_path: str | Path,
    n: int = 5,
    seconds: float = 3.0,
    seed: int = 0,
    sample_rate: int = SAMPLE_RATE,
    backend: Backend = "numba",
    species: Iterable[str] | None = None,
    jitter: Mapping[str, Any] | None = None,
    scene: SceneConfig | None = None,
    real_path: str | Path | None = None,
    progress: bool = True,
    noise: NoiseSource = "recorded",
    gate: tuple[Judge, float] | None = None,
    max_draws: int = 8,
    gate_stats: GateStats | None = None,
) -> dict[str, list[Path]]:
    """Write ``n`` songs per species (wav + spectrogram + sidecar) and a contact sheet each.

    Args:
        model_path: ``models/`` or ``models/<species>/``.
        jitter: :class:`JitterConfig` fields overriding each species' own defaults.
        scene: Where the bird is heard (None: the clean bird).
        noise: What shapes the songs' noise (``SpeciesBank.sample``'s ``noise``).
        real_path: Folder of real recordings (``<species>/*`` audio or preprocessed ``.npz``)
            for the contact sheets' real column.
        gate: ``(judge, min_confidence)`` (see :mod:`.gate`): a song the judge gives less is
            drawn again from its seed, up to ``max_draws`` clips, and the most convincing kept.
            The sidecar records the draw (``--from_sidecar`` renders it without the judge)
            and the judge's verdict; ``gate_stats`` collects the totals.

    Returns:
        ``{species: [wav paths]}``.
    """
    if isinstance(seed, np.random.Generator | np.random.SeedSequence):
        # The sidecars record an int seed: each song must be renderable again on its own.
        raise TypeError(f"seed must be an int >= 0, got {seed!r}")
    check_sample_args(n, seconds, sample_rate, seed, sample_rate)
    check_backend(backend)
    check_noise(noise)
    if real_path is not None and not Path(real_path).is_dir():
        raise FileNotFoundError(f"{real_path}: no such folder of real recordings")
    if gate is not None and (not callable(gate[0]) or not 0 <= gate[1] <= 1):
        raise ValueError(f"gate must be (judge callable, min_confidence in [0, 1]), got {gate}")
    if isinstance(max_draws, bool) or not isinstance(max_draws, int) or max_draws < 1:
        raise ValueError(f"max_draws must be an int >= 1, got {max_draws!r}")
    stats = gate_stats if gate_stats is not None else GateStats()
    dirs = find_model_dirs(model_path, species)
    banks = {name: SpeciesBank.load(model_dir) for name, model_dir in dirs.items()}
    # Resolve (and so validate) every species' jitter before writing anything.
    configs = {name: bank.jitter_config(name, **dict(jitter or {})) for name, bank in banks.items()}
    output_path = Path(output_path)
    written: dict[str, list[Path]] = {}
    bar = tqdm(total=n * len(dirs), desc="generate", unit="song", disable=not progress)
    for name, model_dir in dirs.items():
        folder = output_path / name
        synthetic = []
        for index in range(n):
            request = SongRequest(
                name,
                seed,
                index,
                float(seconds),
                sample_rate,
                backend,
                configs[name],
                scene,
                noise,
            )
            verdict = None
            if gate is None:
                audio = render_song(banks[name], request)
            else:
                request, audio, verdict = _gated_song(banks[name], request, gate, max_draws, stats)
            wav = _write_song(request, audio, model_dir, folder, verdict)
            written.setdefault(name, []).append(wav)
            if index < _SHEET_ROWS:
                synthetic.append((wav.name, audio))
            bar.update(1)
        real = (
            real_clips(real_path, name, sample_rate, seconds, min(n, _SHEET_ROWS))
            if real_path
            else []
        )
        title = name.replace("_", " ")
        if real_path and not real:
            title += f"\n(no readable recordings in {Path(real_path) / name})"
        sheet = folder / f"{name}_{seed}_contact_sheet.png"
        contact_sheet(real, synthetic, sample_rate, sheet, title)
    bar.close()
    return written


def read_sidecar(path: str | Path) -> tuple[SongRequest, dict[str, Any]]:
    """A sidecar's request and raw JSON; raises :class:`SidecarError` naming the file."""
    path = Path(path)
    sidecar = (SIDECAR_FORMAT, SIDECAR_VERSION, "sidecar")
    payload = read_json(path, SidecarError, missing="no such sidecar file", file_format=sidecar)
    try:
        request = SongRequest(
            species=str(payload["species"]),
            seed=int(payload["seed"]),
            index=int(payload["index"]),
            seconds=float(payload["seconds"]),
            sample_rate=int(payload["sample_rate"]),
            backend=str(payload["backend"]),
            # Sidecars written before recorded residuals rendered the decoder's noise.
            noise=str(payload.get("noise", "model")),
            draw=int(payload.get("draw", 0)),  # none before the gate: the first draw
            # Sidecars written before syntax models sang shuffled phrases, and before
            # tempo_scope stretched whole phrases: they regenerate so.
            jitter=_config_from_dict(
                JitterConfig,
                {"syntax": "shuffle", "tempo_scope": "phrase", **payload["jitter"]},
            ),
            scene=None
            if payload["scene"] is None
            else _config_from_dict(SceneConfig, payload["scene"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise SidecarError(path, f"incomplete or invalid sidecar ({error})") from error
    return request, payload


def regenerate(
    sidecar: str | Path, output_path: str | Path | None = None, model_path: str | Path | None = None
) -> tuple[Path, bool]:
    """Render the song a sidecar describes again; returns ``(wav path, identical)``.

    ``output_path`` defaults to ``<sidecar folder>/regenerated``; files go to
    ``<output_path>/<species>/`` under their original names. ``model_path`` replaces the recorded
    model directory (e.g. after moving ``models/``); its files must hash as recorded, else
    :class:`SidecarError` (other weights would give other audio). ``identical`` says whether the
    new wav's sha256 equals the one recorded.
    """
    sidecar = Path(sidecar)
    request, payload = read_sidecar(sidecar)
    model_dir = Path(model_path) if model_path is not None else Path(payload["model"]["directory"])
    model_dir = find_model_dirs(model_dir, [request.species])[request.species]
    recorded = payload["model"].get("sha256", {})
    current = model_fingerprint(model_dir)
    changed = sorted(k for k in recorded if recorded[k] != current.get(k))
    if changed:
        raise SidecarError(
            sidecar,
            f"model files {changed} in {model_dir} differ from the ones this song was made with "
            "(sha256 mismatch); pass the original model with --model_checkpoint",
        )
    folder = Path(output_path) if output_path is not None else sidecar.parent / "regenerated"
    audio = render_song(SpeciesBank.load(model_dir), request)
    wav = _write_song(request, audio, model_dir, folder / request.species, payload.get("gate"))
    return wav, _sha256(wav) == payload.get("wav_sha256")
