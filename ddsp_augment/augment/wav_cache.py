"""`SongCache`: synthetic songs kept as float wav files, checked on every read.

A file in the cache may be truncated (a full disk, a copy cut short), hold another layout (a
stereo file put there by hand) or belong to other settings; reading it blindly would hand a
training loop an item of the wrong shape. :meth:`SongCache.get` returns a song only when the file
has exactly the expected length, one channel, the expected rate and finite samples; the caller
renders the song again otherwise and :meth:`SongCache.put` replaces the file atomically.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf

from ..io import atomic_write

__all__ = ["SongCache"]


class SongCache:
    """Mono float32 songs in ``directory``, one wav file per name.

    Args:
        directory: Where the files live (created on the first write).
        settings: Everything that shapes a song besides its name (models, scene, jitter...);
            its digest is part of every file name, so other settings never read these files.
    """

    def __init__(self, directory: str | Path, settings: str) -> None:
        self.directory = Path(directory)
        self._digest = hashlib.sha1(settings.encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"SongCache({str(self.directory)!r}, digest={self._digest!r})"

    def path(self, name: str) -> Path:
        return self.directory / f"{name}-{self._digest}.wav"

    def get(self, name: str, n_samples: int, sample_rate: int) -> np.ndarray | None:
        """The cached song ``[n_samples]`` float32, or None if absent or not as expected."""
        path = self.path(name)
        try:
            info = sf.info(str(path))
            if (info.frames, info.channels, info.samplerate) != (n_samples, 1, sample_rate):
                return None
            song = sf.read(str(path), dtype="float32", always_2d=True)[0][:, 0]
        except (OSError, RuntimeError, sf.LibsndfileError):
            return None  # absent, unreadable or not audio: render it again
        if song.shape[0] != n_samples or not np.isfinite(song).all():
            return None
        return song

    def put(self, name: str, song: np.ndarray, sample_rate: int) -> None:
        """Write ``song`` ``[samples]`` as 32-bit float wav (bit-exact), atomically."""
        atomic_write(
            self.path(name),
            lambda tmp: sf.write(str(tmp), song, sample_rate, subtype="FLOAT", format="WAV"),
        )
