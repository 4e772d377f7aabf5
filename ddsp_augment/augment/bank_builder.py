"""Build a :class:`SpeciesBank` straight from labelled clips in memory.

For pipelines that already hold their training audio (a torch dataset, a benchmark split):
analyse each clip, train one model per species, and reuse models whose training clips and
settings have not changed. A species whose clips are unusable or whose training collapses gets
no model; the reason is reported and cached beside the models under the same key, so a rerun
neither retrains it nor hides it. With ``prior_clips`` a shared prior (``training.prior``) is
trained on them first (cached the same way, in ``directory/__prior__``) and every species starts
from it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from ..io import AudioError, atomic_write
from ..model.storage import ModelFileError, load_species_model
from ..sampling.bank import SpeciesBank
from ..training.preprocess import (
    Location,
    PreprocessSettings,
    Recording,
    SegmentScreen,
    analyse_audio,
)
from ..training.prior import PRIOR_DIR, train_prior
from ..training.train import CollapseError, TrainSettings, train_species

__all__ = ["BankBuildError", "Clip", "build_bank"]

_FAILED = "FAILED.json"  # in a species folder: {"fingerprint": ..., "reason": ...}


class BankBuildError(ValueError):
    """No species of the clips produced a model; ``failures`` = ``{species: reason}``."""

    def __init__(self, directory: Path, failures: dict[str, str]) -> None:
        super().__init__(f"{directory}: no species model could be trained: {failures}")
        self.failures = failures


@dataclass(frozen=True)
class Clip:
    """One training clip: mono ``audio [samples]`` at the model rate; ``location`` (latitude,
    longitude) is where it was recorded, for a segment screen (None: unknown)."""

    audio: np.ndarray
    species: str
    name: str
    recordist: str = ""
    location: Location | None = None


def _fingerprint(
    clips: Sequence[Clip],
    settings: TrainSettings,
    pre: PreprocessSettings,
    prior: str = "",
    screen: str = "",
) -> str:
    """Key of a model trained on ``clips``; ``prior`` = the fingerprint of the prior it starts
    from (``settings.prior`` is only its path, the same for every prior), ``screen`` the name
    of the segment screen its clips went through."""
    digest = hashlib.sha1()
    for clip in sorted(clips, key=lambda c: (c.name, c.species)):
        digest.update(clip.name.encode())
        digest.update(np.ascontiguousarray(clip.audio, np.float32).tobytes())
    # Without a prior the key is the one models trained before priors existed have.
    train = {k: v for k, v in asdict(settings).items() if not (k.startswith("prior") and not prior)}
    keyed = [train, asdict(pre)] + ([prior, sorted({c.species for c in clips})] if prior else [])
    keyed += [screen] if screen else []
    places = [c.location for c in sorted(clips, key=lambda c: (c.name, c.species))]
    # Screened where they were recorded: a clip moved is screened again.
    keyed += [places] if screen and any(p is not None for p in places) else []
    digest.update(json.dumps(keyed, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _cached(directory: Path, fingerprint: str) -> tuple[bool, str | None]:
    """``(found, failure reason)`` of a model or failure cached under ``fingerprint``. A model
    whose recorded residual is of an older kind (``ContourBank.stale_residual``: saved before
    the residual was measured through the reverb, by training code that also compared bins
    above a recording's band) is retrained, not reused."""
    failed = directory / _FAILED
    if failed.is_file():
        record = json.loads(failed.read_text())
        if record.get("fingerprint") == fingerprint:
            return True, str(record["reason"])
    try:
        saved = load_species_model(directory)
    except ModelFileError:
        return False, None
    current = bool(saved.info.get("complete")) and not saved.contours.stale_residual
    return current and saved.info.get("fingerprint") == fingerprint, None


def _analyse(
    clips: Sequence[Clip], pre: PreprocessSettings, screen: SegmentScreen | None = None
) -> tuple[list[Recording], list[str]]:
    """The clips' recordings, and why the unusable ones were left out."""
    recordings: list[Recording] = []
    problems: list[str] = []
    for clip in clips:
        recordist = clip.recordist or clip.name
        try:
            recordings.append(
                analyse_audio(
                    clip.audio, clip.name, clip.species, recordist, pre, screen, clip.location
                )
            )
        except AudioError as error:
            problems.append(str(error))
    return recordings, problems


def _train_one(
    species: str,
    clips: Sequence[Clip],
    directory: Path,
    settings: TrainSettings,
    pre: PreprocessSettings,
    fingerprint: str,
    screen: SegmentScreen | None = None,
) -> str | None:
    """Train ``species`` into ``directory`` (``species`` = ``PRIOR_DIR``: the shared prior on
    clips of every species); returns why it got no model, or None (the reason is also written
    to ``directory/FAILED.json`` under ``fingerprint``)."""
    recordings, problems = _analyse(clips, pre, screen)
    reason = "; ".join(problems) if not recordings else None
    quiet = {"progress": False, "log": lambda _: None, "extra_info": {"fingerprint": fingerprint}}
    if recordings:
        try:
            if species == PRIOR_DIR:
                train_prior(recordings, directory, settings, **quiet)
            else:
                train_species(recordings, directory, settings, **quiet)
        except CollapseError as error:
            reason = str(error)
    failed = directory / _FAILED
    if reason is None:
        failed.unlink(missing_ok=True)
        return None
    record = json.dumps({"fingerprint": fingerprint, "reason": reason})
    atomic_write(failed, lambda tmp: tmp.write_text(record))
    return reason


def build_bank(
    clips: Sequence[Clip],
    directory: str | Path,
    settings: TrainSettings | None = None,
    preprocess: PreprocessSettings | None = None,
    jobs: int = 1,
    prior_clips: Sequence[Clip] | None = None,
    screen: SegmentScreen | None = None,
) -> tuple[SpeciesBank, dict[str, str]]:
    """Train (or reuse) one model per species of ``clips`` under ``directory/<species>``.

    A species is retrained only when its clips (names and samples) or ``settings`` /
    ``preprocess`` changed; ``settings.seed`` fixes the models, so the same inputs give the same
    weights. ``jobs`` species train in parallel (give each ``settings.threads=1`` then).

    ``prior_clips`` (e.g. every training clip of a dataset, all classes): train a shared prior
    on them first (``training.prior.train_prior``, reused while they and the settings are
    unchanged) and start each species from it; a species is retrained when its prior changes.
    A prior whose training collapses is warned about (and cached) and the species train from
    scratch.

    ``screen`` (e.g. ``evaluation.birdnet.BirdNETScreen((lat, lon))``): each species' clips
    are trained on without the stretches in which it hears another species (``preprocess
    --screen``), each screened at its ``Clip.location`` when it has one; the prior's clips are
    not screened (it learns timbre, not a species' song).

    Returns:
        The bank of the species that have a model, and ``{species: reason}`` for those that do
        not (unusable clips, or training that kept collapsing), cached like a model.

    Raises:
        BankBuildError: No species got a model (its ``failures`` says why).
        ValueError: ``clips`` is empty, or ``prior_clips`` hold fewer than two species.
    """
    if not clips:
        raise ValueError("clips: empty, nothing to train")
    settings = settings or TrainSettings()
    pre = preprocess or PreprocessSettings()
    directory = Path(directory)
    by_species: dict[str, list[Clip]] = {}
    for clip in clips:
        by_species.setdefault(clip.species, []).append(clip)
    prior_key = ""
    if prior_clips is not None:
        if len({c.species for c in prior_clips}) < 2:
            raise ValueError("prior_clips: a shared prior needs clips of at least two species")
        prior_key = _fingerprint(prior_clips, settings, pre, "prior")
        prior_dir = directory / PRIOR_DIR
        found, reason = _cached(prior_dir, prior_key)
        if not found:
            reason = _train_one(PRIOR_DIR, prior_clips, prior_dir, settings, pre, prior_key)
        if reason is None:
            settings = replace(settings, prior=str(prior_dir))
        else:
            warnings.warn(
                f"{prior_dir}: no shared prior ({reason}); training from scratch", stacklevel=2
            )
            prior_key = ""
    todo, failures = [], {}
    for species, group in sorted(by_species.items()):
        fingerprint = _fingerprint(group, settings, pre, prior_key, screen.name if screen else "")
        found, reason = _cached(directory / species, fingerprint)
        if reason is not None:
            failures[species] = reason
        elif not found:
            todo.append((species, group, fingerprint))
    results = Parallel(n_jobs=min(jobs, len(todo)) or 1)(
        delayed(_train_one)(species, group, directory / species, settings, pre, fingerprint, screen)
        for species, group, fingerprint in todo
    )
    failures.update({s: r for (s, _, _), r in zip(todo, results, strict=True) if r is not None})
    trained = [s for s in sorted(by_species) if s not in failures]
    if not trained:
        raise BankBuildError(directory, failures)
    return SpeciesBank.load(directory, species=trained), failures
