"""Training one DDSP model per species: validation by recordist, live metrics, collapse
detection, best-model keeping, resume, and joblib parallelism over species.

Parallelism goes through joblib, so a cluster user switches backend without code changes::

    from joblib import parallel_config
    with parallel_config(backend="dask"):   # or "ray" after ray.util.joblib.register_ray()
        train_folder("data/processed", "models", jobs=8)
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ..constants import ACTIVE_RANGE_DB, VOICED_THRESHOLD
from ..evaluation.metrics import f0_accuracy, loudness_mae_db, spectral_distance
from ..features.activity import bird_activity, share_below
from ..features.background import noise_floor, recorded_band_edge, render_noise_floor
from ..features.contours import ContourBank, Segment
from ..features.pitch import estimate_f0
from ..features.residual import measure_residual
from ..io import atomic_write
from ..model.decoder import DecoderConfig
from ..model.losses import FFT_SIZES, MultiScaleSpectralLoss, loss_f_min
from ..model.species_model import SpeciesModel
from ..model.storage import (
    ModelFileError,
    has_checkpoint,
    load_checkpoint,
    load_prior,
    load_weights,
    mark_failed,
    save_checkpoint,
    save_species_model,
)
from .preprocess import Recording, load_processed

__all__ = [
    "CollapseError",
    "TrainResult",
    "TrainSettings",
    "data_warnings",
    "detect_collapse",
    "split_by_recordist",
    "train_folder",
    "train_species",
]

# Below this much training audio a model can only repeat its few syllables: say so.
_FEW_SECONDS = 10.0
# Below this, a recording's sound is rumble (wind, traffic, handling), not a bird.
_LOWEST_BIRD_HZ = 100.0


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs (defaults: ≤ 5 min per species of ≤ 80 s audio on 2 CPU cores).

    An "epoch" is ``steps_per_epoch`` batches of random crops centred on active frames: species
    have seconds to minutes of audio, so passes over the data are not a useful unit.
    """

    epochs: int = 30
    steps_per_epoch: int = 30
    batch_size: int = 8
    crop_seconds: float = 0.5
    learning_rate: float = 2e-3
    patience: int = 10
    val_fraction: float = 0.25
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_restarts: int = 2
    threads: int | None = None
    background_in_loss: bool = True
    decoder: dict[str, Any] = field(default_factory=dict)
    #: A shared prior's model directory (``training.prior.train_prior``) to start from instead of
    #: random weights; with one, ``prior_freeze="core"`` trains only the decoder's output layer
    #: and the reverb (the input and dilated-conv layers keep the prior's weights).
    prior: str | None = None
    prior_freeze: Literal["none", "core"] = "none"

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.crop_seconds <= 0 or self.learning_rate <= 0:
            raise ValueError("crop_seconds and learning_rate must be > 0")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.prior_freeze not in ("none", "core"):
            raise ValueError(f"prior_freeze must be none or core, got {self.prior_freeze!r}")


class CollapseError(RuntimeError):
    """Training collapsed (silence, or noise only on tonal song) and restarts did not help."""


@dataclass
class TrainResult:
    species: str
    directory: Path
    history: list[dict[str, float]]
    best: dict[str, float]
    restarts: int
    wall_seconds: float
    #: What the user should know about the data (too little audio, no held-out validation).
    warnings: list[str] = field(default_factory=list)


def split_by_recordist(
    recordings: Sequence[Recording], val_fraction: float, seed: int
) -> tuple[list[Recording], list[Recording]]:
    """Hold out whole recordists (≈ ``val_fraction`` of the audio) for validation.

    Clips from one recordist often come from one session (same bird, same microphone), so a
    per-clip split would leak. With a single recordist, recordings are split instead. With two
    recordings, holding one out would train on half the data: the last ``val_fraction`` of
    each recording's song is held out instead (:func:`split_in_time`). A single recording is
    used for both.
    """
    if len(recordings) < 2 or val_fraction == 0:
        return list(recordings), []
    if _holds_out_stretches(len(recordings), val_fraction):
        parts = [split_in_time(rec, val_fraction) for rec in recordings]
        return [head for head, _ in parts], [tail for _, tail in parts]
    by_person: dict[str, list[Recording]] = {}
    for rec in recordings:
        by_person.setdefault(rec.recordist, []).append(rec)
    groups = list(by_person.values()) if len(by_person) > 1 else [[r] for r in recordings]
    order = np.random.default_rng(seed).permutation(len(groups))
    total = sum(r.seconds for r in recordings)
    val: list[Recording] = []
    for index in order:
        if sum(r.seconds for r in val) >= val_fraction * total or len(val) + 1 >= len(recordings):
            break
        if len(groups) - sum(1 for g in groups if g[0] in val) <= 1:
            break
        val.extend(groups[index])
    train = [r for r in recordings if r not in val]
    return train, val


