"""Build a :class:`SpeciesBank` straight from labelled clips in memory.

For pipelines that already hold their training audio (a torch dataset, a benchmark split):
analyse each clip, train one model per species, and reuse models whose training clips and
settings have not changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from ..io import AudioError
from ..model.storage import ModelFileError, load_species_model
from ..sampling.bank import SpeciesBank
from ..training.preprocess import PreprocessSettings, Recording, analyse_audio
from ..training.train import CollapseError, TrainSettings, train_species

__all__ = ["Clip", "build_bank"]


@dataclass(frozen=True)
class Clip:
    """One training clip: mono ``audio [samples]`` at the model rate."""

    audio: np.ndarray
    species: str
    name: str
    recordist: str = ""


def _fingerprint(clips: Sequence[Clip], settings: TrainSettings, pre: PreprocessSettings) -> str:
    digest = hashlib.sha1()
    for clip in sorted(clips, key=lambda c: c.name):
        digest.update(clip.name.encode())
        digest.update(np.ascontiguousarray(clip.audio, np.float32).tobytes())
    digest.update(json.dumps([asdict(settings), asdict(pre)], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _is_current(directory: Path, fingerprint: str) -> bool:
    try:
        info = load_species_model(directory).info
    except ModelFileError:
        return False
    return bool(info.get("complete")) and info.get("fingerprint") == fingerprint


def _train_one(
    species: str,
    clips: Sequence[Clip],
    directory: Path,
    settings: TrainSettings,
    pre: PreprocessSettings,
    fingerprint: str,
) -> str | None:
    """Train ``species`` into ``directory``; returns why it was skipped, or None."""
    recordings: list[Recording] = []
    problems: list[str] = []
    for clip in clips:
        try:
            recordings.append(
                analyse_audio(clip.audio, clip.name, species, clip.recordist or clip.name, pre)
            )
        except AudioError as error:
            problems.append(str(error))
    if not recordings:
        return "; ".join(problems)
    try:
        train_species(
            recordings,
            directory,
            settings,
            progress=False,
            log=lambda _: None,
            extra_info={"fingerprint": fingerprint},
        )
    except CollapseError as error:
        return str(error)
    return None


def build_bank(
    clips: Sequence[Clip],
    directory: str | Path,
    settings: TrainSettings | None = None,
    preprocess: PreprocessSettings | None = None,
    jobs: int = 1,
) -> tuple[SpeciesBank, dict[str, str]]:
    """Train (or reuse) one model per species of ``clips`` under ``directory/<species>``.

    Returns the bank and ``{species: reason}`` for species that produced no model (unusable
    clips, or training that kept collapsing).
    """
    settings = settings or TrainSettings()
    pre = preprocess or PreprocessSettings()
    directory = Path(directory)
    by_species: dict[str, list[Clip]] = {}
    for clip in clips:
        by_species.setdefault(clip.species, []).append(clip)
    todo = []
    for species, group in sorted(by_species.items()):
        fingerprint = _fingerprint(group, settings, pre)
        if not _is_current(directory / species, fingerprint):
            todo.append((species, group, fingerprint))
    results = Parallel(n_jobs=jobs)(
        delayed(_train_one)(species, group, directory / species, settings, pre, fingerprint)
        for species, group, fingerprint in todo
    )
    failures = {s: r for (s, _, _), r in zip(todo, results, strict=True) if r is not None}
    trained = [s for s in by_species if s not in failures]
    if not trained:
        raise ValueError(f"{directory}: no species model could be trained: {failures}")
    return SpeciesBank.load(directory, species=trained), failures
