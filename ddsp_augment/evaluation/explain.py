"""What a species model learned, on one page: the data behind each panel, and the page itself.

``explain_models("models/", "results/explain/", real_path="data/raw/")`` writes
``<species>.png`` per species and an ``index.html`` linking them. Each page shows, top to bottom:

1. a real clip, its resynthesis and two generated songs as spectrograms on one dB scale (re the
   loudest bin of the four), so levels compare as well as shapes; each label says which noise
   the clip was rendered with (the recorded residual by default, the decoder's for a model
   without one);
2. the contours behind the resynthesis: F0 with the tracker's voicing confidence, the bird's
   loudness (above the clip's background, as the model learned it) and the recording's
   background floor;
3. the decoder's harmonic controls over time: harmonic distribution (as rendered, partials
   above Nyquist removed) and overall amplitude;
4. the noise two ways, for the same frames and on one dB scale: the filtered-noise magnitudes
   the decoder predicts (``noise="model"``) next to the recorded residual those frames carry
   (``noise="recorded"``, ``features.residual``: what the model's harmonics leave of the bird
   above its background; a real clip's is measured as its resynthesis renders it), and both
   averaged over the sung frames as spectra. A model saved without a residual says so
   (:data:`NO_RESIDUAL`) instead of drawing one;
5. the learned reverb: impulse response and its energy decay curve with an RT60 estimate;
6. the training curves from ``history.csv`` with the chosen epoch and collapse restarts marked;
7. the species' jitter ranges (pitch, tempo, vibrato, gain) applied to one training phrase.

With no real recording the model's own training contours (``contours.npz``) and their stored
residual stand in for the real clip's, and the panels say so. The ``*_view`` / ``read_*``
functions compute each panel's data (pure, seeded); :func:`draw_page` draws a
:class:`ExplainPage`; tests inspect its Axes.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import math
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..constants import LOUDNESS_FLOOR_DB, VOICED_THRESHOLD
from ..dsp.functional import remove_above_nyquist
from ..dsp.spectral import stft_magnitude
from ..features.activity import bird_activity
from ..features.background import FLOOR_FFT_SIZE, noise_floor, render_noise_floor
from ..features.contours import ContourBank
from ..features.loudness import loudness_db
from ..features.pitch import estimate_f0
from ..features.residual import RESIDUAL_FLOOR_DB, measure_residual
from ..io import atomic_write
from ..model.species_model import SpeciesModel
from ..model.storage import analysis_band, find_model_dirs
from ..plotting import draw_spectrogram, save_figure
from ..sampling.bank import SpeciesBank
from ..sampling.generate import real_clips
from ..sampling.jitter import JitterConfig, jitter_contours, shift_pitch

__all__ = [
    "HISTORY_CURVES",
    "NEUTRAL_JITTER",
    "ContourView",
    "ControlsView",
    "ExplainPage",
    "JitterView",
    "NO_RESIDUAL",
    "NoiseView",
    "ReverbView",
    "TrainingCurves",
    "background_loudness_db",
    "controls_view",
    "draw_page",
    "explain_models",
    "explain_species",
    "jitter_view",
    "noise_view",
    "pick_phrase",
    "read_history",
    "reverb_view",
    "shared_spectrograms",
    "training_excerpt",
]

#: history.csv columns drawn as training curves, with their axis labels.
HISTORY_CURVES = {
    "loss": "training loss (multi-scale spectral)",
    "val_spectral_distance": "validation spectral distance",
    "f0_within_50_cents": "F0 accuracy (≤ 50 cents)",
    "loudness_mae_db": "loudness error (dB)",
}
#: No jitter at all: a plain resynthesis, and the base each jitter dimension is shown against.
NEUTRAL_JITTER = JitterConfig(
    pitch_cents=0.0,
    tempo=(1.0, 1.0),
    vibrato_cents=(0.0, 0.0),
    gain_db=(0.0, 0.0),
    envelope_warp=0.0,
)
_N_FFT = 512  # plotting.spectrogram_db's resolution: 16 ms window, 4 ms hop at 32 kHz
_TOP_HZ = 16000.0
_RANGE_DB = 80.0
_HARMONIC_RANGE_DB = 60.0
_GAP_SECONDS = 0.1  # silence between training segments laid end to end
_NO_REAL = "no real recording given"


# ---------------------------------------------------------------------------------------------
# Panel data


def shared_spectrograms(
    clips: Sequence[np.ndarray], sample_rate: int
) -> tuple[list[np.ndarray], float]:
    """dB spectrograms ``[bins, frames]`` of ``clips`` (each ``[samples]``) on one scale.

    0 dB is the loudest bin of any clip and everything is floored at −80 dB, so a quiet
    resynthesis looks quiet next to its recording. Hann window of 512, hop 128, bins up to
    ``min(16 kHz, Nyquist)``. Returns the spectrograms and that top frequency (Hz).
    """
    if not clips or any(np.asarray(c).size == 0 for c in clips):
        raise ValueError("shared_spectrograms needs at least one clip and no empty clip")
    top_hz = min(_TOP_HZ, sample_rate / 2)
    n_bins = int(np.floor(top_hz / (sample_rate / _N_FFT))) + 1
    db = []
    for clip in clips:
        audio = torch.from_numpy(np.asarray(clip, np.float32).ravel())[None]
        if audio.shape[1] < _N_FFT:
            audio = torch.nn.functional.pad(audio, (0, _N_FFT - audio.shape[1]))
        magnitude = stft_magnitude(audio, _N_FFT)[0, :n_bins].numpy().astype(np.float64)
        db.append(20 * np.log10(magnitude + 1e-10))
    reference = max(float(d.max()) for d in db)
    return [np.maximum(d - reference, -_RANGE_DB).astype(np.float32) for d in db], top_hz


@dataclass(frozen=True)
class ContourView:
    """Contours behind a clip, ``[frames]`` float32 each, at ``frame_rate`` Hz.

    ``background_db`` is the loudness (same A-weighted measure) of noise with the recording's
    measured background floor: what the bird must rise above. ``source`` says where the
    contours come from; ``from_real`` is False for training contours.
    """

    f0_hz: np.ndarray
    loudness_db: np.ndarray
    confidence: np.ndarray
    frame_rate: float
    background_db: float
    source: str
    from_real: bool

    @property
    def time_s(self) -> np.ndarray:
        return np.arange(self.f0_hz.shape[0]) / self.frame_rate


def background_loudness_db(
    floor: np.ndarray, sample_rate: int, hop_length: int, seconds: float = 2.0, seed: int = 0
) -> float:
    """Median loudness (dB, :func:`loudness_db`) of noise rendered with ``floor [1025]``."""
    noise = render_noise_floor(floor, int(seconds * sample_rate), np.random.default_rng(seed))
    return float(np.median(loudness_db(noise, sample_rate, hop_length)))


def training_excerpt(
    contours: ContourBank, n_frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, np.ndarray | None]:
    """``n_frames`` of training contours: the segments of the recording with the most voiced
    frames, in order, 0.1 s of silence between them (cut, or padded with silence, to fit).

    Returns ``(f0_hz, loudness_db, confidence, recording, residual_db)``: arrays ``[n_frames]``
    float32, and the segments' recorded residual ``[n_frames, bands]`` float32 dB (None when
    ``contours`` has none). Silent frames hold the previous F0 (finite, > 0), the loudness
    floor, zero confidence and an empty residual (``RESIDUAL_FLOOR_DB``).
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    voiced: dict[str, int] = {}
    for segment in contours.segments:
        count = int(np.sum(segment.confidence >= VOICED_THRESHOLD))
        voiced[segment.recording] = voiced.get(segment.recording, 0) + count
    recording = max(voiced, key=lambda name: (voiced[name], name))
    gap = int(round(_GAP_SECONDS * contours.frame_rate))
    segments = [s for s in contours.segments if s.recording == recording]
    # Each contour with the value its silent frames hold (F0: the segment's last).
    parts: list[list[tuple[np.ndarray, Any]]] = [
        [(s.f0_hz, s.f0_hz[-1]) for s in segments],
        [(s.loudness_db, LOUDNESS_FLOOR_DB) for s in segments],
        [(s.confidence, 0.0) for s in segments],
    ]
    if contours.has_residual:
        parts.append([(s.residual_db, RESIDUAL_FLOOR_DB) for s in segments])
    arrays = []
    for contour in parts:
        pieces = []
        for values, silent in contour:
            pieces += [values, np.full((gap, *values.shape[1:]), silent, np.float32)]
        laid = np.concatenate(pieces).astype(np.float32)
        if laid.shape[0] < n_frames:
            pad = np.full((n_frames - laid.shape[0], *laid.shape[1:]), contour[-1][1], np.float32)
            laid = np.concatenate([laid, pad])
        arrays.append(laid[:n_frames])
    residual = arrays[3] if contours.has_residual else None
    return arrays[0], arrays[1], arrays[2], recording, residual


