"""`preprocess`: recordings → per-recording feature files (F0, voicing, loudness, log-mel).

Layout: ``<data_path>/<species>/<file>`` → ``<output_path>/<species>/<stem>.npz`` plus
``<output_path>/summary.json``. Each output stores the audio at the model rate too, so training
reads one file per recording and never decodes MP3 again.
"""

from __future__ import annotations

import csv
import json
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ..constants import F0_MAX_HZ, F0_MIN_HZ, HOP_LENGTH, SAMPLE_RATE, VOICED_THRESHOLD
from ..dsp.spectral import log_mel
from ..features.activity import bird_activity
from ..features.background import FLOOR_FFT_SIZE, noise_floor
from ..features.contours import find_segments
from ..features.loudness import loudness_db
from ..features.pitch import F0Method, estimate_f0
from ..io import AudioError, PathError, atomic_write, load_audio, scan_folder

__all__ = [
    "FORMAT_VERSION",
    "Location",
    "PreprocessSettings",
    "Recording",
    "Screened",
    "SegmentScreen",
    "analyse_audio",
    "load_processed",
    "preprocess_file",
    "preprocess_folder",
    "read_locations",
    "read_manifest",
    "screen_recording",
]

FORMAT_VERSION = 2  # 2: loudness and segments of the bird above the noise floor
_HELD_VOICED = 0.5  # voiced on more than half the frames ...
_HELD_ACTIVE = 0.1  # ... yet under a tenth of them heard above the floor: a held sound


@dataclass(frozen=True)
class PreprocessSettings:
    sample_rate: int = SAMPLE_RATE
    hop_length: int = HOP_LENGTH
    f0_method: F0Method = "numba"
    f_min: float = F0_MIN_HZ
    f_max: float = F0_MAX_HZ

    def __post_init__(self) -> None:
        if self.f0_method not in ("numba", "crepe"):
            raise ValueError(f"f0_method must be 'numba' or 'crepe', got {self.f0_method!r}")
        if not 0 < self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 < f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}"
            )


#: Where a recording was made: (latitude, longitude) in degrees.
Location = tuple[float, float]


class SegmentScreen(Protocol):
    """Names another species heard in an active stretch of a recording, or None.

    Called as ``screen(audio [samples], sample_rate, species, location)``, ``location`` being
    where the recording was made when known (``manifest.csv``'s latitude and longitude, see
    :func:`read_locations`), else None; ``name`` identifies the screen (and its settings) in the
    feature files, so a changed screen re-analyses them. The library's own is
    ``evaluation.birdnet.BirdNETScreen``.
    """

    @property
    def name(self) -> str: ...

    def __call__(
        self, audio: np.ndarray, sample_rate: int, species: str, location: Location | None
    ) -> str | None: ...


class Screened(NamedTuple):
    """An active stretch (frames ``[start, end)``) left out because ``heard`` sang in it."""

    start: int
    end: int
    heard: str


@dataclass
class Recording:
    """One preprocessed recording (arrays at the control frame rate unless stated)."""

    name: str
    species: str
    recordist: str
    audio: np.ndarray  # [samples] at sample_rate
    sample_rate: int
    hop_length: int
    f0_hz: np.ndarray
    confidence: np.ndarray
    loudness_db: np.ndarray  # A-weighted loudness of the bird above the background (activity)
    segments: np.ndarray  # [n, 2] frame ranges, end exclusive
    background: np.ndarray  # background magnitude per bin (features.background.noise_floor)
    screened: tuple[Screened, ...] = ()  # stretches a SegmentScreen left out of ``segments``
    # Where F0 was tracked and the bird's activity measured, Hz (PreprocessSettings.f_min,
    # f_max): whatever measures this bird again (validation, resynthesis) measures it there.
    band: tuple[float, float] = (F0_MIN_HZ, F0_MAX_HZ)

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / self.sample_rate


# A manifest's columns as ours are named, and the names that mean the same in xeno-canto's API
# (lat, lng) and BirdCLEF's train_metadata.csv (filename, author, latitude, longitude), so that
# their metadata serves as it comes. Matched without regard to case.
_COLUMN_ALIASES = {
    "path": ("path", "filename"),
    "recordist": ("recordist", "author"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "longitude"),
}


def _manifest_rows(data_path: Path) -> tuple[Path, list[dict[str, str]]]:
    """``<data_path>/manifest.csv`` and its rows, keyed by lower-case column names with the
    aliases of ``_COLUMN_ALIASES`` under our names (a missing cell reads "")."""
    manifest = Path(data_path) / "manifest.csv"
    if not manifest.is_file():
        return manifest, []
    # utf-8-sig: a spreadsheet's CSV export starts with a byte-order mark.
    with open(manifest, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader, [])]
        for ours, aliases in _COLUMN_ALIASES.items():
            found = next((name for name in aliases if name in header), None)
            if found is not None and ours not in header:
                header[header.index(found)] = ours
        return manifest, [
            {name: values[i] if i < len(values) else "" for i, name in enumerate(header)}
            for values in reader
            if values
        ]