def _holds_out_stretches(n_recordings: int, val_fraction: float) -> bool:
    # Two recordings: holding one out would train on half the data. (One recording is used for
    # both training and validation, and the model's data warnings say so.)
    return n_recordings == 2 and val_fraction > 0


def split_in_time(recording: Recording, val_fraction: float) -> tuple[Recording, Recording]:
    """``(head, tail)`` of one recording, the tail holding ≈ ``val_fraction`` of its active frames.

    The cut falls on a frame boundary: the head keeps samples ``[0, cut * hop)`` and frames
    ``[0, cut]``, the tail the rest (frame grid of ARCHITECTURE.md: ``n // hop + 1`` frames
    each). Segments are clipped to each part; the tail is named ``<name>@<seconds>s``.
    """
    rec, hop = recording, recording.hop_length
    n_frames = rec.f0_hz.shape[0]
    active = np.zeros(n_frames, bool)
    for start, end in rec.segments:
        active[start:end] = True
    cumulative = np.cumsum(active)
    # Both parts keep at least one active frame and a few frames of audio.
    cut = int(np.searchsorted(cumulative, (1 - val_fraction) * cumulative[-1]))
    cut = int(np.clip(cut, 4, n_frames - 5))

    def part(lo: int, hi: int, name: str) -> Recording:
        segments = np.clip(rec.segments, lo, hi) - lo
        return replace(
            rec,
            name=name,
            audio=rec.audio[lo * hop : hi * hop],
            f0_hz=rec.f0_hz[lo : hi + 1],
            confidence=rec.confidence[lo : hi + 1],
            loudness_db=rec.loudness_db[lo : hi + 1],
            segments=segments[segments[:, 1] > segments[:, 0]],
        )

    tail_name = f"{rec.name}@{cut * hop / rec.sample_rate:.2f}s"
    return part(0, cut, rec.name), part(cut, n_frames - 1, tail_name)


def detect_collapse(output: np.ndarray, harmonic: np.ndarray, recording: Recording) -> str | None:
    """Why a resynthesis counts as collapsed, or None.

    Collapse modes known from DDSP on small data and high sample rates: the output goes silent,
    or the harmonic branch dies and the noise branch takes over while the target is tonal.
    ``output`` and ``harmonic`` (``[samples]``) are both taken after the reverb: the harmonic
    share is that of the sound heard.
    """
    hop = recording.hop_length
    active = recording.loudness_db >= recording.loudness_db.max() - ACTIVE_RANGE_DB
    mask = np.repeat(active, hop)[: output.shape[0]]
    target_power = float(np.mean(recording.audio[: mask.size][mask] ** 2)) + 1e-12
    output_power = float(np.mean(output[: mask.size][mask] ** 2)) + 1e-20
    if 10 * math.log10(output_power / target_power) < -30:
        return "silent output (>30 dB below the recording on active frames)"
    tonal = float(np.mean(recording.confidence[active] >= VOICED_THRESHOLD)) >= 0.5
    harmonic_power = float(np.mean(harmonic[: mask.size][mask] ** 2))
    if tonal and harmonic_power / output_power < 0.02:
        return "harmonic part gone (<2 % of the energy) while the recording is tonal"
    return None


