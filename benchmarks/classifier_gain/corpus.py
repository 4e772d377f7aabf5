"""The benchmark's data: every clip of a data root decoded once at 32 kHz, with its recordist
and where it was recorded.

``<root>/<species>/<clip>`` folders and an optional ``manifest.csv`` (path, recordist, latitude
and longitude), as ``ddsp_augment.training.preprocess.read_manifest`` and ``read_locations``
read it.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ddsp_augment.constants import SAMPLE_RATE
from ddsp_augment.io import AudioError, load_audio, scan_folder
from ddsp_augment.training.preprocess import Location, read_locations, read_manifest

from .classifiers import ClipDataset
from .splits import normalise_recordist, recordist_groups

__all__ = ["Corpus", "check_recordist_overlap", "load_corpus"]


@dataclass
class Corpus:
    """Every clip of a data root, decoded once at 32 kHz.

    ``labels[i]`` indexes ``classes``; ``groups[i]`` is the recordist group
    (``splits.recordist_groups``; a file without a manifest row is its own group);
    ``locations[i]`` is where clip ``i`` was recorded (None: the manifest does not say), which a
    segment screen of the species models uses.
    """

    root: Path
    names: list[str]  # path relative to root, posix
    classes: list[str]
    labels: np.ndarray  # int64 [n]
    recordists: list[str]
    locations: list[Location | None]
    groups: np.ndarray  # int64 [n]
    waveforms: list[torch.Tensor]  # [1, time] float32 at SAMPLE_RATE
    fingerprint: str  # hash of file names, sizes and the manifest
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def dataset(self, indices: Sequence[int]) -> ClipDataset:
        return ClipDataset([self.waveforms[i] for i in indices], self.labels[indices], SAMPLE_RATE)


def load_corpus(
    root: Path, classes: Sequence[str] | None = None, species: Sequence[str] | None = None
) -> Corpus:
    """Decode ``root/<species>/*`` once at 32 kHz.

    Args:
        root: Data folder.
        classes: Fixed class list (for an external test set: labels follow the training classes,
            clips of other species are skipped with a warning).
        species: Keep only these species.
    """
    recordist_of, location_of = read_manifest(root), read_locations(root)
    entries = [(p, s) for p, s in scan_folder(root) if species is None or s in species]
    if classes is not None:
        unknown = sorted({s for _, s in entries if s not in classes})
        if unknown:
            warnings.warn(
                f"{root}: species not in the training data, skipped: {unknown}", stacklevel=2
            )
        entries = [(p, s) for p, s in entries if s in classes]
    if not entries:
        raise SystemExit(f"{root}: no audio files in <species>/ folders")
    digest = hashlib.sha1()
    names, labels_by_name, recordists, locations, waveforms = [], [], [], [], []
    skipped = []
    clipped = 0
    for path, name in tqdm(entries, desc=f"decoding {root.name}", unit="clip"):
        relative = path.relative_to(root).as_posix()
        digest.update(f"{relative}:{path.stat().st_size};".encode())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                audio, _ = load_audio(path, SAMPLE_RATE)
            except AudioError as error:
                skipped.append((relative, error.reason))
                continue
        clipped += any("clipped" in str(w.message) for w in caught)
        names.append(relative)
        labels_by_name.append(name)
        recordists.append(recordist_of.get(relative, ""))
        locations.append(location_of.get(relative))
        waveforms.append(torch.from_numpy(audio)[None])
    if skipped:
        warnings.warn(
            f"{root}: skipped {len(skipped)} unreadable clip(s): {skipped[:3]}", stacklevel=2
        )
    if clipped:
        print(f"{root.name}: {clipped} clip(s) have > 0.1 % clipped samples (kept)")
    if (root / "manifest.csv").is_file():
        digest.update((root / "manifest.csv").read_bytes())
    class_list = list(classes) if classes is not None else sorted(set(labels_by_name))
    return Corpus(
        root=root,
        names=names,
        classes=class_list,
        labels=np.array([class_list.index(s) for s in labels_by_name], np.int64),
        recordists=recordists,
        locations=locations,
        groups=recordist_groups(recordists),
        waveforms=waveforms,
        fingerprint=digest.hexdigest()[:16],
        skipped=skipped,
    )


def check_recordist_overlap(corpus: Corpus, test_corpus: Corpus) -> None:
    """Warn when a recordist of the training data also recorded clips of the external test set:
    their shared channel and site would make the scores optimistic."""
    train_people = {normalise_recordist(r) for r in corpus.recordists if r.strip()}
    test_people = {normalise_recordist(r) for r in test_corpus.recordists if r.strip()}
    shared = sorted(train_people & test_people)
    if shared:
        warnings.warn(
            f"{len(shared)} recordist(s) appear in both --data_root and --test_root "
            f"(scores may be optimistic): {shared[:5]}",
            stacklevel=2,
        )