@dataclass(frozen=True)
class ControlsView:
    """The decoder's outputs for one set of contours, ready to draw (frames along the last axis).

    harmonic_db: ``[n_harmonics, frames]`` share of the harmonic amplitude per partial (dB re the
    whole, partials at or above Nyquist removed as the synthesiser does, floor −60 dB);
    amplitude_db: ``[frames]`` overall harmonic amplitude (dB re full scale);
    noise_db: ``[n_noise_bands, frames]`` filtered-noise magnitudes (dB re full scale), bands
    spaced linearly from 0 to Nyquist.
    """

    harmonic_db: np.ndarray
    amplitude_db: np.ndarray
    noise_db: np.ndarray
    frame_rate: float
    nyquist_hz: float


def _db(values: np.ndarray, floor_db: float) -> np.ndarray:
    return np.maximum(20 * np.log10(np.maximum(values, 1e-12)), floor_db).astype(np.float32)


def controls_view(
    model: SpeciesModel, f0_hz: np.ndarray, loudness: np.ndarray, confidence: np.ndarray
) -> ControlsView:
    """Run ``model``'s decoder on ``[frames]`` contours → :class:`ControlsView`."""
    cfg = model.config
    device = next(model.parameters()).device
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)[None]  # noqa: E731
    with torch.inference_mode():
        controls = model.decoder(as_tensor(f0_hz), as_tensor(loudness), as_tensor(confidence))
        distribution = remove_above_nyquist(
            controls.harmonic_distribution, controls.f0_hz, cfg.sample_rate
        )
    return ControlsView(
        harmonic_db=_db(distribution[0].cpu().numpy().T, -_HARMONIC_RANGE_DB),
        amplitude_db=_db(controls.amplitude[0].cpu().numpy(), LOUDNESS_FLOOR_DB),
        noise_db=_db(controls.noise_magnitudes[0].cpu().numpy().T, LOUDNESS_FLOOR_DB),
        frame_rate=cfg.sample_rate / cfg.hop_length,
        nyquist_hz=cfg.sample_rate / 2,
    )