def read_manifest(data_path: Path) -> dict[str, str]:
    """``{relative path: recordist}`` from ``<data_path>/manifest.csv``; empty without one.

    The columns are ``path`` and ``recordist`` (BirdCLEF's ``filename`` and ``author`` serve
    too). Without a recordist per file, each file is its own group in validation and benchmark
    splits.
    """
    manifest, rows = _manifest_rows(data_path)
    if not rows:
        return {}
    if "path" not in rows[0] or "recordist" not in rows[0]:
        warnings.warn(
            f"{manifest}: no path/recordist columns; every file is its own group", stacklevel=2
        )
        return {}
    return {row["path"]: row["recordist"] for row in rows}


def read_locations(data_path: Path) -> dict[str, Location]:
    """``{relative path: (latitude, longitude)}`` from ``<data_path>/manifest.csv``'s ``path``
    column and a latitude (``lat`` or ``latitude``) and longitude (``lon``, ``lng`` or
    ``longitude``) column; empty without them. Rows with either left blank (xeno-canto hides
    some sites) are left out. A value that is not a number in range raises
    :class:`..io.PathError` naming the manifest and the row.
    """
    manifest, rows = _manifest_rows(data_path)
    if not rows or not {"path", "lat", "lon"} <= rows[0].keys():
        return {}
    locations = {}
    for line, row in enumerate(rows, start=2):  # the header is line 1
        text = (row["lat"].strip(), row["lon"].strip())
        if not all(text):
            continue
        try:
            latitude, longitude = float(text[0]), float(text[1])
        except ValueError:
            latitude = longitude = float("nan")
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise PathError(
                manifest,
                f"line {line} ({row['path']}): latitude, longitude {text[0]!r}, {text[1]!r} "
                "is not a latitude in [-90, 90] and a longitude in [-180, 180]",
            )
        locations[row["path"]] = (latitude, longitude)
    return locations


def preprocess_file(
    path: Path,
    species: str,
    recordist: str,
    settings: PreprocessSettings,
    screen: SegmentScreen | None = None,
    location: Location | None = None,
) -> Recording:
    """Analyse one recording file. Raises :class:`AudioError` naming the file on bad input."""
    audio, _ = load_audio(path, settings.sample_rate)
    return analyse_audio(audio, path, species, recordist, settings, screen, location)


def analyse_audio(
    audio: np.ndarray,
    path: str | Path,
    species: str,
    recordist: str,
    settings: PreprocessSettings | None = None,
    screen: SegmentScreen | None = None,
    location: Location | None = None,
) -> Recording:
    """Analyse mono ``audio [samples]`` already at ``settings.sample_rate``.

    ``path`` names the recording in errors and in the model's training summary. ``screen``
    leaves out the active stretches it hears another species in (:func:`screen_recording`),
    told the recording's ``location`` when known.
    """
    settings = settings or PreprocessSettings()
    path = Path(path)
    sr, hop = settings.sample_rate, settings.hop_length
    if audio.shape[0] < 4 * FLOOR_FFT_SIZE:
        raise AudioError(path, f"too short ({audio.shape[0] / sr:.3f} s) to analyse")
    f0, confidence = estimate_f0(
        audio,
        sr,
        hop_length=hop,
        f_min=settings.f_min,
        f_max=settings.f_max,
        method=settings.f0_method,
    )
    # The model learns from the bird, not the background: loudness and activity over the floor.
    background = noise_floor(audio)
    bird = bird_activity(audio, sr, background, confidence, hop, settings.f_min, settings.f_max)
    loud, active = bird.loudness_db, bird.active
    voiced = confidence >= VOICED_THRESHOLD
    if voiced.mean() > _HELD_VOICED and (active & voiced).sum() < _HELD_ACTIVE * voiced.sum():
        # A sound held through most of the recording (a reeling warbler, a test tone) is part
        # of its measured floor, so it seems to vanish: judge such a recording by level instead.
        loud, active = loudness_db(audio, sr, hop_length=hop), None
    segments = find_segments(loud, sr / hop, active=active)
    segments = np.array(segments, dtype=np.int64).reshape(-1, 2)
    if segments.shape[0] == 0:
        raise AudioError(path, "no bird heard above the background")
    rec = Recording(
        name=path.stem,
        species=species,
        recordist=recordist,
        audio=audio,
        sample_rate=sr,
        hop_length=hop,
        f0_hz=f0,
        confidence=confidence,
        loudness_db=loud,
        segments=segments,
        background=background,
        band=(settings.f_min, settings.f_max),
    )
    return rec if screen is None else screen_recording(rec, screen, path, location)


