"""Audio I/O with soundfile: load, validate, mix down, resample, scan folders, write atomically.

Every problem with a user's file raises :class:`AudioError`, whose message starts with the path.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioError",
    "PathError",
    "atomic_write",
    "load_audio",
    "load_folder",
    "read_json",
    "resample",
    "save_audio",
    "scan_folder",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


class PathError(ValueError):
    """A user file that cannot be used: ``path``, ``reason``, ``str(error) == "<path>: <reason>"``.

    Base of :class:`AudioError`, ``model.storage.ModelFileError`` and
    ``sampling.generate.SidecarError``: catch it for any unusable input file.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AudioError(PathError):
    """A recording that cannot be used (missing, unreadable, empty, NaN, silent)."""


def read_json(
    path: str | Path,
    error: type[PathError] = PathError,
    missing: str = "missing",
    file_format: tuple[str, int, str] | None = None,
) -> dict[str, Any]:
    """A JSON object from ``path``; ``error(path, reason)`` when the file is ``missing`` (that
    reason), not valid JSON, not an object, or, with ``file_format = (name, version, noun)``,
    when its ``"format"`` is not ``name`` or its ``"format_version"`` not ``version``."""
    path = Path(path)
    if not path.is_file():
        raise error(path, missing)
    try:
        payload = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as caught:
        raise error(path, f"not valid JSON ({caught})") from caught
    if not isinstance(payload, dict):
        raise error(path, "not a JSON object")
    if file_format is not None:
        name, version, noun = file_format
        if payload.get("format") != name:
            raise error(path, f"not a {name} {noun}")
        if payload.get("format_version") != version:
            found = payload.get("format_version")
            raise error(path, f"{noun} version {found!r}; this ddsp-augment reads {version}")
    return payload


def resample(audio: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample ``(..., time)`` float audio (soxr, high quality)."""
    if orig_sr == new_sr:
        return np.asarray(audio, np.float32)
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 1:
        return soxr.resample(audio, orig_sr, new_sr).astype(np.float32)
    flat = audio.reshape(-1, audio.shape[-1])
    # soxr wants [time, channels]
    out = soxr.resample(flat.T, orig_sr, new_sr).T
    return np.ascontiguousarray(out.reshape(*audio.shape[:-1], -1), np.float32)


def judged_clip(audio: np.ndarray, sample_rate: int, rate: int) -> np.ndarray:
    """A clip to score, ``[samples]`` float32 at ``rate`` Hz; refuses anything but non-empty mono.

    Judges (BirdNET, the real-clip classifier) score one mono clip at their own rate.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"a judged clip must be non-empty mono [samples], got {audio.shape}")
    return resample(audio, sample_rate, rate) if sample_rate != rate else audio


def _clipped_fraction(data: np.ndarray) -> float:
    """Share of ``[time, channels]`` samples that look clipped (0.0 below 0.01 %).

    A clipped waveform has flat tops: runs of identical samples at (near) full scale. Counting
    only runs of 3+ keeps a clean full-scale sine (whose peak samples differ) from being flagged;
    samples beyond ±1 (float files, decoder overshoot) are clipped on any conversion, so count.
    A handful of such samples in a long recording (an MP3 overshooting on one transient) is
    harmless and not reported.
    """
    loud = np.abs(data[1:-1]) >= 0.99
    flat = loud & (data[1:-1] == data[:-2]) & (data[1:-1] == data[2:])
    n_clipped = int(np.count_nonzero(flat)) + int(np.count_nonzero(np.abs(data) > 1.0))
    return n_clipped / data.size if n_clipped >= max(3, 1e-4 * data.size) else 0.0