#: What the noise panels and labels say for a model saved without a recorded residual.
NO_RESIDUAL = (
    "no recorded residual in this model (trained before ddsp-augment stored one or measured "
    "it through the reverb, or its training is unfinished: retrain it to add one)"
)


@dataclass(frozen=True)
class NoiseView:
    """The page clip's noise two ways, as filtered-noise gains (dB re unit white noise: the
    synthesiser's magnitudes, so both read on one scale; frames along the last axis).

    decoder_db: ``[n_noise_bands, frames]`` the decoder's noise branch (``noise="model"``),
    floor −100 dB; residual_db: ``[residual_bands, frames]`` the recorded residual of the same
    frames as the resynthesis renders it (``noise="recorded"``): ``RESIDUAL_FLOOR_DB`` where
    the bird is silent (loudness at the floor), None when there is none to show. Bands of both
    run linearly from 0 to ``nyquist_hz``. top_db: the louder of the two's loudest band, the top
    of their shared colour scale (80 dB deep). decoder_spectrum_db / residual_spectrum_db:
    ``[bands]`` their power averaged over the ``sung_frames`` frames where the bird sings (every
    frame when it never does), in dB. source: where the residual comes from; missing: why the
    model has none (``NO_RESIDUAL``), else None.
    """

    decoder_db: np.ndarray
    residual_db: np.ndarray | None
    top_db: float
    decoder_spectrum_db: np.ndarray
    residual_spectrum_db: np.ndarray | None
    sung_frames: int
    frame_rate: float
    nyquist_hz: float
    source: str
    missing: str | None