def screen_recording(
    rec: Recording, screen: SegmentScreen, path: str | Path, location: Location | None = None
) -> Recording:
    """``rec`` without the active stretches in which ``screen`` hears another species
    (``location``: where ``rec`` was made, None if unknown).

    Training crops centre on the kept segments (a crop's edge may still reach into a left-out
    stretch) and the contour bank holds only them, so songs are composed from the species'
    own stretches alone. The left-out stretches are listed in ``screened``. Raises
    :class:`AudioError` naming ``path`` when no stretch is left.
    """
    hop = rec.hop_length
    kept, screened = [], list(rec.screened)
    for start, end in rec.segments:
        heard = screen(rec.audio[start * hop : end * hop], rec.sample_rate, rec.species, location)
        if heard is None:
            kept.append((start, end))
        else:
            screened.append(Screened(int(start), int(end), heard))
    if not kept:
        heard = sorted({s.heard for s in screened})
        raise AudioError(
            path, f"every active stretch is heard as another species: {', '.join(heard)}"
        )
    return replace(rec, segments=np.array(kept, np.int64).reshape(-1, 2), screened=tuple(screened))


def _output_path(output_path: Path, species: str, source: Path) -> Path:
    return output_path / species / f"{source.stem}.npz"


def _save_recording(
    out: Path, rec: Recording, source: Path, mel: np.ndarray, screen_name: str
) -> None:
    stat = source.stat()
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
        "audio": rec.audio.astype(np.float32),
        "grid": np.array([rec.sample_rate, rec.hop_length], np.int64),
        "f0_hz": rec.f0_hz.astype(np.float32),
        "confidence": rec.confidence.astype(np.float32),
        "loudness_db": rec.loudness_db.astype(np.float32),
        "log_mel": mel.astype(np.float32),
        "segments": rec.segments,
        "meta": np.array([rec.name, rec.species, rec.recordist, str(source)]),
        "source_stamp": np.array([stat.st_size, stat.st_mtime_ns], np.int64),
        "background": rec.background,
        "screen": np.array(screen_name),
        "screened_segments": np.array([s[:2] for s in rec.screened], np.int64).reshape(-1, 2),
        "screened_heard": np.array([s.heard for s in rec.screened], dtype=str),
        "band": np.array(rec.band, np.float64),
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, write)


def load_processed(path: str | Path) -> Recording:
    """Read a file written by :func:`preprocess_folder`; a bad file raises naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format_version"])
            if version != FORMAT_VERSION:
                raise ValueError(f"format version {version}, expected {FORMAT_VERSION}")
            name, species, recordist, _ = (str(v) for v in data["meta"])
            sample_rate, hop_length = (int(v) for v in data["grid"])
            return Recording(
                name=name,
                species=species,
                recordist=recordist,
                audio=data["audio"],
                sample_rate=sample_rate,
                hop_length=hop_length,
                f0_hz=data["f0_hz"],
                confidence=data["confidence"],
                loudness_db=data["loudness_db"],
                segments=data["segments"],
                background=data["background"],
                # Files written before screening existed hold no screened stretches.
                screened=tuple(
                    Screened(int(a), int(b), str(heard))
                    for (a, b), heard in zip(
                        data.get("screened_segments", np.zeros((0, 2), np.int64)),
                        data.get("screened_heard", np.array([], dtype=str)),
                        strict=True,
                    )
                ),
                band=_band(data),
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable preprocessed recording ({error})") from error


def _band(data) -> tuple[float, float]:
    """A feature file's analysis band; files written before it was stored used the defaults."""
    if "band" not in data:
        return (F0_MIN_HZ, F0_MAX_HZ)
    low, high = (float(v) for v in data["band"])
    return (low, high)


def _screen_name(screen: SegmentScreen | None, location: Location | None) -> str:
    """What a feature file was screened with: the screen and the recording's location (a moved
    recording is screened again)."""
    if screen is None:
        return ""
    return screen.name if location is None else f"{screen.name}|at {location[0]:g},{location[1]:g}"