class _CropSampler:
    """Random training crops centred on active frames, from a seeded numpy generator."""

    def __init__(self, recordings: Sequence[Recording], crop_frames: int, rng: np.random.Generator):
        self.recordings = recordings
        self.crop_frames = crop_frames
        self.rng = rng
        # Each recording's background floor at every loss FFT size, for the background term,
        # and the highest frequency it carries, above which the loss does not look.
        self.floors = [[noise_floor(r.audio, n) for n in FFT_SIZES] for r in recordings]
        self.band_edges = np.array(
            [recorded_band_edge(r.background, r.sample_rate) for r in recordings]
        )
        centres = []
        for index, rec in enumerate(recordings):
            for start, end in rec.segments:
                frames = np.arange(start, end)
                centres.append(np.stack([np.full_like(frames, index), frames], 1))
        self.centres = np.concatenate(centres)

    def batch(self, size: int) -> tuple[Any, ...]:
        """``size`` crops: f0, loudness, confidence ``[size, frames + 1]``, audio
        ``[size, frames * hop]``, the floors (one ``[size, bins]`` per loss FFT size) and the
        band edges ``[size]`` (Hz)."""
        picks = self.centres[self.rng.integers(0, len(self.centres), size)]
        f0, loud, conf, audio, floors = [], [], [], [], []
        n = self.crop_frames
        for index, centre in picks:
            rec = self.recordings[index]
            last_start = rec.f0_hz.shape[0] - n - 1
            start = int(np.clip(centre - n // 2, 0, max(0, last_start)))
            f0.append(rec.f0_hz[start : start + n + 1])
            loud.append(rec.loudness_db[start : start + n + 1])
            conf.append(rec.confidence[start : start + n + 1])
            audio.append(rec.audio[start * rec.hop_length : (start + n) * rec.hop_length])
            floors.append(self.floors[index])
        per_scale = [np.stack([f[i] for f in floors]) for i in range(len(FFT_SIZES))]
        edges = self.band_edges[picks[:, 0]]
        return np.stack(f0), np.stack(loud), np.stack(conf), np.stack(audio), per_scale, edges


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available")
    return torch.device(name)


def data_warnings(
    train: Sequence[Recording], val: Sequence[Recording], frame_rate: float
) -> list[str]:
    """Why a model trained on ``train`` (validated on ``val``) deserves little trust, if so."""
    warnings = []
    seconds = sum(r.seconds for r in train)
    if seconds < _FEW_SECONDS:
        voiced = sum(float(np.sum(r.confidence >= VOICED_THRESHOLD)) for r in train) / frame_rate
        warnings.append(
            f"only {seconds:.1f} s of training audio ({voiced:.1f} s voiced) in {len(train)} "
            f"recording(s); the model can only repeat it"
        )
    if not val:
        warnings.append("no held-out validation recording: metrics are on the training data")
    low = _share_below_band(train)
    if low is not None and low > _LOW_VOICED_SHARE:
        warnings.append(
            f"{100 * low:.0f} % of the bird's sound lies below the analysis band's "
            f"{train[0].band[0]:g} Hz: a low-voiced species (dove, owl, cuckoo)? Its pitch is "
            "tracked on an overtone or not at all; preprocess it with a lower --f_min (250 Hz "
            "trained a wood pigeon that collapsed at 1 kHz)"
        )
    return warnings


# A species whose recordings carry more than this share of the bird's power below the analysis
# band is warned about: on xc-germany-20 (below 1 kHz) the wood pigeon's median is 1.00, the
# highest of the 19 other species' 0.12.
_LOW_VOICED_SHARE = 0.5


def _share_below_band(train: Sequence[Recording]) -> float | None:
    """Median over ``train`` of the bird's power share below the analysis band
    (``features.activity.share_below``), or None where the band starts too low to ask."""
    band_low = train[0].band[0]
    if band_low < 2 * _LOWEST_BIRD_HZ:
        return None
    shares = []
    for rec in train:
        active = np.zeros(rec.f0_hz.shape[0], bool)
        for start, end in rec.segments:
            active[start:end] = True
        shares.append(
            share_below(
                rec.audio,
                rec.sample_rate,
                rec.background,
                active,
                band_low,
                rec.hop_length,
                low_hz=_LOWEST_BIRD_HZ,
                high_hz=rec.band[1],
            )
        )
    return float(np.median(shares))


def _decoder_config(train: Sequence[Recording], overrides: dict[str, Any]) -> DecoderConfig:
    active = np.concatenate(
        [r.loudness_db[r.loudness_db >= r.loudness_db.max() - ACTIVE_RANGE_DB] for r in train]
    )
    first = train[0]
    return DecoderConfig(
        sample_rate=first.sample_rate,
        hop_length=first.hop_length,
        loudness_mean=float(active.mean()),
        loudness_std=float(max(active.std(), 1.0)),
        **overrides,
    )


# What must agree between a prior and a species trained from it (everything but normalisation).
_ARCHITECTURE = (
    "sample_rate",
    "hop_length",
    "n_harmonics",
    "n_noise_bands",
    "hidden",
    "n_layers",
    "kernel_size",
    "reverb_seconds",
)


def _prior_start(
    path: str | Path, wanted: DecoderConfig, device: torch.device
) -> tuple[DecoderConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """A prior's decoder config and weights to start a species from, and its provenance.

    The species keeps the prior's loudness normalisation rather than its own statistics: the
    prior's first layer learned that scaling, and species' levels differ by 10-20 dB (most of
    one std), so the species' own statistics would shift every input of the pretrained network
    at step 0 and waste the start. The prior saw every species, so its range covers this one.
    """
    saved = load_prior(path, device)
    have = saved.model.config
    differ = [
        f"{name} {getattr(have, name)} (species settings: {getattr(wanted, name)})"
        for name in _ARCHITECTURE
        if getattr(have, name) != getattr(wanted, name)
    ]
    if differ:
        raise ModelFileError(
            Path(path) / "config.json",
            "the prior's architecture differs from the species settings: " + ", ".join(differ),
        )
    provenance = {
        "path": str(path),
        "weights_sha256": saved.info["files"]["weights.safetensors"],
        "species": saved.info.get("prior_of", []),
    }
    return have, saved.model.state_dict(), provenance


def _contour_bank(recordings: Sequence[Recording], model: SpeciesModel | None) -> ContourBank:
    """The training recordings' segments, each with its recorded residual against ``model``'s
    harmonics (the residual is what these weights leave out; none without a model)."""
    segments = []
    for rec in recordings:
        residual = None
        if model is not None:
            harmonic = model.harmonic_part(
                rec.f0_hz, rec.loudness_db, rec.confidence, rec.audio.shape[0]
            )
            residual = measure_residual(rec.audio, harmonic, rec.hop_length)
        segments += [
            Segment(
                rec.f0_hz[a:b].copy(),
                rec.loudness_db[a:b].copy(),
                rec.confidence[a:b].copy(),
                rec.name,
                None if residual is None else residual[a:b].copy(),
            )
            for a, b in rec.segments
        ]
    return ContourBank(segments, recordings[0].sample_rate, recordings[0].hop_length)


@torch.no_grad()
def _validate(
    model: SpeciesModel, recordings: Sequence[Recording], seed: int, with_background: bool
) -> dict[str, Any]:
    """Resynthesise each recording from its own contours; metrics averaged over recordings.

    ``with_background``: the model renders a clean bird, so the recording's measured background
    is added before comparing (as generation does); F0 is tracked on the clean bird.
    """
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    scores: dict[str, list[float]] = {"spectral": [], "f0": [], "loud": []}
    reasons = []
    for rec in recordings:
        t = lambda a: torch.as_tensor(a, device=device)[None]  # noqa: E731
        n = rec.audio.shape[0]
        out, harmonic = model(t(rec.f0_hz), t(rec.loudness_db), t(rec.confidence), n, generator)
        # The harmonic part through the reverb, as it sounds in the output: the learned IR can
        # boost the song's band by 10-15 dB, and the dry part would then read as "gone".
        bird, harmonic = out[0].cpu().numpy(), model.reverb(harmonic)[0].cpu().numpy()
        reason = detect_collapse(bird, harmonic, rec)
        if reason:
            reasons.append(f"{rec.name}: {reason}")
        active = rec.loudness_db >= rec.loudness_db.max() - ACTIVE_RANGE_DB
        heard = bird + render_noise_floor(rec.background, n, rng) if with_background else bird
        # Within the band the recording carries, as the loss looks (see MultiScaleSpectralLoss).
        edge = recorded_band_edge(rec.background, rec.sample_rate)
        scores["spectral"].append(spectral_distance(rec.audio, heard, rec.sample_rate, f_max=edge))
        # Measured as preprocessing measured the recording: the bird above its background.
        heard_loud = bird_activity(
            heard, rec.sample_rate, rec.background, None, rec.hop_length, *rec.band
        )
        scores["loud"].append(loudness_mae_db(rec.loudness_db, heard_loud.loudness_db, active))
        voiced = active & (rec.confidence >= VOICED_THRESHOLD)
        if voiced.any():
            f0_out, _ = estimate_f0(bird, rec.sample_rate, rec.hop_length, *rec.band)
            scores["f0"].append(f0_accuracy(rec.f0_hz, f0_out, voiced))
    model.train()
    return {
        "val_spectral_distance": float(np.mean(scores["spectral"])),
        "f0_within_50_cents": float(np.mean(scores["f0"])) if scores["f0"] else float("nan"),
        "loudness_mae_db": float(np.mean(scores["loud"])),
        # One odd recording (a mistracked F0, a clip of calls) is not a collapse; most are.
        "collapse": (
            f"{len(reasons)}/{len(recordings)} validation recordings, e.g. {reasons[0]}"
            if 2 * len(reasons) > len(recordings)
            else None
        ),
    }


def _write_history(directory: Path, history: list[dict[str, Any]]) -> None:
    if not history:
        return
    keys = list(history[0])

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, keys)
            writer.writeheader()
            writer.writerows(history)

    atomic_write(directory / "history.csv", write)


@dataclass
class _Species:
    """One species' side of training, the same alone (:func:`train_species`) or stacked with
    others (``training.stacked``): its split, architecture, starting point, crop sampler and
    model files."""

    species: str
    output_dir: Path
    train: list[Recording]
    val: list[Recording]
    config: DecoderConfig
    sampler: _CropSampler
    backgrounds: np.ndarray
    warnings: list[str]
    info: dict[str, Any]
    #: A shared prior's weights to start from (``config`` is then the prior's), or None.
    start: dict[str, torch.Tensor] | None = None
    freeze_core: bool = False

    @property
    def val_on(self) -> list[Recording]:
        return self.val or self.train

    @property
    def loss_f_min(self) -> float:
        """Where the training loss starts listening, Hz: below the species' analysis band."""
        return loss_f_min(self.train[0].band[0])

    def fresh_model(self, device: torch.device) -> SpeciesModel:
        """The starting point: random weights (from torch's global generator), or the prior's
        (with its frozen layers)."""
        model = SpeciesModel(self.config).to(device)
        if self.start is not None:
            model.load_state_dict(self.start)
            if self.freeze_core:
                for layer in (model.decoder.input, model.decoder.core):
                    layer.requires_grad_(False)
        return model

    def save(self, model: SpeciesModel, best: dict[str, Any], complete: bool, **extra: Any) -> None:
        """The model directory, with the best metrics so far (an unfinished one says so, and
        has no recorded residuals yet: they are measured once, on the finished weights)."""
        info = {**self.info, "metrics": best, "complete": complete, **extra}
        contours = _contour_bank(self.train, model if complete else None)
        save_species_model(self.output_dir, self.species, model, contours, self.backgrounds, info)


def _prepare(
    recordings: Sequence[Recording],
    output_dir: Path,
    settings: TrainSettings,
    device: torch.device,
    log: Callable[[str], None],
    extra_info: dict[str, Any] | None = None,
    split: tuple[Sequence[Recording], Sequence[Recording]] | None = None,
) -> _Species:
    """Split, architecture, starting point and crop sampler (its own ``seed``-ed generator) of
    one species (see :func:`train_species`)."""
    if not recordings:
        raise ValueError("train_species needs at least one recording")
    species = recordings[0].species
    bands = {r.band for r in [*recordings, *(r for part in split or () for r in part)]}
    if len(bands) > 1:
        # Validation and resynthesis measure the bird in one band: the species' recordings must
        # share it.
        raise ValueError(
            f"{species}: recordings preprocessed with different --f_min/--f_max "
            f"({', '.join(f'{lo:g}-{hi:g} Hz' for lo, hi in sorted(bands))}); preprocess them "
            "again with one band"
        )
    train, val = split or split_by_recordist(recordings, settings.val_fraction, settings.seed)
    train, val = list(train), list(val)
    config = _decoder_config(train, settings.decoder)
    prior = _prior_start(settings.prior, config, device) if settings.prior else None
    if prior is not None:
        config = prior[0]
    frame_rate = config.sample_rate / config.hop_length
    shortest = min(r.f0_hz.shape[0] for r in train) - 2
    sampler = _CropSampler(
        train,
        max(8, min(int(settings.crop_seconds * frame_rate), shortest)),
        np.random.default_rng(settings.seed),
    )
    warnings = data_warnings(train, val, frame_rate)
    for warning in warnings:
        log(f"[{species}] warning: {warning}")
    info = {
        "training_data": {
            "recordings": [r.name for r in train],
            "validation_recordings": [r.name for r in val],
            "validation": (
                "given by the caller"
                if split is not None
                else "held-out stretches (the end of each recording)"
                if _holds_out_stretches(len(recordings), settings.val_fraction)
                else "held-out recordists"
                if val
                else "training recordings (too few to hold out)"
            ),
            "recordists": sorted({r.recordist for r in recordings}),
            "band": list(recordings[0].band),
            "seconds": round(sum(r.seconds for r in train), 2),
            "voiced_seconds": round(
                sum(float(np.sum(r.confidence >= VOICED_THRESHOLD)) for r in train) / frame_rate, 2
            ),
            "warnings": warnings,
        },
        "settings": {k: v for k, v in asdict(settings).items() if k != "decoder"},
        **({"prior": prior[2]} if prior else {}),
        **(extra_info or {}),
    }
    # Validation recordings stay out of the model directory entirely (contours, backgrounds), so
    # generated songs can be compared with them as unseen data.
    backgrounds = np.stack([r.background for r in train])
    return _Species(
        start=None if prior is None else prior[1],
        freeze_core=prior is not None and settings.prior_freeze == "core",
        species=species,
        output_dir=output_dir,
        train=train,
        val=val,
        config=config,
        sampler=sampler,
        backgrounds=backgrounds,
        warnings=warnings,
        info=info,
    )


@dataclass
class _Progress:
    """Where one species' training stands between epochs (what its checkpoint keeps)."""

    lr: float
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    stale: int = 0

    @classmethod
    def from_checkpoint(cls, meta: dict[str, Any]) -> _Progress:
        return cls(meta["lr"], meta["history"], meta["best"], meta["restarts"], meta["stale"])

    def running(self, settings: TrainSettings) -> bool:
        return len(self.history) < settings.epochs and self.stale < settings.patience

    def end_epoch(
        self,
        run: _Species,
        settings: TrainSettings,
        loss: float,
        metrics: dict[str, Any],
        seconds: float,
        log: Callable[[str], None],
    ) -> Literal["collapsed", "improved", "stale"]:
        """Record an epoch (``metrics`` from :func:`_validate`). A collapse lowers the learning
        rate for a restart from the best state, or, with the restarts used up, marks the species
        failed and raises :class:`CollapseError`."""
        species = run.species
        collapse = metrics.pop("collapse")
        row = {
            "epoch": len(self.history) + 1,
            "loss": loss,
            **metrics,
            "lr": self.lr,
            "collapsed": int(collapse is not None),
            "seconds": round(seconds, 2),
        }
        self.history.append(row)
        log(
            f"[{species}] epoch {row['epoch']}/{settings.epochs} loss {row['loss']:.3f} "
            f"val_spec {row['val_spectral_distance']:.3f} f0@50c {row['f0_within_50_cents']:.3f} "
            f"loud_mae {row['loudness_mae_db']:.2f} dB ({row['seconds']:.0f} s)"
            + (f"  COLLAPSE: {collapse}" if collapse else "")
        )
        if collapse:
            if self.restarts >= settings.max_restarts:
                raise _failed(
                    run.output_dir,
                    species,
                    f"{species}: training collapsed {self.restarts + 1} times ({collapse}); "
                    "try more or cleaner recordings, or a lower --learning_rate",
                )
            self.restarts += 1
            self.lr *= 0.3
            log(f"[{species}] restarting from the best state with learning rate {self.lr:.2e}")
            return "collapsed"
        if not self.best or row["val_spectral_distance"] < self.best["val_spectral_distance"]:
            self.best, self.stale = dict(row), 0
            return "improved"
        self.stale += 1
        return "stale"


def _finish(
    run: _Species,
    model: SpeciesModel,
    best_state: dict[str, torch.Tensor] | None,
    progress: _Progress,
    wall_seconds: float,
) -> TrainResult:
    """Save the best state as the finished model directory (or mark the species failed)."""
    if best_state is None:
        raise _failed(
            run.output_dir, run.species, f"{run.species}: no epoch produced a usable model"
        )
    model.load_state_dict(best_state)
    run.save(
        model,
        progress.best,
        complete=True,
        epochs_run=len(progress.history),
        restarts=progress.restarts,
    )
    return TrainResult(
        run.species,
        run.output_dir,
        progress.history,
        progress.best,
        progress.restarts,
        wall_seconds,
        run.warnings,
    )


def train_species(
    recordings: Sequence[Recording],
    output_dir: str | Path,
    settings: TrainSettings | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = tqdm.write,
    on_epoch_end: Callable[[int], None] | None = None,
    extra_info: dict[str, Any] | None = None,
    split: tuple[Sequence[Recording], Sequence[Recording]] | None = None,
) -> TrainResult:
    """Train one species model on ``recordings`` (one species) into ``output_dir``.

    The best validation epoch that is not collapsed is saved as the model directory after every
    improvement; the last state goes to ``output_dir/checkpoint`` every epoch for ``resume``.
    Raises :class:`CollapseError` when restarts with lower learning rates keep collapsing.
    ``extra_info`` is stored in the model's ``config.json`` (e.g. a fingerprint of the data).
    ``split`` = ``(train, validation)`` replaces :func:`split_by_recordist`'s. With
    ``settings.prior`` the model starts from that prior's weights (``config.json`` records which,
    under ``"prior"``); a prior of another architecture raises ``ModelFileError`` naming it.
    """
    settings = settings or TrainSettings()
    output_dir = Path(output_dir)
    started = time.perf_counter()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = _resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    run = _prepare(recordings, output_dir, settings, device, log, extra_info, split)
    species, sampler = run.species, run.sampler
    model = run.fresh_model(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    loss_fn = MultiScaleSpectralLoss(model.config.sample_rate, f_min=run.loss_f_min)

    state = _Progress(settings.learning_rate)
    best_state: dict[str, torch.Tensor] | None = None
    checkpoint_dir = output_dir / "checkpoint"
    if resume and has_checkpoint(checkpoint_dir):
        meta = load_checkpoint(checkpoint_dir, model, optimizer, generator)
        sampler.rng.bit_generator.state = meta["numpy_rng"]
        state = _Progress.from_checkpoint(meta)
        # The checkpoint is written after the epoch's model save, so a best it records is saved.
        best_state = load_weights(output_dir, device) if state.best else None
        log(f"[{species}] resuming at epoch {len(state.history) + 1}/{settings.epochs}")

    bar = tqdm(
        total=settings.epochs, initial=len(state.history), desc=species, disable=not progress
    )
    while state.running(settings):
        epoch_start = time.perf_counter()
        losses = []
        model.train()
        for _ in range(settings.steps_per_epoch):
            f0, loud, conf, audio, floors, edges = sampler.batch(settings.batch_size)
            t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
            output, _ = model(t(f0), t(loud), t(conf), audio.shape[1], generator)
            loss = loss_fn(
                output,
                t(audio),
                [t(f) for f in floors] if settings.background_in_loss else None,
                band_edges=torch.as_tensor(edges),  # on the host, where the loss reads them
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
            optimizer.step()
            losses.append(float(loss.detach()))
        metrics = _validate(model, run.val_on, settings.seed, settings.background_in_loss)
        seconds = time.perf_counter() - epoch_start
        outcome = state.end_epoch(run, settings, float(np.mean(losses)), metrics, seconds, log)
        if outcome == "collapsed":
            if best_state is not None:
                model.load_state_dict(best_state)
            else:
                model = run.fresh_model(device)
            optimizer = torch.optim.Adam(model.parameters(), lr=state.lr)
        elif outcome == "improved":
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            run.save(model, state.best, complete=False)
        # history.csv before the checkpoint: a crash between them leaves a history one epoch
        # ahead, which the resumed run rewrites; the other order could leave it behind for good.
        _write_history(output_dir, state.history)
        meta = {**asdict(state), "numpy_rng": sampler.rng.bit_generator.state}
        save_checkpoint(checkpoint_dir, model, optimizer, meta, generator)
        bar.update(1)
        if on_epoch_end is not None:
            on_epoch_end(len(state.history))
    bar.close()
    return _finish(run, model, best_state, state, time.perf_counter() - started)


def _failed(output_dir: Path, species: str, message: str) -> CollapseError:
    """Mark the species' model directory failed (an earlier epoch's save must not pass for a
    trained model) and return the error to raise."""
    mark_failed(output_dir, species, message)
    return CollapseError(message)


def load_species_recordings(processed_path: str | Path, species: str) -> list[Recording]:
    files = sorted((Path(processed_path) / species).glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"{Path(processed_path) / species}: no preprocessed recordings")
    return [load_processed(f) for f in files]


# The best epoch's numbers in train_folder's summary rows.
_SUMMARY_METRICS = ("epoch", "val_spectral_distance", "f0_within_50_cents", "loudness_mae_db")


def _summary(species: str, result: TrainResult | CollapseError) -> dict[str, Any]:
    """A species' line of ``training_summary.json``."""
    if isinstance(result, CollapseError):
        return {"species": species, "status": "collapsed", "reason": str(result)}
    return {
        "species": species,
        "status": "trained",
        "wall_seconds": round(result.wall_seconds, 1),
        "restarts": result.restarts,
        "warnings": result.warnings,
        **{k: result.best[k] for k in _SUMMARY_METRICS},
    }


def _train_one(processed_path, output_path, species, settings, resume, progress) -> dict[str, Any]:
    try:
        result = train_species(
            load_species_recordings(processed_path, species),
            Path(output_path) / species,
            settings,
            resume=resume,
            progress=progress,
        )
    except CollapseError as error:
        return _summary(species, error)
    return _summary(species, result)


def _resolve_together(together: bool | Literal["auto"], jobs: int, device: str) -> bool:
    """Whether ``train_folder`` stacks its species (``"auto"``: on CUDA with ``jobs=1``)."""
    if together not in (True, False, "auto"):
        raise ValueError(f"together must be True, False or 'auto', got {together!r}")
    if together is True and jobs != 1:
        raise ValueError(f"together=True trains in one process; got jobs={jobs}")
    if together == "auto":
        return jobs == 1 and _resolve_device(device).type == "cuda"
    return together


def _shared_prior(
    processed_path: Path,
    output_path: str | Path,
    names: list[str],
    settings: TrainSettings,
    resume: bool,
    progress: bool,
) -> tuple[TrainSettings, dict[str, Any]]:
    """Train the prior of ``names`` for :func:`train_folder`: the settings that start species
    from it (unchanged if it collapsed: they train from scratch) and its summary row."""
    # Imported here: training.prior builds on this module's train_species.
    from .prior import PRIOR_DIR, train_prior

    started = time.perf_counter()
    pooled = [r for name in names for r in load_species_recordings(processed_path, name)]
    prior_dir = Path(output_path) / PRIOR_DIR
    try:
        train_prior(pooled, prior_dir, settings, resume=resume, progress=progress)
    except CollapseError as error:
        tqdm.write(f"[{PRIOR_DIR}] {error}; species train from scratch")
        return settings, {"species": PRIOR_DIR, "status": "collapsed", "reason": str(error)}
    best = load_prior(prior_dir).info["metrics"]
    row = {
        "species": PRIOR_DIR,
        "status": "trained",
        "wall_seconds": round(time.perf_counter() - started, 1),
        **{k: best[k] for k in _SUMMARY_METRICS},
    }
    return replace(settings, prior=str(prior_dir)), row


def train_folder(
    processed_path: str | Path,
    output_path: str | Path,
    settings: TrainSettings | None = None,
    species: Iterable[str] | None = None,
    jobs: int = 1,
    resume: bool = False,
    progress: bool = True,
    prior: Literal["none", "shared"] = "none",
    together: bool | Literal["auto"] = "auto",
) -> list[dict[str, Any]]:
    """Train every species under ``processed_path`` (or ``species``), ``jobs`` at a time, or
    ``together``: all at once, stacked (``training.stacked.train_stacked``, the same models).
    ``"auto"`` stacks them on a CUDA device with ``jobs=1`` and trains one at a time on the CPU,
    where stacking measured no faster (README, "Training many species at once").

    ``prior="shared"`` first trains one model on the recordings of all those species
    (``training.prior.train_prior``, into ``output_path/__prior__``, resumable like a species)
    and starts every species from it; ``settings.prior`` names an existing prior instead.
    """
    settings = settings or TrainSettings()
    processed_path = Path(processed_path)
    names = (
        sorted(species)
        if species
        else sorted(p.name for p in processed_path.iterdir() if p.is_dir() and any(p.glob("*.npz")))
    )
    if not names:
        raise FileNotFoundError(f"{processed_path}: no preprocessed species folders")
    if prior not in ("none", "shared"):
        raise ValueError(f"prior must be none or shared, got {prior!r}")
    stack = _resolve_together(together, jobs, settings.device)
    prior_rows = []
    if prior == "shared":
        settings, row = _shared_prior(
            processed_path, output_path, names, settings, resume, progress
        )
        prior_rows.append(row)
    if stack:
        # Imported here: stacked training builds on this module.
        from .stacked import train_stacked

        stacked = train_stacked(
            [load_species_recordings(processed_path, name) for name in names],
            output_path,
            settings,
            resume=resume,
            progress=progress,
        )
        results = [_summary(name, r) for name, r in zip(names, stacked, strict=True)]
    else:
        if jobs != 1 and settings.threads is None:
            # Split the cores between workers instead of oversubscribing them.
            settings = replace(settings, threads=max(1, (os.cpu_count() or 1) // max(1, jobs)))
        results = Parallel(n_jobs=jobs)(
            delayed(_train_one)(
                processed_path, output_path, name, settings, resume, progress and jobs == 1
            )
            for name in names
        )
    results = prior_rows + results
    Path(output_path).mkdir(parents=True, exist_ok=True)
    atomic_write(
        Path(output_path) / "training_summary.json",
        lambda tmp: tmp.write_text(json.dumps(results, indent=2), "utf-8"),
    )
    return results
