"""`DDSPSynth`: re-sing a recording with a species model, or mix in a newly synthesised song."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from audiomentations.core.transforms_interface import BaseWaveformTransform
from numpy.typing import NDArray

from ..checks import Backend, NoiseSource, check_backend, check_noise
from ..constants import PEAK
from ..sampling.bank import SpeciesBank
from ..sampling.jitter import JitterConfig

__all__ = ["DDSPSynth", "as_float_audio"]

Mode = Literal["resynth", "mix"]
_MODES = get_args(Mode)
# Spawn-key word marking an unpickled copy's branch of its parent's seed (never a worker id).
_COPY = 2**32


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def as_float_audio(samples: np.ndarray) -> NDArray[np.float32]:
    """``samples`` as float32: float as is, integer PCM scaled to [-1, 1) as soundfile reads it
    (int16 / 2**15, int32 / 2**31, uint8 offset by 128), anything else refused."""
    samples = np.asarray(samples)
    kind = samples.dtype.kind
    if kind == "f":
        return samples.astype(np.float32, copy=False)
    if kind == "i":
        return (samples / np.float64(2 ** (8 * samples.dtype.itemsize - 1))).astype(np.float32)
    if samples.dtype == np.uint8:
        return ((samples - np.float64(128)) / 128).astype(np.float32)
    raise TypeError(
        f"samples must be float or signed integer PCM (or uint8) audio, got dtype {samples.dtype}"
    )


def _limit_peak(out: np.ndarray, samples: np.ndarray) -> NDArray[np.float32]:
    """Scale ``out`` down, all channels alike, to peak at most max(0.99, the input's peak).

    Matching a song to the input's RMS can push its peak past full scale: a bird's song has a
    higher crest factor than a noisy field recording.
    """
    limit = max(PEAK, float(np.max(np.abs(samples))))
    peak = float(np.max(np.abs(out)))
    if peak <= limit:
        return out.astype(np.float32)
    # The clip undoes a last float32 rounding up past the limit (one ulp at most).
    return np.clip(out * (limit / peak), -limit, limit).astype(np.float32)


class DDSPSynth(BaseWaveformTransform):
    """Bird-song augmentation with trained DDSP species models (see :class:`SpeciesBank`).

    ``mode="resynth"``: the input's F0 and loudness are tracked, jittered (pitch, vibrato; timing
    kept) and rendered by the ``species`` model, at the input's length and RMS level. Multichannel
    input ``(channels, time)`` is re-sung once from its mixdown (one synthesis, not one per
    channel) and the song copied to every channel at that channel's RMS. ``keep_background``
    adds noise shaped like the input's own background under the song (else the song is clean).
    Silent input is returned unchanged (as float32).

    ``mode="mix"``: a new song of ``species`` (None: a random bank species per call) with the
    input's length is added at a signal-to-song ratio drawn uniformly in [``min_snr_db``,
    ``max_snr_db``] dB (RMS over the whole clip, all channels, as in audiomentations'
    ``AddBackgroundNoise``); every channel gets the same song. Silent input gets nothing added.

    Input: ``(time)`` or ``(channels, time)`` float audio; integer PCM (int16, int32, uint8) is
    converted to float in [-1, 1] as soundfile does. The output is float32 of the input's shape,
    with its peak at most max(0.99, the input's peak) (a louder song is scaled down, in ``mix``
    mode with the input, so the song-to-input ratio holds). NaN or infinite samples raise
    ``ValueError`` in both modes, whether or not the transform is applied.

    Randomness: ``seed`` gives the transform its own generator (p-draws, species, SNR and the
    synthesis seed), independent of Python's and numpy's global RNGs; inside a DataLoader worker it
    is seeded with ``(seed, worker id)`` so workers differ. Without ``seed`` the generator is seeded
    from ``torch.initial_seed()`` (per worker in a DataLoader), on first use in each process.
    An unpickled (or deep-copied) transform draws from its own branch of its parent's seed, the
    k-th copy always the same one, so it never repeats the parent's draws.

    Args:
        bank: A :class:`SpeciesBank` or its directory (loaded lazily in each process after
            pickling).
        species: Bank species to synthesise. None: the bank's only species; in ``mix`` mode a
            random species of a multi-species bank.
        mode: ``"resynth"`` or ``"mix"`` (above).
        min_snr_db / max_snr_db: Input-to-song ratio range of ``mix`` mode, dB.
        keep_background: ``resynth`` only: keep a background like the input's under the song.
        max_pitch_cents: Pitch shift drawn in +-max_pitch_cents (cents).
        min_tempo / max_tempo, min_vibrato_cents / max_vibrato_cents, min_vibrato_hz /
            max_vibrato_hz: Ranges drawn uniformly per phrase (given in pairs). Every jitter
            range left None keeps the species' own default (see `JitterConfig`). The tempo
            applies to ``mix`` only (``resynth`` keeps the input's timing).
        backend: Synthesis backend ("numba" on CPU, or "torch").
        noise: What shapes the song's noise: "model" (the decoder's noise branch, the default
            for classifier training, as in ``DDSPBalancedDataset``) or "recorded" (the
            recorded residual; see ``SpeciesBank.sample``).
        p: Probability of applying the transform.
        seed: Seed of the transform's own generator.
    """

    supports_multichannel = True

    def __init__(
        self,
        bank: SpeciesBank | str | Path,
        species: str | None = None,
        mode: Mode = "resynth",
        min_snr_db: float = 0.0,
        max_snr_db: float = 20.0,
        keep_background: bool = False,
        max_pitch_cents: float | None = None,
        min_tempo: float | None = None,
        max_tempo: float | None = None,
        min_vibrato_cents: float | None = None,
        max_vibrato_cents: float | None = None,
        min_vibrato_hz: float | None = None,
        max_vibrato_hz: float | None = None,
        backend: Backend = "numba",
        noise: NoiseSource = "model",
        p: float = 0.5,
        seed: int | None = None,
    ) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        super().__init__(p)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        check_backend(backend)
        self.noise = check_noise(noise)
        if min_snr_db > max_snr_db:
            raise ValueError(f"min_snr_db ({min_snr_db}) must not exceed max_snr_db ({max_snr_db})")
        if seed is not None and (not isinstance(seed, int | np.integer) or seed < 0):
            raise ValueError(f"seed must be an int >= 0 or None, got {seed!r}")
        jitter: dict[str, Any] = {}
        if max_pitch_cents is not None:
            jitter["pitch_cents"] = max_pitch_cents
        for knob, low, high in (
            ("tempo", min_tempo, max_tempo),
            ("vibrato_cents", min_vibrato_cents, max_vibrato_cents),
            ("vibrato_hz", min_vibrato_hz, max_vibrato_hz),
        ):
            if (low is None) != (high is None):
                raise ValueError(f"min_{knob} and max_{knob} must be given together, or neither")
            if low is not None and not low <= high:
                raise ValueError(f"min_{knob} ({low}) must not exceed max_{knob} ({high})")
            if low is not None:
                jitter[knob] = (low, high)
        if max_pitch_cents is not None and not max_pitch_cents >= 0:
            raise ValueError(f"max_pitch_cents must be >= 0, got {max_pitch_cents}")
        # JitterConfig validates the ranges and says which one is wrong.
        JitterConfig(**jitter)
        if isinstance(bank, str | Path):
            bank = SpeciesBank.load(bank)
        self._bank: SpeciesBank | None = bank
        self._bank_path = bank.path
        self._bank_species = bank.species
        available = bank.species
        if species is not None and species not in available:
            raise ValueError(f"species {species!r} is not in the bank; bank has {available}")
        if species is None and len(available) == 1:
            species = available[0]
        if species is None and mode == "resynth":
            raise ValueError(
                f"mode='resynth' needs species= when the bank has several species: {available}"
            )
        # The path keeps repr() and to_dict() readable and JSON-friendly.
        self.bank = str(bank.path) if bank.path is not None else bank
        self.species = species
        self.mode = mode
        self.min_snr_db = float(min_snr_db)
        self.max_snr_db = float(max_snr_db)
        self.keep_background = keep_background
        self.max_pitch_cents = max_pitch_cents
        self.min_tempo, self.max_tempo = min_tempo, max_tempo
        self.min_vibrato_cents, self.max_vibrato_cents = min_vibrato_cents, max_vibrato_cents
        self.min_vibrato_hz, self.max_vibrato_hz = min_vibrato_hz, max_vibrato_hz
        self.backend = backend
        self.seed = seed
        self._jitter = jitter
        self._rng: np.random.Generator | None = None
        self._rng_pid: int | None = None
        # Spawn-key words of this copy (empty for the original) and how many copies it made.
        self._copy_key: tuple[int, ...] = ()
        self._copies = 0

    def get_transform_init_args(self) -> dict[str, Any]:
        """Every ``__init__`` argument but ``seed`` and ``p``, read from the signature so that a
        new argument cannot be forgotten (the base class reports ``p``; unlike the base class's
        version, None-valued ranges are shown rather than warned about)."""
        return {name: getattr(self, name) for name in _INIT_ARGS}

    def _generator(self) -> np.random.Generator:
        """This process's generator: a forked or unpickled copy must not repeat its parent."""
        pid = os.getpid()
        if self._rng is None or self._rng_pid != pid:
            worker = torch.utils.data.get_worker_info()
            if self.seed is None:
                sequence = np.random.SeedSequence(torch.initial_seed(), spawn_key=self._copy_key)
            else:
                # Worker i gets child i of the seed's sequence (entropy [seed, 0] would equal
                # [seed]: SeedSequence pads entropy with zeros).
                spawn_key = self._copy_key + ((worker.id,) if worker is not None else ())
                sequence = np.random.SeedSequence(int(self.seed), spawn_key=spawn_key)
            self._rng = np.random.default_rng(sequence)
            self._rng_pid = pid
        return self._rng

    def _loaded_bank(self) -> SpeciesBank:
        if self._bank is None:
            self._bank = SpeciesBank.load(self._bank_path, species=self._bank_species)
        return self._bank

    def __getstate__(self) -> dict[str, Any]:
        if self._bank_path is None:
            raise TypeError(
                "DDSPSynth cannot send a bank built in memory (bank.path is None) to another "
                "process: save it and pass its directory"
            )
        # Each copy gets the next branch: the same process must not see the parent's draws
        # again (the generator state would otherwise travel with the copy).
        self._copies += 1
        return {
            **self.__dict__,
            "_bank": None,
            "_rng": None,
            "_rng_pid": None,
            "_copy_key": (*self._copy_key, _COPY, self._copies),
            "_copies": 0,
        }

    def __call__(self, samples: np.ndarray, sample_rate: int) -> NDArray[np.float32]:
        """Transform ``samples`` ``(time)`` or ``(channels, time)`` at ``sample_rate`` Hz."""
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
            raise TypeError(f"sample_rate must be an int, got {sample_rate!r}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        samples = as_float_audio(samples)
        if samples.ndim not in (1, 2):
            raise ValueError(
                f"samples must be (time) or (channels, time), got shape {samples.shape}"
            )
        if not np.all(np.isfinite(samples)):
            raise ValueError("samples contain NaN or infinite values")
        return super().__call__(samples, int(sample_rate))

    def randomize_parameters(self, samples: NDArray[np.float32], sample_rate: int) -> None:
        rng = self._generator()
        self.parameters["should_apply"] = bool(rng.random() < self.p)
        if self.parameters["should_apply"]:
            species = self.species
            if species is None:
                names = self._bank_species
                species = names[int(rng.integers(len(names)))]
            self.parameters["species"] = species
            self.parameters["synth_seed"] = int(rng.integers(2**63))
            if self.mode == "mix":
                self.parameters["snr_db"] = float(rng.uniform(self.min_snr_db, self.max_snr_db))

    def apply(self, samples: NDArray[np.float32], sample_rate: int) -> NDArray[np.float32]:
        if _rms(samples) == 0.0:
            return samples
        bank = self._loaded_bank()
        species = self.parameters["species"]
        seed = self.parameters["synth_seed"]
        mono = samples if samples.ndim == 1 else samples.mean(axis=0)
        if self.mode == "resynth":
            song = bank.resynthesize(
                species,
                mono,
                sample_rate,
                seed=seed,
                backend=self.backend,
                noise=self.noise,
                keep_background=self.keep_background,
                **self._jitter,
            )
            # The mixdown's song goes to every channel at that channel's own level.
            gains = np.sqrt(np.mean(np.square(samples, dtype=np.float64), axis=-1))
            return _limit_peak(gains[..., None] / max(_rms(song), 1e-12) * song, samples)
        n = samples.shape[-1]
        song = bank.sample(
            species,
            n=1,
            seconds=n / sample_rate,
            sample_rate=sample_rate,
            seed=seed,
            backend=self.backend,
            noise=self.noise,
            **self._jitter,
        )[0]
        # round(seconds * rate) may miss n by a sample.
        song = np.pad(song[:n], (0, max(0, n - song.shape[0])))
        song_rms = _rms(song)
        if song_rms == 0.0:
            return samples
        scale = _rms(samples) / (song_rms * 10 ** (self.parameters["snr_db"] / 20))
        return _limit_peak(samples + scale * song, samples)


# The transform's own arguments, in signature order: what repr() and to_dict() show.
_INIT_ARGS = tuple(
    name
    for name in inspect.signature(DDSPSynth.__init__).parameters
    if name not in {"self", "seed", "p"}
)