def load_audio(
    path: str | Path, sample_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Read a recording as float32.

    Args:
        path: wav, flac, ogg or mp3 file.
        sample_rate: Resample to this rate (None keeps the file's rate).
        mono: Mix channels down to ``[time]``; otherwise return ``[channels, time]``.

    Returns:
        ``(audio, sample_rate)``.

    Raises:
        AudioError: missing, unreadable or not audio, empty, NaN/inf samples, or all silent.
        TypeError, ValueError: ``sample_rate`` is not a positive int.
    """
    if sample_rate is not None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
            raise TypeError(f"sample_rate must be an int or None, got {sample_rate!r}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioError(path, f"unreadable or not audio ({error})") from error
    if data.shape[0] == 0:
        raise AudioError(path, "empty (zero samples)")
    if not np.all(np.isfinite(data)):
        raise AudioError(path, "contains NaN or infinite samples")
    peak = float(np.max(np.abs(data)))
    if peak == 0.0:
        raise AudioError(path, "all samples are zero (silent)")
    clipped = _clipped_fraction(data)
    if clipped > 0.0:
        warnings.warn(f"{path}: clipped ({clipped:.2%} of samples at full scale)", stacklevel=2)
    audio = data.mean(axis=1) if mono else data.T
    audio = np.ascontiguousarray(audio, np.float32)
    if sample_rate is not None and sample_rate != sr:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, int(sr)


def _file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` gives a new file (0644 usually)."""
    try:
        # Reading the umask from /proc leaves it untouched; os.umask() must set it to read it,
        # which races with threads creating files meanwhile.
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | Path, write_fn: Callable[[Path], None]) -> None:
    """Call ``write_fn(tmp)`` on a temporary file beside ``path``, then rename it into place.

    A crash mid-write leaves the old file (or none), never a truncated one. The temporary name
    ends with ``path``'s suffix, so writers that pick the format from the extension (or append
    one, like ``np.savez``) write where they are told. The result gets the mode a plain
    ``open()`` would give (0644 under the usual umask), whatever mode ``write_fn`` left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_fn(tmp)
        # After write_fn: mkstemp creates the file owner-only, and some writers (safetensors'
        # save_file) replace the file with a new owner-only one.
        os.chmod(tmp, _file_mode())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write ``[time]`` or ``[channels, time]`` float audio as 16-bit PCM wav, atomically.

    Samples are clipped to [-1, 1] (16-bit PCM cannot hold more).
    """
    audio = np.asarray(audio, np.float32)
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"{path}: refusing to write NaN or infinite samples")
    audio = np.clip(audio, -1.0, 1.0)
    frames = audio.T if audio.ndim == 2 else audio
    atomic_write(
        path, lambda tmp: sf.write(str(tmp), frames, sample_rate, subtype="PCM_16", format="WAV")
    )


def scan_folder(root: str | Path) -> list[tuple[Path, str]]:
    """``<root>/<species>/*.{wav,flac,ogg,mp3}`` → sorted ``[(path, species), ...]``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    return [
        (path, species_dir.name)
        for species_dir in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(species_dir.iterdir())
        if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS
    ]


def load_folder(
    root: str | Path, sample_rate: int, on_error: Literal["skip", "raise"] = "skip"
) -> tuple[list[tuple[Path, str, np.ndarray]], list[tuple[Path, str]]]:
    """Load every recording of :func:`scan_folder` at ``sample_rate``.

    Returns ``(loaded, skipped)``: ``[(path, species, audio)]`` and ``[(path, reason)]``. With
    ``on_error="raise"`` the first bad file raises; with ``"skip"`` one warning gives the count.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    loaded, skipped = [], []
    for path, species in scan_folder(root):
        try:
            audio, _ = load_audio(path, sample_rate)
        except AudioError as error:
            if on_error == "raise":
                raise
            skipped.append((path, error.reason))
            continue
        loaded.append((path, species, audio))
    if skipped:
        warnings.warn(
            f"{root}: skipped {len(skipped)} unusable file(s): "
            + "; ".join(f"{p.name} ({r})" for p, r in skipped[:5]),
            stacklevel=2,
        )
    return loaded, skipped