def _mean_power_db(db: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``db [bands, frames]`` → ``[bands]`` dB of the power averaged over ``frames`` (bool)."""
    power = 10.0 ** (db[:, frames].astype(np.float64) / 10.0)
    return (10.0 * np.log10(power.mean(axis=1))).astype(np.float32)


def noise_view(
    controls: ControlsView,
    loudness: np.ndarray,
    residual_db: np.ndarray | None,
    source: str,
    missing: str | None = None,
) -> NoiseView:
    """The decoder's noise (``controls.noise_db``) next to the recorded residual of the same
    ``[frames]`` (``residual_db [frames, bands]`` dB as ``features.residual`` measures it, or
    None) → :class:`NoiseView`. Frames whose ``loudness [frames]`` is at the floor are silent in
    the residual, as generation and resynthesis render them.
    """
    frames = controls.noise_db.shape[1]
    if np.shape(loudness) != (frames,):
        raise ValueError(f"loudness must be [{frames}] frames, got {np.shape(loudness)}")
    sung = np.asarray(loudness) > LOUDNESS_FLOOR_DB
    averaged = sung if sung.any() else np.ones(frames, bool)
    residual = spectrum = None
    top_db = float(controls.noise_db.max())
    if residual_db is not None:
        if np.ndim(residual_db) != 2 or np.shape(residual_db)[0] != frames:
            raise ValueError(f"residual_db must be [{frames}, bands], got {np.shape(residual_db)}")
        residual = np.where(sung, np.asarray(residual_db, np.float32).T, RESIDUAL_FLOOR_DB)
        residual = residual.astype(np.float32)
        spectrum = _mean_power_db(residual, averaged)
        top_db = max(top_db, float(residual.max()))
    return NoiseView(
        decoder_db=controls.noise_db,
        residual_db=residual,
        top_db=top_db,
        decoder_spectrum_db=_mean_power_db(controls.noise_db, averaged),
        residual_spectrum_db=spectrum,
        sung_frames=int(sung.sum()),
        frame_rate=controls.frame_rate,
        nyquist_hz=controls.nyquist_hz,
        source=source,
        missing=missing,
    )


@dataclass(frozen=True)
class ReverbView:
    """A wet impulse response ``ir [taps]`` and its decay.

    edc_db: ``[taps]`` Schroeder energy decay curve (backward-integrated energy, dB re its
    start). Decay times are the time to fall 60 dB, extrapolated from a line fitted to part of
    the EDC: edt_s from 0 to −10 dB (early decay time: what one hears of a short sound),
    rt60_s from −5 to −25 dB (T20); NaN when the EDC never falls that far. wet_db: the IR's
    energy relative to the dry path (a unit impulse).
    """

    ir: np.ndarray
    sample_rate: int
    edc_db: np.ndarray
    edt_s: float
    rt60_s: float
    wet_db: float

    @property
    def time_s(self) -> np.ndarray:
        return np.arange(self.ir.shape[0]) / self.sample_rate


def _decay_time(edc_db: np.ndarray, sample_rate: int, top_db: float, bottom_db: float) -> float:
    """60 dB decay time from a least-squares line through the EDC between two levels."""
    span = np.flatnonzero((edc_db <= top_db) & (edc_db >= bottom_db))
    if edc_db.min() > bottom_db or span.size < 2:
        return float("nan")
    slope = np.polyfit(span / sample_rate, edc_db[span], 1)[0]
    return float(-60.0 / slope) if slope < 0 else float("nan")


def reverb_view(ir: np.ndarray, sample_rate: int) -> ReverbView:
    """Decay of an impulse response ``ir [taps]`` at ``sample_rate`` → :class:`ReverbView`."""
    ir = np.asarray(ir, np.float64).ravel()
    if ir.size < 2 or not np.all(np.isfinite(ir)):
        raise ValueError(f"ir must be a finite [taps] array with >= 2 taps, got shape {ir.shape}")
    energy = ir**2
    total = float(energy.sum())
    if total == 0:
        raise ValueError("ir is all zeros: no decay to measure")
    edc = np.cumsum(energy[::-1])[::-1]
    edc_db = 10 * np.log10(np.maximum(edc / total, 1e-15))
    return ReverbView(
        ir=ir.astype(np.float32),
        sample_rate=sample_rate,
        edc_db=edc_db.astype(np.float32),
        edt_s=_decay_time(edc_db, sample_rate, 0.0, -10.0),
        rt60_s=_decay_time(edc_db, sample_rate, -5.0, -25.0),
        wet_db=10 * math.log10(total),
    )


@dataclass(frozen=True)
class TrainingCurves:
    """Per-epoch training metrics (each ``[epochs]`` float64, NaN where not measured).

    chosen_epoch: the epoch whose weights were kept (best validation spectral distance);
    restart_epochs: epochs whose validation collapsed — training restarted after each from the
    best state so far with a lower learning rate.
    """

    epoch: np.ndarray
    curves: dict[str, np.ndarray]
    chosen_epoch: int | None
    restart_epochs: np.ndarray


def read_history(path: str | Path, chosen_epoch: int | None = None) -> TrainingCurves:
    """Read a model's ``history.csv`` (as written by training) → :class:`TrainingCurves`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training history")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    needed = {"epoch", "collapsed", *HISTORY_CURVES}
    if not rows or not needed <= set(rows[0]):
        raise ValueError(f"{path}: expected a history with columns {sorted(needed)}")

    def column(name: str) -> np.ndarray:
        return np.array([float(row[name]) if row[name] else np.nan for row in rows])

    epoch = column("epoch")
    return TrainingCurves(
        epoch=epoch,
        curves={name: column(name) for name in HISTORY_CURVES},
        chosen_epoch=chosen_epoch,
        restart_epochs=epoch[column("collapsed") > 0],
    )


def pick_phrase(
    contours: ContourBank, max_seconds: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``max_seconds`` stretch of a training segment with the most voiced frames.

    Returns ``(f0_hz, loudness_db, confidence)``, each ``[frames]`` float32 (a copy).
    """
    length = max(1, int(round(max_seconds * contours.frame_rate)))
    best: tuple[int, Any, int] | None = None
    for segment in contours.segments:
        voiced = np.concatenate([[0], np.cumsum(segment.confidence >= VOICED_THRESHOLD)])
        width = min(length, len(segment))
        counts = voiced[width:] - voiced[:-width]
        start = int(np.argmax(counts))
        if best is None or counts[start] > best[0]:
            best = (int(counts[start]), segment, start)
    assert best is not None  # a ContourBank always has a segment
    _, segment, start = best
    window = slice(start, start + length)
    return tuple(
        np.array(getattr(segment, name)[window], np.float32)
        for name in ("f0_hz", "loudness_db", "confidence")
    )


@dataclass(frozen=True)
class JitterView:
    """One phrase and what each jitter dimension does to it, at its range's extremes.

    variants: ``{"pitch" | "tempo" | "vibrato": [(label, f0_hz [frames'])], "gain": [(label,
    loudness_db [frames])]}``; tempo variants stretch what ``config.tempo_scope`` says (by
    default the gaps between syllables: ``round(sung + (frames - sung) / tempo)`` frames).
    """

    config: JitterConfig
    frame_rate: float
    f0_hz: np.ndarray
    loudness_db: np.ndarray
    variants: dict[str, list[tuple[str, np.ndarray]]]


def jitter_view(
    phrase: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: JitterConfig,
    frame_rate: float,
    seed: int = 0,
) -> JitterView:
    """Apply each of ``config``'s pitch, tempo, vibrato and gain ranges alone to ``phrase``.

    Pitch: the shift at ±``pitch_cents``. Tempo, vibrato and gain go through
    :func:`jitter_contours` with every other dimension neutral: tempo at both ends of its
    range; vibrato at its deepest, at the slowest and fastest rate (random phase from
    ``seed``); gain at both ends of its range.
    """
    f0, loud, conf = (np.asarray(a, np.float32) for a in phrase)
    rng = np.random.default_rng(seed)

    def alone(column: int, **fields: Any) -> np.ndarray:
        only = dataclasses.replace(NEUTRAL_JITTER, **fields)
        return jitter_contours(f0, loud, conf, only, rng, frame_rate)[column]

    depth = config.vibrato_cents[1]
    variants = {
        "pitch": [
            (f"{cents:+.0f} cents", shift_pitch(f0, cents))
            for cents in (-config.pitch_cents, config.pitch_cents)
        ],
        "tempo": [
            (f"×{t:.2f}", alone(0, tempo=(t, t), tempo_scope=config.tempo_scope))
            for t in config.tempo
        ],
        "vibrato": [
            (
                f"±{depth:.0f} cents at {rate:.0f} Hz",
                alone(0, vibrato_cents=(depth, depth), vibrato_hz=(rate, rate)),
            )
            for rate in config.vibrato_hz
        ],
        "gain": [(f"{g:+.1f} dB", alone(1, gain_db=(g, g))) for g in config.gain_db],
    }
    return JitterView(config, frame_rate, f0, loud, variants)


@dataclass(frozen=True)
class ExplainPage:
    """Everything one species page shows (see the module docstring for the panels).

    spectrograms: ``[(label, dB [bins, frames] or None)]`` — None where there is no clip (no
    real recording given); all on one scale from :func:`shared_spectrograms`.
    """

    species: str
    spectrograms: list[tuple[str, np.ndarray | None]]
    seconds: float
    top_hz: float
    contours: ContourView
    controls: ControlsView
    noise: NoiseView
    reverb: ReverbView
    curves: TrainingCurves | None
    jitter: JitterView
    summary: str


def _summary(info: dict[str, Any], reverb: ReverbView) -> str:
    data = info.get("training_data", {})
    metrics = info.get("metrics", {})
    parts = [
        f"{len(data.get('recordings', []))} training recordings "
        f"({data.get('seconds', float('nan')):.1f} s, {data.get('voiced_seconds', 0):.1f} s "
        f"voiced), validation on {data.get('validation', '?')}",
    ]
    if metrics:
        parts.append(
            f"kept epoch {metrics.get('epoch')} of {info.get('epochs_run', '?')}: "
            f"val spectral distance {metrics.get('val_spectral_distance', float('nan')):.2f}, "
            f"F0 accuracy {metrics.get('f0_within_50_cents', float('nan')):.2f}, "
            f"loudness error {metrics.get('loudness_mae_db', float('nan')):.1f} dB, "
            f"{info.get('restarts', 0)} restart(s)"
        )
    parts.append(
        f"learned reverb: EDT {_ms(reverb.edt_s)}, RT60 {_ms(reverb.rt60_s)}, "
        f"{reverb.wet_db:.1f} dB re dry"
    )
    return "\n".join(parts)


def explain_species(
    bank: SpeciesBank,
    species: str,
    real_clip: tuple[str, np.ndarray] | None = None,
    seconds: float = 3.0,
    seed: int = 0,
    no_real: str = _NO_REAL,
) -> ExplainPage:
    """Compute every panel of ``species``' page.

    ``real_clip`` is ``(name, audio [samples])`` at the model's sample rate; the page's clips
    then have its length rather than ``seconds``. Its contours are tracked as
    :meth:`SpeciesBank.resynthesize` tracks them (the bird's loudness above the clip's
    background), and its recorded residual is measured against the model's harmonics. Without
    one, the first panels use the model's training contours and their stored residual
    (:func:`training_excerpt`) and the panels say why with ``no_real``. Generated songs are the
    clean bird, ``bank.sample(..., seed=seed)`` with its default ``noise="recorded"`` (the
    decoder's noise for a model without a recorded residual, as ``sample`` falls back to).
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    entry = bank.entry(species)
    model = entry.model
    sr, hop = model.config.sample_rate, model.config.hop_length
    frame_rate = sr / hop
    n_samples = int(round(seconds * sr))
    data = entry.info.get("training_data", {})
    stored = entry.contours.has_residual
    if real_clip is not None:
        name, audio = real_clip[0], np.asarray(real_clip[1], np.float32)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"real_clip {name!r}: expected non-empty [samples], got {audio.shape}")
        n_samples, seconds = audio.size, audio.size / sr
        band = analysis_band(entry.info)  # as its training recordings were measured
        f0, conf = estimate_f0(audio, sr, hop, *band)
        # As resynthesize: no background to measure in under half an analysis window.
        short = audio.size <= FLOOR_FFT_SIZE // 2
        floor = np.zeros(FLOOR_FFT_SIZE // 2 + 1, np.float32) if short else noise_floor(audio)
        loud = bird_activity(audio, sr, floor, conf, hop, *band).loudness_db
        residual = measure_residual(audio, model.harmonic_part(f0, loud, conf, audio.size), hop)
        stem = Path(name).stem
        if stem in data.get("recordings", []):
            seen = "a training recording"
        elif stem in data.get("validation_recordings", []):
            seen = "held out for validation"
        else:
            seen = "not seen in training"
        source = f"real clip {name} ({seen})"
        residual_source = f"measured on {name}, as its resynthesis renders it"
        first = (f"real: {name}", audio)
        second = (
            "its resynthesis\nnoise: the clip's own recorded residual",
            bank.resynthesize(species, audio, sr, seed, jitter=NEUTRAL_JITTER),
        )
    else:
        f0, loud, conf, recording, residual = training_excerpt(entry.contours, n_samples // hop + 1)
        order = data.get("recordings", [])
        floors = entry.backgrounds
        floor = floors[order.index(recording)] if recording in order else np.median(floors, 0)
        source = f"training contours of {recording} ({no_real})"
        residual_source = f"stored with the model for {recording}'s training contours"
        first = (f"{no_real}:\ntraining contours shown instead", None)
        magnitudes, noise_label = None, "the decoder's"
        if residual is not None:  # rendered as generation renders it: silent where no bird
            sung = (loud > LOUDNESS_FLOOR_DB)[:, None]
            magnitudes = np.where(sung, 10.0 ** (residual / 20.0), 0.0).astype(np.float32)
            noise_label = "their recorded residual"
        rng = np.random.default_rng(seed)
        rendered = model.synthesize(f0, loud, conf, n_samples, rng, noise_magnitudes=magnitudes)
        second = (f"resynthesis of training contours\nnoise: {noise_label}", rendered)
    noise = "recorded" if stored else "model"
    songs = bank.sample(species, n=2, seconds=seconds, sample_rate=sr, seed=seed, noise=noise)
    song_noise = "recorded residual" if stored else "the decoder's (no recorded residual)"
    clips = [first, second] + [
        (f"generated song {i + 1}\nnoise: {song_noise}", song) for i, song in enumerate(songs)
    ]
    present = [audio for _, audio in clips if audio is not None]
    db, top_hz = shared_spectrograms(present, sr)
    images = iter(db)
    spectrograms = [(label, None if audio is None else next(images)) for label, audio in clips]
    contours = ContourView(
        np.asarray(f0, np.float32),
        np.asarray(loud, np.float32),
        np.asarray(conf, np.float32),
        frame_rate,
        background_loudness_db(floor, sr, hop, seed=seed),
        source,
        real_clip is not None,
    )
    controls = controls_view(model, contours.f0_hz, contours.loudness_db, contours.confidence)
    reverb = reverb_view(model.reverb.impulse_response().detach().cpu().numpy(), sr)
    history = None if entry.directory is None else entry.directory / "history.csv"
    curves = (
        read_history(history, entry.info.get("metrics", {}).get("epoch"))
        if history is not None and history.is_file()
        else None
    )
    return ExplainPage(
        species=species,
        spectrograms=spectrograms,
        seconds=n_samples / sr,
        top_hz=top_hz,
        contours=contours,
        controls=controls,
        noise=noise_view(
            controls,
            contours.loudness_db,
            residual,
            residual_source,
            None if stored else NO_RESIDUAL,
        ),
        reverb=reverb,
        curves=curves,
        jitter=jitter_view(pick_phrase(entry.contours), bank.jitter_config(species), frame_rate),
        summary=_summary(entry.info, reverb),
    )


# ---------------------------------------------------------------------------------------------
# Drawing


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_contours(ax_f0: Axes, ax_loud: Axes, view: ContourView) -> None:
    t = view.time_s
    voiced = np.where(view.confidence >= VOICED_THRESHOLD, view.f0_hz, np.nan) / 1000
    ax_f0.plot(t, view.f0_hz / 1000, color="0.7", linewidth=0.6, label="F0")
    ax_f0.plot(
        t, voiced, color="C0", linewidth=1.6, label=f"F0 where confidence ≥ {VOICED_THRESHOLD}"
    )
    ax_f0.set_ylabel("F0 (kHz)")
    twin = ax_f0.twinx()
    twin.set_gid("confidence")
    twin.fill_between(t, view.confidence, color="C1", alpha=0.1, linewidth=0)
    twin.plot(t, view.confidence, color="C1", linewidth=0.4, alpha=0.7, label="voicing confidence")
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("confidence", color="C1")
    ax_f0.set_title(f"F0 and voicing confidence — {view.source}", fontsize=9)
    ax_f0.legend(loc="upper left", fontsize=7)
    ax_loud.plot(t, view.loudness_db, color="C2", linewidth=1.0, label="loudness")
    ax_loud.axhline(
        view.background_db, color="k", linestyle="--", linewidth=1.0, label="background floor"
    )
    # The floor frames (−100 dB) of silent gaps would squash the song into a thin band.
    top = float(np.max(view.loudness_db))
    ax_loud.set_ylim(min(view.background_db, top) - 15, top + 5)
    ax_loud.set_ylabel("dB (A-weighted)")
    ax_loud.set_title("loudness and the recording's background floor", fontsize=9)
    ax_loud.legend(loc="upper right", fontsize=7)
    for ax in (ax_f0, ax_loud):
        ax.set_xlabel("s")
        ax.set_xlim(0, t[-1] if t.size > 1 else 1)


def _draw_controls(ax_h: Axes, ax_amp: Axes, view: ControlsView) -> None:
    frames = view.amplitude_db.shape[0]
    seconds = frames / view.frame_rate
    n_harmonics = view.harmonic_db.shape[0]
    image = ax_h.imshow(
        view.harmonic_db,
        origin="lower",
        aspect="auto",
        cmap="viridis",
        vmin=-_HARMONIC_RANGE_DB,
        vmax=0.0,
        extent=(0.0, seconds, 0.5, n_harmonics + 0.5),
        interpolation="nearest",
    )
    ax_h.figure.colorbar(image, ax=ax_h, label="dB re all partials", pad=0.01)
    ax_h.set_ylabel("partial (1 = F0)")
    ax_h.set_title("harmonic distribution: which partials carry the energy", fontsize=9)
    t = np.arange(frames) / view.frame_rate
    ax_amp.plot(t, view.amplitude_db, color="C3", linewidth=1.0, label="harmonic amplitude")
    top = float(view.amplitude_db.max())
    ax_amp.set_ylim(max(top - 80, LOUDNESS_FLOOR_DB), top + 5)
    ax_amp.set_ylabel("dB re full scale")
    ax_amp.set_title("overall amplitude of the harmonic part", fontsize=9)
    for ax in (ax_h, ax_amp):
        ax.set_xlabel("s")


def _draw_noise(ax_decoder: Axes, ax_residual: Axes, ax_spectrum: Axes, view: NoiseView) -> None:
    seconds = view.decoder_db.shape[1] / view.frame_rate
    style = {
        "origin": "lower",
        "aspect": "auto",
        "cmap": "magma",
        "vmin": view.top_db - _RANGE_DB,
        "vmax": view.top_db,
        "extent": (0.0, seconds, 0.0, view.nyquist_hz / 1000),
        "interpolation": "nearest",
    }
    bands = view.decoder_db.shape[0]
    image = ax_decoder.imshow(view.decoder_db, **style)
    ax_decoder.set_title(
        f'filtered noise the decoder predicts ({bands} bands; noise="model")\n'
        "breath, buzz, noisy notes as the model learned them",
        fontsize=9,
    )
    missing = textwrap.fill(view.missing or "no recorded residual to show", 90)
    if view.residual_db is None:
        _note(ax_residual, f"{missing}:\ngenerated songs use the decoder's noise")
    else:
        ax_residual.imshow(view.residual_db, **style)
        missing = f"\n{missing}" if view.missing else ""
        ax_residual.set_title(
            f"recorded residual: what the harmonics leave of the bird ({view.residual_db.shape[0]}"
            f' bands; noise="recorded", the default)\n{view.source}{missing}',
            fontsize=9,
        )
    for ax in (ax_decoder, ax_residual):
        if ax.images:
            ax.set_ylabel("kHz")
            ax.set_xlabel("s")
    ax_decoder.figure.colorbar(
        image, ax=[ax_decoder, ax_residual], label="dB (filtered-noise gain)", pad=0.01
    )
    khz = lambda db: np.linspace(0.0, view.nyquist_hz / 1000, db.shape[0])  # noqa: E731
    ax_spectrum.plot(
        khz(view.decoder_spectrum_db),
        view.decoder_spectrum_db,
        color="C0",
        linewidth=1.2,
        label="decoder's noise",
    )
    if view.residual_spectrum_db is not None:
        ax_spectrum.plot(
            khz(view.residual_spectrum_db),
            view.residual_spectrum_db,
            color="C1",
            linewidth=0.9,
            label="recorded residual",
        )
    # Down to the quieter spectrum: a decoder far below the residual is the point to see.
    spectra = [view.decoder_spectrum_db, view.residual_spectrum_db]
    lowest = min(float(s[s > RESIDUAL_FLOOR_DB].min(initial=0.0)) for s in spectra if s is not None)
    ax_spectrum.set_ylim(
        max(min(view.top_db - _RANGE_DB, lowest - 5), RESIDUAL_FLOOR_DB), view.top_db + 5
    )
    ax_spectrum.set_xlabel("kHz")
    ax_spectrum.set_ylabel("dB (filtered-noise gain)")
    frames = f"{view.sung_frames} sung frames" if view.sung_frames else "all frames (none sung)"
    ax_spectrum.set_title(f"noise spectrum, power mean over {frames}", fontsize=9)
    ax_spectrum.legend(fontsize=7)


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def _draw_reverb(ax_ir: Axes, ax_edc: Axes, view: ReverbView) -> None:
    t = view.time_s * 1000
    ax_ir.plot(t, view.ir, color="0.3", linewidth=0.5, label="impulse response")
    ax_ir.set_xlabel("ms")
    ax_ir.set_title(f"learned reverb (wet part, {view.wet_db:.1f} dB re dry)", fontsize=9)
    ax_edc.plot(t, view.edc_db, color="C4", linewidth=1.2, label="energy decay curve")
    # Each decay time as the slope it stands for, drawn from 0 dB down to where the EDC ends.
    for name, seconds, style in (("EDT", view.edt_s, ":"), ("RT60", view.rt60_s, "--")):
        if not math.isnan(seconds):
            end_ms = min(t[-1], seconds * 1000)
            ax_edc.plot(
                [0, end_ms],
                [0, -60 * end_ms / (seconds * 1000)],
                color="k",
                linestyle=style,
                linewidth=0.9,
                label=f"{name} {_ms(seconds)}",
            )
    ax_edc.set_ylim(-80, 3)
    ax_edc.set_xlabel("ms")
    ax_edc.set_ylabel("dB")
    ax_edc.set_title(f"decay: EDT {_ms(view.edt_s)}, RT60 (T20) {_ms(view.rt60_s)}", fontsize=9)
    ax_edc.legend(fontsize=7)


def _draw_curves(axes: Sequence[Axes], curves: TrainingCurves | None) -> None:
    if curves is None:
        for ax in axes:
            _note(ax, "no history.csv in the model folder")
        return
    for ax, (name, label) in zip(axes, HISTORY_CURVES.items(), strict=True):
        ax.plot(curves.epoch, curves.curves[name], marker="o", markersize=3, label=name)
        if curves.chosen_epoch is not None:
            ax.axvline(curves.chosen_epoch, color="g", linewidth=1.2, label="chosen epoch")
        for index, epoch in enumerate(curves.restart_epochs):
            ax.axvline(
                epoch,
                color="r",
                linestyle="--",
                linewidth=1.0,
                label="collapse → restart" if index == 0 else "_restart",
            )
        ax.set_xlabel("epoch")
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=7)


def _draw_jitter(axes: Sequence[Axes], view: JitterView) -> None:
    t = lambda a: np.arange(a.shape[0]) / view.frame_rate  # noqa: E731
    titles = {
        "pitch": "pitch shift range",
        "tempo": "tempo range",
        "vibrato": "vibrato (deepest, slowest/fastest)",
        "gain": "gain range",
    }
    for ax, (kind, variants) in zip(axes, view.variants.items(), strict=True):
        base = view.loudness_db if kind == "gain" else view.f0_hz / 1000
        ax.plot(t(base), base, color="k", linewidth=1.4, label="training phrase")
        for label, values in variants:
            ax.plot(
                t(values), values if kind == "gain" else values / 1000, linewidth=1.0, label=label
            )
        ax.set_xlabel("s")
        ax.set_ylabel("dB" if kind == "gain" else "F0 (kHz)")
        if kind == "gain":
            top = float(base.max())
            ax.set_ylim(top - 50, top + 12)
        ax.set_title(titles[kind], fontsize=9)
        ax.legend(fontsize=7)


def draw_page(page: ExplainPage) -> Figure:
    """The species page as a :class:`~matplotlib.figure.Figure` (Agg, no pyplot).

    Axes carry gids for lookup: ``spectrogram:0..3``, ``f0``, ``loudness``, ``harmonics``,
    ``amplitude``, ``noise`` (the decoder's), ``residual``, ``noise_spectrum``, ``reverb_ir``,
    ``reverb_edc``, ``curve:<history column>`` and ``jitter:<pitch|tempo|vibrato|gain>``.
    """
    fig = Figure(figsize=(17, 25), layout="constrained")
    grid = fig.add_gridspec(7, 4, height_ratios=[1.1, 1, 1, 1, 0.9, 0.9, 0.9])
    spectrogram_axes = [fig.add_subplot(grid[0, i]) for i in range(4)]
    for index, (ax, (label, db)) in enumerate(
        zip(spectrogram_axes, page.spectrograms, strict=True)
    ):
        ax.set_gid(f"spectrogram:{index}")
        if db is None:
            _note(ax, label)
            continue
        draw_spectrogram(ax, db, page.seconds, page.top_hz, label)
        ax.set_xlabel("s")
    layout = {
        "f0": grid[1, 0:2],
        "loudness": grid[1, 2:4],
        "harmonics": grid[2, 0:2],
        "amplitude": grid[2, 2:4],
        "noise": grid[3, 0:2],
        "residual": grid[3, 2:4],
        "reverb_ir": grid[4, 0],
        "reverb_edc": grid[4, 1],
        "noise_spectrum": grid[4, 2:4],
    }
    axes = {name: fig.add_subplot(spec, gid=name) for name, spec in layout.items()}
    _draw_contours(axes["f0"], axes["loudness"], page.contours)
    _draw_controls(axes["harmonics"], axes["amplitude"], page.controls)
    _draw_noise(axes["noise"], axes["residual"], axes["noise_spectrum"], page.noise)
    _draw_reverb(axes["reverb_ir"], axes["reverb_edc"], page.reverb)
    _draw_curves(
        [fig.add_subplot(grid[5, i], gid=f"curve:{name}") for i, name in enumerate(HISTORY_CURVES)],
        page.curves,
    )
    _draw_jitter(
        [
            fig.add_subplot(grid[6, i], gid=f"jitter:{kind}")
            for i, kind in enumerate(page.jitter.variants)
        ],
        page.jitter,
    )
    fig.suptitle(f"{page.species.replace('_', ' ')}\n{page.summary}", fontsize=11)
    return fig


# ---------------------------------------------------------------------------------------------
# Pages and index


def _index_html(pages: dict[str, Path], summaries: dict[str, str], real_path: str | None) -> str:
    source = (
        f"real clips from {html.escape(str(real_path))}"
        if real_path
        else "no real recordings given: the model's training contours stand in"
    )
    items = "\n".join(
        f"<section><h2>{html.escape(name.replace('_', ' '))}</h2>"
        f"<pre>{html.escape(summaries[name])}</pre>"
        f'<a href="{html.escape(path.name)}"><img src="{html.escape(path.name)}" '
        f'alt="{html.escape(name)} model page" width="480"></a></section>'
        for name, path in pages.items()
    )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>ddsp-augment: what each "
        "species model learned</title>\n<style>body{font-family:sans-serif;margin:2em;"
        "max-width:60em}pre{white-space:pre-wrap}</style></head>\n<body><h1>What each species "
        f"model learned</h1>\n<p>{source}. Click a page for full size.</p>\n{items}\n"
        "</body></html>\n"
    )


def explain_models(
    model_path: str | Path,
    output_path: str | Path,
    real_path: str | Path | None = None,
    seed: int = 0,
    seconds: float = 3.0,
    species: Iterable[str] | None = None,
    dpi: int = 100,
) -> dict[str, Path]:
    """Write ``<output_path>/<species>.png`` per model and ``<output_path>/index.html``.

    ``model_path`` is ``models/`` or ``models/<species>/``; ``real_path`` an optional folder of
    real recordings (``<species>/*`` audio or preprocessed ``.npz``): each page's real clip is
    the loudest ``seconds`` of the first readable one. Returns ``{species: png path}``.
    """
    if real_path is not None and not Path(real_path).is_dir():
        raise FileNotFoundError(f"{real_path}: no such folder of real recordings")
    dirs = find_model_dirs(model_path, species)
    output_path = Path(output_path)
    pages, summaries = {}, {}
    for name, directory in dirs.items():
        bank = SpeciesBank.load(directory)
        sr = bank.entry(name).model.config.sample_rate
        clips = real_clips(real_path, name, sr, seconds, 1) if real_path is not None else []
        no_real = (
            _NO_REAL if real_path is None else f"no readable recording in {Path(real_path) / name}"
        )
        page = explain_species(bank, name, clips[0] if clips else None, seconds, seed, no_real)
        pages[name] = save_figure(draw_page(page), output_path / f"{name}.png", dpi)
        summaries[name] = f"{page.summary}\ncontours shown: {page.contours.source}"
    text = _index_html(pages, summaries, None if real_path is None else str(real_path))
    atomic_write(output_path / "index.html", lambda tmp: tmp.write_text(text, "utf-8"))
    return pages
