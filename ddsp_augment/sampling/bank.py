"""`SpeciesBank`: trained species models, sampled with jittered contours into new songs."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..checks import Backend, Draws, NoiseSource, check_backend, check_draws, check_noise
from ..constants import LOUDNESS_FLOOR_DB, PEAK, SAMPLE_RATE
from ..features.activity import bird_activity
from ..features.background import FLOOR_FFT_SIZE, noise_floor, render_noise_floor
from ..features.pitch import estimate_f0
from ..features.residual import (
    RESIDUAL_POOL,
    measure_residual,
    song_residual,
)
from ..io import resample
from ..model.storage import SavedSpecies, analysis_band, find_model_dirs, load_species_model
from .gate import GateStats, Judge, gated_draw
from .jitter import ComposedSong, JitterConfig, compose_song, jitter_contours
from .scene import SceneConfig, SceneDraw, apply_scene, apply_scenes_torch, draw_scene
from .syllables import SyntaxModel, learn_syntax

__all__ = ["SpeciesBank"]

# Clips rendered together by the torch backend, by device type: on a GPU enough to keep it busy
# (host memory about 1.5 MB per 3 s clip: contours, noise, scene spectra and audio); on a CPU few
# enough that the batch's buffers stay in cache (n=256 in one batch ran 20 % slower per clip
# than n=16).
_BATCH = {"cpu": 16, "cuda": 256}


def _rngs(seed: int | np.random.SeedSequence | None, n: int) -> list[np.random.Generator]:
    """One independent generator per clip: clip ``i`` of a seeded call is always the same."""
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.default_rng(child) for child in sequence.spawn(n)]


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one thread, as DataLoader workers do (restored afterwards).

    Multithreaded matmuls sum in another order (±3e-7), and items must be bit-identical whether
    the main process or a worker makes them, whatever the caller's thread setting.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check_sample_args(
    n: int, seconds: float, sample_rate: int, seed: object, model_rate: int
) -> int | np.random.SeedSequence | None:
    """Validate :meth:`SpeciesBank.sample`'s arguments, naming the bad one; returns the seed as
    ``_rngs`` takes it (a Generator becomes a SeedSequence drawn from it, so it advances)."""
    for name, value in (("n", n), ("sample_rate", sample_rate)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float | np.integer | np.floating):
        raise TypeError(f"seconds must be a number, got {seconds!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be finite and > 0, got {seconds}")
    for rate in (sample_rate, model_rate):
        if round(seconds * rate) < 1:
            raise ValueError(f"seconds={seconds} is shorter than one sample at {rate} Hz")
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=4).tolist())
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(
            f"seed must be an int >= 0, a SeedSequence, a Generator or None, got {seed!r}"
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def _peak_safe(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    # The clip undoes a last float32 rounding up past the limit (one ulp at most).
    return np.clip(audio * (PEAK / peak), -PEAK, PEAK) if peak > PEAK else audio


class SpeciesBank:
    """A set of species models ready to sample.

    Example::

        bank = SpeciesBank.load("models/")
        songs = bank.sample("Parus_major", n=4, seconds=3.0, sample_rate=32000, seed=0)
    """

    def __init__(self, entries: dict[str, SavedSpecies], path: Path | None = None) -> None:
        if not entries:
            raise ValueError("a SpeciesBank needs at least one species model")
        self._entries = dict(sorted(entries.items()))
        #: Where the bank was loaded from (None when built in memory): DataLoader workers reload
        #: it from here with ``SpeciesBank.load(bank.path, species=bank.species)``.
        self.path = path
        #: Totals of the quality gate over this bank's ``sample`` calls (``gate.GateStats``).
        self.gate_stats = GateStats()
        self._jitter = {
            name: JitterConfig.from_segments(entry.contours.segments)
            for name, entry in self._entries.items()
        }
        # Syllable syntax per species, learned on first use (a fraction of a second per
        # species: banks that only resynthesise, or sample with syntax="shuffle", never pay it).
        self._syntax: dict[str, SyntaxModel] = {}
        # Each species' contour bank end to end (F0, loudness, residual: views of the loaded
        # arrays), looked up on first use by noise="recorded"; None for a model saved without
        # residuals (warned about once).
        self._residuals: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}

    @classmethod
    def load(
        cls,
        path: str | Path,
        species: Iterable[str] | None = None,
        device: str | torch.device = "cpu",
    ) -> SpeciesBank:
        """Load ``path``: one species directory, or a folder of them (only ``species``).

        Errors as :func:`..model.storage.find_model_dirs` (an unknown species is a
        ``ModelFileError`` naming the folder) and :func:`..model.storage.load_species_model`.
        """
        dirs = find_model_dirs(path, species)
        entries = {name: load_species_model(d, device=device) for name, d in dirs.items()}
        return cls(entries, path=Path(path))

    @property
    def species(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, species: str) -> bool:
        return species in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"SpeciesBank(species={self.species}{where})"

    def entry(self, species: str) -> SavedSpecies:
        try:
            return self._entries[species]
        except KeyError:
            raise KeyError(f"no model for species {species!r}; bank has {self.species}") from None

    def directory(self, species: str) -> Path | None:
        """The model directory ``species`` was loaded from (None when built in memory)."""
        return self.entry(species).directory

    def jitter_config(self, species: str, **overrides) -> JitterConfig:
        """The species' default jitter (from its own measured variation), with ``overrides``."""
        self.entry(species)
        return dataclasses.replace(self._jitter[species], **overrides)

    def syntax_model(self, species: str) -> SyntaxModel:
        """The species' syllable types and their transitions, learned from its contour bank
        (once, then cached): what ``syntax="markov"`` sampling walks."""
        if species not in self._syntax:
            contours = self.entry(species).contours
            self._syntax[species] = learn_syntax(contours.segments, contours.frame_rate)
        return self._syntax[species]

    @property
    def nbytes(self) -> int:
        """Memory held by weights, contours (with their recorded residuals) and background
        spectra."""
        total = 0
        for entry in self._entries.values():
            total += sum(p.numel() * p.element_size() for p in entry.model.state_dict().values())
            total += entry.backgrounds.nbytes
            total += entry.contours.nbytes
        return total

    def sample(
        self,
        species: str,
        n: int = 1,
        seconds: float = 3.0,
        sample_rate: int = SAMPLE_RATE,
        seed: int | np.random.SeedSequence | np.random.Generator | None = None,
        backend: Backend = "numba",
        scene: SceneConfig | None = None,
        jitter: JitterConfig | None = None,
        background_spectra: np.ndarray | None = None,
        device: str | torch.device | None = None,
        min_confidence: float | None = None,
        judge: Judge | None = None,
        max_draws: int = 8,
        draws: Draws = "host",
        noise: NoiseSource = "recorded",
        **jitter_overrides,
    ) -> np.ndarray:
        """New songs of ``species`` → float32 ``[n, round(seconds * sample_rate)]``, peak ≤ 0.99.

        Each clip recombines and jitters the species' real contours, renders them through its
        decoder and synthesiser (``backend`` "numba" on CPU, or "torch"), then places the bird in
        ``scene`` (None: the clean bird). ``noise="recorded"`` renders the recorded residual of
        the frames the contours came from, at the song's pitch and level, in place of the
        decoder's noise branch (``"model"``); a model saved without residuals falls back to its
        noise branch with a warning. A "measured" scene background is drawn from
        ``background_spectra`` ``[n, 1025]`` (`noise_floor` of
        recordings at the model's sample rate) when given, else from the species' own training
        recordings. The same ``seed`` gives identical clips; a ``Generator`` seed is drawn from
        (so successive calls differ). Bad arguments raise ``TypeError``/``ValueError`` naming
        the argument; ``seconds`` must give at least one sample at the output and model rates.

        ``backend="torch"`` renders the clips in batches (of 256 on a GPU, 16 on a CPU) on
        ``device`` (default: where the model is; a model elsewhere moves there and stays):
        decoder, synthesis, reverb and the scene (:func:`.scene.apply_scenes_torch`) for the
        whole batch at once. Contours, white noise and scene draws come from the same per-clip
        generators as the numba path, on the CPU, so both give the same songs up to float32
        rounding (tested within 1e-3 of the peak). ``draws="device"`` (torch only) leaves the
        host only the contours and the scene's parameters: the bulk noise (the filtered-noise
        branch's white noise; the measured background's, the wind's and the rain hiss's
        spectra) is drawn on ``device`` from a ``torch.Generator`` seeded from each clip's
        generator. Songs are then the same for the same seed on the same device, and the same
        as the host draws' in distribution only (same contours; noise spectra and levels within
        a fraction of a dB, tested). It is for GPUs: on a CPU torch's normal generator is
        slower than numpy's.

        Quality gate (``gate.gated_draw``): with ``judge`` and ``min_confidence``, a clip the
        judge gives less than ``min_confidence`` for ``species`` is redrawn, up to ``max_draws``
        times (then the most convincing draw is kept); ``self.gate_stats`` counts draws,
        acceptances and seconds across calls.
        """
        if (judge is None) != (min_confidence is None):
            raise ValueError("the quality gate needs both judge and min_confidence (or neither)")
        if (min_confidence is not None and not 0 <= min_confidence <= 1) or max_draws < 1:
            raise ValueError(
                f"need 0 <= min_confidence <= 1 and max_draws >= 1; got {min_confidence}, "
                f"{max_draws}"
            )
        check_backend(backend)
        check_noise(noise)
        if check_draws(draws) == "device" and backend != "torch":
            raise ValueError(f"draws='device' needs backend='torch', got backend={backend!r}")
        entry = self.entry(species)
        seed = check_sample_args(n, seconds, sample_rate, seed, entry.model.config.sample_rate)
        config = jitter or self.jitter_config(species, **jitter_overrides)
        model_sr = entry.model.config.sample_rate
        n_model = int(round(seconds * model_sr))
        n_out = int(round(seconds * sample_rate))
        floors = entry.backgrounds if background_spectra is None else background_spectra
        recorded = noise == "recorded" and self._residual(species) is not None
        out = np.empty((n, n_out), np.float32)
        rngs = _rngs(seed, n)

        def finish(bird: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            if scene is not None:
                bird, _ = apply_scene(bird, model_sr, scene, rng, background_spectra=floors)
            return self._to_rate(bird, model_sr, sample_rate, n_out)

        batch = n
        if backend == "torch":
            where = device if device is not None else next(entry.model.parameters()).device
            batch = _BATCH.get(torch.device(where).type, _BATCH["cpu"])
        # Inference mode: the torch backend's batches are scaled in place.
        with _one_torch_thread(), torch.inference_mode():
            for start in range(0, n, batch):
                chunk = rngs[start : start + batch]
                if backend == "torch":
                    clips = self._render_torch(
                        species, config, chunk, n_model, device, scene, floors, draws, recorded
                    )
                    clips = self._to_rate_torch(clips, model_sr, sample_rate, n_out)
                else:
                    clips = (
                        finish(self._render_numba(species, config, rng, n_model, recorded), rng)
                        for rng in chunk
                    )

                for i, (clip, rng) in enumerate(zip(clips, chunk, strict=True)):
                    if judge is not None:  # redraws render one clip, from the same generator

                        def redraw(rng: np.random.Generator = rng) -> np.ndarray:
                            clip = self._render_numba(species, config, rng, n_model, recorded)
                            return finish(clip, rng)

                        gate = (min_confidence, max_draws, self.gate_stats)
                        clip = gated_draw(redraw, judge, species, sample_rate, *gate, first=clip)
                    out[start + i] = clip
        return out

    def _contours(
        self, species: str, config: JitterConfig, rng: np.random.Generator, n_model: int
    ) -> ComposedSong:
        entry = self.entry(species)
        hop = entry.model.config.hop_length
        sample_rate = entry.model.config.sample_rate
        syntax = self.syntax_model(species) if config.syntax == "markov" else None
        return compose_song(
            entry.contours.segments, n_model // hop + 1, config, rng, sample_rate / hop, syntax
        )

    def _residual(self, species: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``species``' contour bank end to end, cached (see ``ContourBank.concatenated``), as
        ``(log2 F0, loudness, residual)``;
        None, with a warning naming the model, when it was saved without residuals or with
        residuals of an older kind (``ContourBank.stale_residual``)."""
        if species not in self._residuals:
            contours = self.entry(species).contours
            f0, loud, residual = contours.concatenated()
            self._residuals[species] = (
                None if residual is None else (np.log2(f0.astype(np.float64)), loud, residual)
            )
            if residual is None:
                where = self.directory(species) or species
                why = (
                    "its recorded residuals were measured before the reverb (an older version): "
                    "retrain it"
                    if contours.stale_residual
                    else "no recorded residuals (its training is unfinished, or it was saved "
                    "before they existed: finish or retrain it)"
                )
                warnings.warn(
                    f"{where}: {why}; noise='recorded' falls back to the model's noise branch",
                    stacklevel=3,
                )
        return self._residuals[species]

    def _recorded_noise(self, species: str, song: ComposedSong) -> np.ndarray:
        """The recorded residual under ``song``: each frame's source frame, at the song's pitch
        and level → noise magnitudes ``[ceil(frames / RESIDUAL_POOL), bands]`` float32 (zero
        where nothing sings), pooled to render at ``RESIDUAL_POOL`` hops a frame."""
        log_f0, loud, residual = self._residual(species)
        sung = ~np.isnan(song.source) & (song.loudness_db > LOUDNESS_FLOOR_DB)
        position = song.source[sung]
        # After a tempo change a song frame sits between two source frames. Its pitch and
        # level are compared with the source contours interpolated there, as the jitter
        # interpolated them, so the residual moves by the jitter's own shift and gain.
        # Against the nearest frame's values instead, a jumpy F0 track's frame-to-frame steps
        # read as pitch shifts of up to an octave, and a 1 % tempo change warped a wood
        # pigeon's low coo into the kHz bands (BirdNET top-1 0.75 -> 0.04).
        frames = np.arange(loud.shape[0])
        ratio = song.f0_hz[sung] / np.exp2(np.interp(position, frames, log_f0))
        gain = song.loudness_db[sung] - np.interp(position, frames, loud)
        return song_residual(residual, sung, np.rint(position).astype(np.int64), gain, ratio)

    def _noise_hop(self, species: str, recorded: bool) -> int | None:
        """Samples per frame of the recorded noise's magnitudes (None: the decoder's noise)."""
        return self.entry(species).model.config.hop_length * RESIDUAL_POOL if recorded else None

    def _render_numba(
        self,
        species: str,
        config: JitterConfig,
        rng: np.random.Generator,
        n_model: int,
        recorded: bool,
    ) -> np.ndarray:
        song = self._contours(species, config, rng, n_model)
        magnitudes = self._recorded_noise(species, song) if recorded else None
        return self.entry(species).model.synthesize(
            *song[:3], n_model, rng, "numba", magnitudes, self._noise_hop(species, recorded)
        )

    def _render_torch(
        self,
        species: str,
        config: JitterConfig,
        rngs: list[np.random.Generator],
        n_model: int,
        device: str | torch.device | None,
        scene: SceneConfig | None,
        floors: np.ndarray,
        draws: Draws = "host",
        recorded: bool = False,
    ) -> torch.Tensor:
        """Decoder, synthesis, reverb and the scene for all clips as one batch on ``device``
        → ``[clips, n_model]`` there, from :meth:`_host_draws`."""
        contours, magnitudes, noise, scenes = self._host_draws(
            species, config, rngs, n_model, scene, floors, draws, recorded
        )
        model = self.entry(species).model
        if device is not None and torch.device(device) != next(model.parameters()).device:
            model.to(device)
        target = next(model.parameters()).device
        stacked = [torch.from_numpy(a).to(target, non_blocking=True) for a in contours]
        if magnitudes is not None:
            magnitudes = torch.from_numpy(magnitudes).to(target, non_blocking=True)
        generators = None
        if isinstance(noise, np.ndarray):
            white = torch.from_numpy(noise).to(target, non_blocking=True)
        else:  # each clip's white noise first, then its scene's noises, from its generator
            generators = [torch.Generator(target).manual_seed(s) for s in noise]
            white = torch.empty(len(noise), n_model, device=target)
            for row, generator in zip(white, generators, strict=True):
                torch.randn(n_model, generator=generator, out=row, device=target)
        birds = model.render(*stacked, white, magnitudes, self._noise_hop(species, recorded))
        if scenes is None:
            return birds
        return apply_scenes_torch(birds, model.config.sample_rate, scenes, generators)

    def _host_draws(
        self,
        species: str,
        config: JitterConfig,
        rngs: list[np.random.Generator],
        n_model: int,
        scene: SceneConfig | None,
        floors: np.ndarray,
        draws: Draws = "host",
        recorded: bool = False,
    ) -> tuple[
        tuple[np.ndarray, ...], np.ndarray | None, np.ndarray | list[int], list[SceneDraw] | None
    ]:
        """What the torch backend draws per clip on the CPU, from each clip's generator in the
        numba path's order: contours (three ``[clips, frames]``), the recorded noise's pooled
        magnitudes ``[clips, noise_frames, bands]`` (None unless ``recorded``), white noise
        ``[clips, n_model]`` (with ``draws="device"`` instead a seed per clip for its device
        generator) and scene draws (None without a scene). The per-clip cost that remains on
        the host whatever the device (``benchmarks/generate_speed.py`` times it)."""
        entry = self.entry(species)
        contours, magnitudes = [], []
        if draws == "device":
            noise: np.ndarray | list[int] = []
        else:
            noise = np.empty((len(rngs), n_model), np.float32)
        for i, rng in enumerate(rngs):
            song = self._contours(species, config, rng, n_model)
            contours.append(song[:3])
            if recorded:
                magnitudes.append(self._recorded_noise(species, song))
            if draws == "device":
                noise.append(int(rng.integers(2**63)))
            else:
                rng.standard_normal(dtype=np.float32, out=noise[i])
        scenes = None
        if scene is not None:
            rate = entry.model.config.sample_rate
            scenes = [
                draw_scene(scene, n_model, rate, rng, background_spectra=floors, draws=draws)
                for rng in rngs
            ]
        stacked = tuple(np.stack(c) for c in zip(*contours, strict=True))
        return stacked, np.stack(magnitudes) if recorded else None, noise, scenes

    @classmethod
    def _to_rate_torch(
        cls, audio: torch.Tensor, source_sr: int, target_sr: int, n_out: int
    ) -> np.ndarray:
        """:meth:`_to_rate` for a batch ``[clips, samples]`` on a device: cut or padded and
        peak-limited there; resampled clip by clip on the CPU when the rates differ."""
        if source_sr != target_sr:
            return np.stack(
                [cls._to_rate(a, source_sr, target_sr, n_out) for a in audio.cpu().numpy()]
            )
        if audio.shape[1] != n_out:
            audio = torch.nn.functional.pad(audio[:, :n_out], (0, max(0, n_out - audio.shape[1])))
        # Louder clips scaled to the peak limit; the others times exactly 1. The peak from the
        # maximum and minimum: a rectified copy, or aminmax, is twice as slow on a CPU.
        peak = torch.maximum(audio.amax(-1, keepdim=True), audio.amin(-1, keepdim=True).neg_())
        audio *= (PEAK / peak).clamp_(max=1.0)
        return audio.clamp_(-PEAK, PEAK).cpu().numpy()

    def resynthesize(
        self,
        species: str,
        audio: np.ndarray,
        sample_rate: int,
        seed: int | np.random.SeedSequence | None = None,
        backend: Backend = "numba",
        keep_background: bool = False,
        jitter: JitterConfig | None = None,
        noise: NoiseSource = "recorded",
        **jitter_overrides,
    ) -> np.ndarray:
        """Re-sing a real clip ``[samples]`` with ``species``' model, jittered; same length, level.

        The clip's F0 and loudness are tracked, jittered (pitch, vibrato, gain; no syllable
        edits, so timing follows the original) and rendered. ``noise="recorded"`` renders the
        clip's own recorded residual (what the model's harmonics leave of it above its
        background) at the new pitch and level, ``"model"`` the decoder's noise branch.
        ``keep_background`` adds noise with the clip's own measured background under the new
        song.
        """
        check_noise(noise)
        entry = self.entry(species)
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(
                f"resynthesize expects a non-empty mono [samples] array, got {audio.shape}"
            )
        config = jitter or self.jitter_config(species, **jitter_overrides)
        # Timing follows the original clip: no tempo change.
        config = dataclasses.replace(config, tempo=(1.0, 1.0))
        model_sr = entry.model.config.sample_rate
        hop = entry.model.config.hop_length
        rng = _rngs(seed, 1)[0]
        x = resample(audio, sample_rate, model_sr) if sample_rate != model_sr else audio
        band = analysis_band(entry.info)  # as its training recordings were measured
        with _one_torch_thread():
            f0, conf = estimate_f0(x, model_sr, hop, *band)
            # The bird above the clip's background: the background is not re-sung as noise.
            # Too short to measure a background (under half an analysis window): none.
            short = x.shape[0] <= FLOOR_FFT_SIZE // 2
            floor = np.zeros(FLOOR_FFT_SIZE // 2 + 1, np.float32) if short else noise_floor(x)
            loud = bird_activity(x, model_sr, floor, conf, hop, *band).loudness_db
            new = jitter_contours(f0, loud, conf, config, rng, model_sr / hop)
            magnitudes = None
            if noise == "recorded":
                harmonic = entry.model.harmonic_part(f0, loud, conf, x.shape[0])
                residual = measure_residual(x, harmonic, hop)
                sung = new[1] > LOUDNESS_FLOOR_DB
                magnitudes = song_residual(
                    residual,
                    sung,
                    np.flatnonzero(sung),
                    new[1][sung] - loud[sung],
                    new[0][sung] / f0[sung],
                )
            noise_hop = self._noise_hop(species, noise == "recorded")
            bird = entry.model.synthesize(*new, x.shape[0], rng, backend, magnitudes, noise_hop)
        if keep_background:
            background = render_noise_floor(floor, x.shape[0], rng)
        # Level is matched at the caller's rate: resampling below 32 kHz removes the model's
        # upper partials, and with them part of the energy.
        bird = self._to_rate(bird, model_sr, sample_rate, audio.shape[0])
        bird *= float(np.sqrt(np.mean(audio**2))) / max(float(np.sqrt(np.mean(bird**2))), 1e-9)
        if keep_background:
            bird += self._to_rate(background, model_sr, sample_rate, audio.shape[0])
        return _peak_safe(bird)

    @staticmethod
    def _to_rate(audio: np.ndarray, source_sr: int, target_sr: int, n_out: int) -> np.ndarray:
        if source_sr != target_sr:
            audio = resample(audio, source_sr, target_sr)
        if audio.shape[0] < n_out:
            audio = np.pad(audio, (0, n_out - audio.shape[0]))
        return _peak_safe(audio[:n_out].astype(np.float32, copy=False))
