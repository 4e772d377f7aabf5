"""A species' contour bank: the real F0/loudness stretches that generation starts from."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import ACTIVE_RANGE_DB
from ..io import atomic_write
from .residual import RESIDUAL_VERSION

__all__ = ["ContourBank", "Segment", "find_segments"]


@dataclass(frozen=True)
class Segment:
    """One active stretch of a recording, at the control frame rate (all ``[frames]`` float32).

    ``residual_db`` ``[frames, bands]``, when measured, is the stretch's recorded residual
    (:func:`.residual.measure_residual`): the noise generation renders along with it.
    """

    f0_hz: np.ndarray
    loudness_db: np.ndarray
    confidence: np.ndarray
    recording: str
    residual_db: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.f0_hz.shape[0])


def find_segments(
    loudness_db: np.ndarray,
    frame_rate: float,
    range_db: float = ACTIVE_RANGE_DB,
    min_seconds: float = 0.03,
    merge_gap_seconds: float = 0.15,
    pad_seconds: float = 0.02,
    active: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """Active stretches ``[(start, end), ...]`` (end exclusive) of a ``[frames]`` loudness curve.

    A frame is active within ``range_db`` of the recording's loudest frame; gaps shorter than
    ``merge_gap_seconds`` are bridged so a song's syllables stay together (the jitter splits them
    again), stretches shorter than ``min_seconds`` are dropped as clicks, and each stretch is
    padded so attacks and decays are kept. ``active`` ``[frames]`` (bool), when given, replaces
    the level test: frames where the bird is heard over the background
    (``activity.bird_activity``), which a level range alone cannot tell on a noisy recording.
    """
    loudness_db = np.asarray(loudness_db)
    if loudness_db.size == 0:
        return []
    if active is None:
        active = loudness_db >= loudness_db.max() - range_db
    elif np.shape(active) != loudness_db.shape:
        raise ValueError(
            f"find_segments: active must match loudness_db {loudness_db.shape}, "
            f"got {np.shape(active)}"
        )
    active = np.asarray(active, bool)
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    merged: list[list[int]] = []
    gap = int(round(merge_gap_seconds * frame_rate))
    for start, end in zip(starts, ends, strict=True):
        if merged and start - merged[-1][1] <= gap:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    pad = int(round(pad_seconds * frame_rate))
    shortest = int(round(min_seconds * frame_rate))
    n = loudness_db.size
    return [(max(0, s - pad), min(n, e + pad)) for s, e in merged if e - s >= max(1, shortest)]


class ContourBank:
    """Segments of one species plus the grid they live on.

    Saved as one ``.npz`` (concatenated arrays, offsets, recording names; no pickle).
    """

    def __init__(self, segments: Sequence[Segment], sample_rate: int, hop_length: int) -> None:
        if not segments:
            raise ValueError("a contour bank needs at least one segment")
        self.segments = list(segments)
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        # The segments end to end (see `concatenated`), and whether it is a copy of them (built
        # on demand) rather than the arrays they are views of (as loaded from a file).
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._table_is_copy = False
        #: Whether :meth:`load` dropped residuals of an older kind (``residual.RESIDUAL_VERSION``)
        #: from the file: the model needs retraining to get recorded noise back.
        self.stale_residual = False

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def recordings(self) -> list[str]:
        return sorted({s.recording for s in self.segments})

    def __len__(self) -> int:
        return len(self.segments)

    def __repr__(self) -> str:
        return (
            f"ContourBank({len(self)} segments, {self.total_seconds():.2f} s from "
            f"{len(self.recordings)} recordings, sample_rate={self.sample_rate}, "
            f"hop_length={self.hop_length})"
        )

    def total_seconds(self) -> float:
        return sum(len(s) for s in self.segments) / self.frame_rate

    @property
    def has_residual(self) -> bool:
        """Whether every segment carries its recorded residual (models trained before it was
        measured have none)."""
        return all(s.residual_db is not None for s in self.segments)

    def concatenated(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """F0, loudness ``[total_frames]`` and residual ``[total_frames, bands]`` (None without
        one) of all segments end to end: what a ``ComposedSong.source`` position indexes.

        A loaded bank's segments are views of these arrays (no copy); otherwise they are
        concatenated once and kept.
        """
        if self._table is None:
            residual = None
            if self.has_residual:
                residual = np.concatenate([s.residual_db for s in self.segments])
            self._table = (
                np.concatenate([s.f0_hz for s in self.segments]),
                np.concatenate([s.loudness_db for s in self.segments]),
                residual,
            )
            self._table_is_copy = True
        return self._table

    @property
    def nbytes(self) -> int:
        """Memory held by the segments' arrays (and a concatenated copy of them, if made)."""
        total = 0
        for s in self.segments:
            total += s.f0_hz.nbytes + s.loudness_db.nbytes + s.confidence.nbytes
            total += 0 if s.residual_db is None else s.residual_db.nbytes
        if self._table_is_copy:
            total += sum(a.nbytes for a in self._table if a is not None)
        return total

    def save(self, path: str | Path) -> None:
        offsets = np.cumsum([0] + [len(s) for s in self.segments])
        cat = lambda name: np.concatenate([getattr(s, name) for s in self.segments])  # noqa: E731
        arrays = {
            "f0_hz": cat("f0_hz").astype(np.float32),
            "loudness_db": cat("loudness_db").astype(np.float32),
            "confidence": cat("confidence").astype(np.float32),
            "offsets": offsets.astype(np.int64),
            "recordings": np.array([s.recording for s in self.segments], dtype=np.str_),
            "grid": np.array([self.sample_rate, self.hop_length], dtype=np.int64),
        }
        if self.has_residual:
            # Half precision: 0.03 dB steps around 0 dB, 0.06 dB at the -120 dB floor; it
            # halves what is usually the largest file of a model directory.
            arrays["residual_db"] = cat("residual_db").astype(np.float16)
            arrays["residual_version"] = np.array(RESIDUAL_VERSION, dtype=np.int64)
        atomic_write(path, lambda tmp: _save_npz(tmp, arrays))

    @classmethod
    def load(cls, path: str | Path) -> ContourBank:
        """A saved bank. Residuals of another ``residual.RESIDUAL_VERSION`` than this one's
        (files without the field hold version 1: measured against the dry harmonics) are left
        out, and ``stale_residual`` says so."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                offsets, names = data["offsets"], data["recordings"]
                f0, loud, conf = data["f0_hz"], data["loudness_db"], data["confidence"]
                sample_rate, hop_length = (int(v) for v in data["grid"])
                residual = data["residual_db"] if "residual_db" in data.files else None
                version = int(data["residual_version"]) if "residual_version" in data.files else 1
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path}: not a readable contour bank ({error})") from error
        if (
            offsets[-1] != f0.shape[0]
            or len(names) != len(offsets) - 1
            or (residual is not None and (residual.ndim != 2 or len(residual) != len(f0)))
        ):
            raise ValueError(f"{path}: contour bank arrays are inconsistent (truncated file?)")
        stale = residual is not None and version != RESIDUAL_VERSION
        if stale:
            residual = None
        segments = [
            Segment(f0[a:b], loud[a:b], conf[a:b], str(name), _rows(residual, a, b))
            for a, b, name in zip(offsets[:-1], offsets[1:], names, strict=True)
        ]
        bank = cls(segments, sample_rate, hop_length)
        bank._table = (f0, loud, residual)
        bank.stale_residual = stale
        return bank


def _rows(array: np.ndarray | None, start: int, end: int) -> np.ndarray | None:
    return None if array is None else array[start:end]


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
