"""A shared prior across species: one decoder trained on every species' recordings pooled.

Rare species have two or three recordings; the majority species of the same folder have
minutes. A species model started from a decoder that has already learned birdsong in general
(harmonic balance, noise bands, the room) borrows that from the rest, and its own few seconds
only have to adapt it (``TrainSettings(prior=...)`` in ``training.train.train_species``).

The prior is saved as an ordinary model directory (validated, atomic, resumable) whose species is
``model.storage.PRIOR_SPECIES``, so ``SpeciesBank`` never mistakes it for a species.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..model.storage import PRIOR_SPECIES
from .preprocess import Recording
from .train import TrainSettings, split_by_recordist, train_species

__all__ = ["PRIOR_DIR", "prior_split", "train_prior"]

#: Where ``train_folder(prior="shared")`` and ``build_bank(prior_clips=...)`` keep the prior.
PRIOR_DIR = PRIOR_SPECIES

# Validation audio of the prior per epoch: the species' held-out parts pooled would be minutes,
# and validation (resynthesis, F0 tracking) costs more per second than a training step.
_VAL_SECONDS = 60.0


def prior_split(
    recordings: Sequence[Recording], settings: TrainSettings
) -> tuple[list[Recording], list[Recording]]:
    """``(train, validation)`` of the prior: each species split as its own training will split it.

    A species' validation recordings (or stretches) stay out of the prior, so the species
    model's validation scores remain on audio no model saw. The prior validates on up to
    ``_VAL_SECONDS`` of those held-out parts, taken from each species in turn.
    """
    by_species: dict[str, list[Recording]] = {}
    for rec in recordings:
        by_species.setdefault(rec.species, []).append(rec)
    train, held_out = [], []
    for species in sorted(by_species):
        head, tail = split_by_recordist(by_species[species], settings.val_fraction, settings.seed)
        train.extend(head)
        held_out.append(tail)
    val: list[Recording] = []
    for rec in itertools.chain.from_iterable(itertools.zip_longest(*held_out)):
        if rec is not None and sum(r.seconds for r in val) < _VAL_SECONDS:
            val.append(rec)
    return train, val


def train_prior(
    recordings: Sequence[Recording],
    output_dir: str | Path,
    settings: TrainSettings | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = tqdm.write,
    extra_info: dict[str, Any] | None = None,
) -> Path:
    """Train the shared prior on ``recordings`` of several species into ``output_dir``.

    The same architecture and training loop as a species model (``settings``, without its
    ``prior``), on every species' training side (:func:`prior_split`). ``config.json`` lists
    the species under ``"prior_of"``. Returns ``output_dir``.

    Raises:
        ValueError: ``recordings`` hold fewer than two species.
        CollapseError: training collapsed (``output_dir`` is then marked failed).
    """
    settings = replace(settings or TrainSettings(), prior=None, prior_freeze="none")
    species = sorted({r.species for r in recordings})
    if len(species) < 2:
        raise ValueError(
            f"recordings: a shared prior needs at least two species, got {species or 'none'}"
        )
    train, val = prior_split(recordings, settings)
    # One pooled "species"; names keep their species so the contour bank stays readable.
    pooled = {
        id(r): replace(r, species=PRIOR_SPECIES, name=f"{r.species}/{r.name}")
        for r in (*train, *val)
    }
    info = {"prior_of": species, **(extra_info or {})}
    train_species(
        list(pooled.values()),
        output_dir,
        settings,
        resume=resume,
        progress=progress,
        log=log,
        extra_info=info,
        split=([pooled[id(r)] for r in train], [pooled[id(r)] for r in val]),
    )
    return Path(output_dir)