def _is_up_to_date(out: Path, source: Path, settings: PreprocessSettings, screen_name: str) -> bool:
    if not out.is_file():
        return False
    try:
        with np.load(out, allow_pickle=False) as data:
            stat = source.stat()
            return (
                int(data["format_version"]) == FORMAT_VERSION
                and list(data["source_stamp"]) == [stat.st_size, stat.st_mtime_ns]
                and list(data["grid"]) == [settings.sample_rate, settings.hop_length]
                and str(data.get("screen", "")) == screen_name
                and _band(data) == (settings.f_min, settings.f_max)
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return False


def _process_one(
    source: Path,
    species: str,
    recordist: str,
    output_path: Path,
    settings: PreprocessSettings,
    screen: SegmentScreen | None,
    location: Location | None,
) -> dict:
    out = _output_path(output_path, species, source)
    screen_name = _screen_name(screen, location)
    if _is_up_to_date(out, source, settings, screen_name):
        rec = load_processed(out)
        status = "cached"
    else:
        try:
            rec = preprocess_file(source, species, recordist, settings, screen, location)
        except AudioError as error:
            return {
                "species": species,
                "file": str(source),
                "status": "skipped",
                "reason": str(error),
            }
        mel = log_mel(rec.audio, rec.sample_rate, hop_length=rec.hop_length * 4)
        _save_recording(out, rec, source, mel, screen_name)
        status = "done"
    voiced = np.zeros(rec.f0_hz.shape[0], bool)
    for start, end in rec.segments:
        voiced[start:end] = rec.confidence[start:end] >= VOICED_THRESHOLD
    return {
        "species": species,
        "file": str(source),
        "status": status,
        "seconds": rec.seconds,
        "voiced_seconds": float(voiced.sum() * rec.hop_length / rec.sample_rate),
        "screened": [
            {
                "file": str(source),
                "start_s": round(start * rec.hop_length / rec.sample_rate, 3),
                "end_s": round(end * rec.hop_length / rec.sample_rate, 3),
                "heard": heard,
            }
            for start, end, heard in rec.screened
        ],
    }


def preprocess_folder(
    data_path: str | Path,
    output_path: str | Path,
    settings: PreprocessSettings | None = None,
    jobs: int = 1,
    species: Iterable[str] | None = None,
    progress: bool = True,
    screen: SegmentScreen | None = None,
) -> dict[str, dict]:
    """Preprocess ``<data_path>/<species>/*`` into ``output_path``; returns the per-species summary.

    Bad files are skipped with a warning and listed with their reason in the summary; outputs
    whose source is unchanged (and analysed with the same ``screen``) are reused. ``screen``
    leaves out active stretches in which it hears another species (:func:`screen_recording`);
    they are warned about, counted and listed in the summary (``screened``). Each recording's
    location, where ``manifest.csv`` gives one (:func:`read_locations`), is passed to the
    screen. It runs in the ``jobs`` workers, so it must pickle (``BirdNETScreen`` loads BirdNET
    once per worker).
    """
    settings = settings or PreprocessSettings()
    data_path, output_path = Path(data_path), Path(output_path)
    items = scan_folder(data_path)
    if species is not None:
        wanted = set(species)
        items = [(p, s) for p, s in items if s in wanted]
    if not items:
        raise FileNotFoundError(f"{data_path}: no audio files found under <species>/ folders")
    recordists = read_manifest(data_path)
    locations = read_locations(data_path) if screen is not None else {}
    jobs_iter = (
        delayed(_process_one)(
            path,
            sp,
            recordists.get(path.relative_to(data_path).as_posix(), path.stem),
            output_path,
            settings,
            screen,
            locations.get(path.relative_to(data_path).as_posix()),
        )
        for path, sp in items
    )
    results = list(
        tqdm(
            Parallel(n_jobs=jobs, return_as="generator")(jobs_iter),
            total=len(items),
            desc="preprocess",
            unit="file",
            disable=not progress,
        )
    )
    summary: dict[str, dict] = {}
    for r in results:
        s = summary.setdefault(
            r["species"],
            {
                "files": 0,
                "seconds": 0.0,
                "voiced_seconds": 0.0,
                "screened_seconds": 0.0,
                "skipped": [],
                "screened": [],
            },
        )
        if r["status"] == "skipped":
            s["skipped"].append({"file": r["file"], "reason": r["reason"]})
            continue
        s["files"] += 1
        s["seconds"] += r["seconds"]
        s["voiced_seconds"] += r["voiced_seconds"]
        s["screened"] += r["screened"]
        s["screened_seconds"] += sum(x["end_s"] - x["start_s"] for x in r["screened"])
    n_skipped = sum(len(s["skipped"]) for s in summary.values())
    if n_skipped:
        warnings.warn(
            f"preprocess skipped {n_skipped} of {len(items)} files (reasons in summary.json)",
            stacklevel=2,
        )
    n_screened = sum(len(s["screened"]) for s in summary.values())
    if n_screened:
        seconds = sum(s["screened_seconds"] for s in summary.values())
        warnings.warn(
            f"preprocess left out {n_screened} stretches ({seconds:.1f} s) in which the screen "
            "heard another species (listed in summary.json)",
            stacklevel=2,
        )
    output_path.mkdir(parents=True, exist_ok=True)
    payload = {"settings": settings.__dict__, "species": summary}
    atomic_write(
        output_path / "summary.json",
        lambda tmp: tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8"),
    )
    return summary
