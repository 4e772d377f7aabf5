"""`evaluate`: how close are synthetic songs to real ones — next to how close real is to real.

A distance alone says little (what is a "good" Wasserstein distance between F0 distributions?),
so every synthetic-vs-real number comes with a real-vs-real reference computed the same way:

- The real recordings of a species are split into two halves by recordist (by recording when
  there is only one recordist): a *held-out* half and the *rest* (a proxy of the training data).
- Distribution metrics compare synthetic vs rest, and, as the reference, held-out vs rest:
  Wasserstein distances of voiced frames' F0 (cents) and active frames' loudness (dB), the
  distance between mean log-mel spectra, and the Fréchet distance between embeddings of 1 s
  windows (``metrics.log_mel_embedding``; the larger set is subsampled to the smaller one's
  size, because the Fréchet distance of small samples is biased upwards by their size).
- Diversity: mean pairwise embedding distance among synthetic windows (reference: among
  held-out windows).
- Memorisation: each synthetic clip's distance to the nearest real window (any recording),
  against each real clip's distance to the nearest window of *other* recordists' (recordings')
  clips. Synthetic clips much closer to the real data than real clips are to each other (less
  than half the real median) are flagged as copies.
- With ``model_path``: resynthesis F0 accuracy — each real recording re-rendered from its own
  tracked F0/loudness, F0 tracked again on the output, the fraction of voiced frames within
  50 cents (its real-vs-real ceiling is 1 by construction), also split into the recordings the
  model's weights were fitted on and the others (its validation set, or recordings it never saw).

Outputs under ``output_path``: ``evaluation.json``, ``evaluation.md`` and one
``<species>_distributions.png`` per species.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from ..constants import (
    ACTIVE_RANGE_DB,
    F0_MAX_HZ,
    F0_MIN_HZ,
    HOP_LENGTH,
    SAMPLE_RATE,
    VOICED_THRESHOLD,
)
from ..dsp.spectral import log_mel
from ..features.activity import bird_activity
from ..features.background import noise_floor
from ..features.pitch import estimate_f0
from ..io import AUDIO_EXTENSIONS, AudioError, atomic_write, load_audio, scan_folder
from ..model.storage import find_model_dirs
from ..plotting import comparison_panels
from ..sampling.bank import SpeciesBank
from ..training.preprocess import (
    PreprocessSettings,
    Recording,
    load_processed,
    preprocess_file,
    read_manifest,
)
from .birdnet import BirdNETJudge, judge_species
from .metrics import (
    diversity,
    f0_accuracy,
    frechet_distance,
    log_mel_embedding,
    nearest_distance,
    wasserstein,
)

__all__ = [
    "COPY_RATIO",
    "ClipStats",
    "analyse_clip",
    "evaluate",
    "load_real",
    "markdown_report",
    "split_halves",
]

_WINDOW_SECONDS = 1.0
_WINDOW_HOP_SECONDS = 0.5
_WINDOW_RANGE_DB = 20.0  # embed windows within this of the clip's loudest window
_MAX_WINDOWS = 16  # per clip, so long recordings do not outweigh short ones
COPY_RATIO = 0.5
_F0_REFERENCE_HZ = 1000.0
_RESYNTH_SEED = 0


@dataclass
class ClipStats:
    """What evaluation needs of one clip, analysed at the model rate (32 kHz)."""

    name: str
    group: str  # recordist (or recording): the unit of the real-vs-real split
    f0_cents: np.ndarray  # [voiced active frames] re 1 kHz
    loudness_db: np.ndarray  # [active frames]
    log_mel: np.ndarray  # [n_mels, active mel frames]
    embeddings: np.ndarray  # [windows, 128]


def _windows(audio: np.ndarray, sample_rate: int) -> list[np.ndarray]:
    length = int(_WINDOW_SECONDS * sample_rate)
    hop = int(_WINDOW_HOP_SECONDS * sample_rate)
    if audio.shape[0] <= length:
        return [np.pad(audio, (0, length - audio.shape[0]))]
    starts = np.arange(0, audio.shape[0] - length + 1, hop)
    windows = np.stack([audio[s : s + length] for s in starts])
    level = 10 * np.log10(np.mean(windows.astype(np.float64) ** 2, axis=1) + 1e-20)
    keep = np.flatnonzero(level >= level.max() - _WINDOW_RANGE_DB)
    if keep.size > _MAX_WINDOWS:
        keep = keep[np.linspace(0, keep.size - 1, _MAX_WINDOWS).round().astype(int)]
    return [windows[i] for i in keep]


def analyse_clip(
    name: str,
    group: str,
    audio: np.ndarray,
    sample_rate: int,
    f0_hz: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    loudness: np.ndarray | None = None,
    hop_length: int = HOP_LENGTH,
    band: tuple[float, float] = (F0_MIN_HZ, F0_MAX_HZ),
) -> ClipStats:
    """Frame statistics and window embeddings of ``audio [samples]`` at ``sample_rate``.

    ``f0_hz``/``confidence``/``loudness`` ``[frames]`` are tracked here unless given (a
    preprocessed recording already has them), in ``band`` (Hz: the real recordings' own).
    """
    audio = np.asarray(audio, np.float32)
    if f0_hz is None or confidence is None:
        f0_hz, confidence = estimate_f0(audio, sample_rate, hop_length, *band)
    if loudness is None:
        # As preprocessing measures real recordings: the bird above the clip's own background.
        floor = noise_floor(audio)
        loudness = bird_activity(audio, sample_rate, floor, None, hop_length, *band).loudness_db
    n = min(f0_hz.shape[0], confidence.shape[0], loudness.shape[0])
    f0_hz, confidence, loudness = f0_hz[:n], confidence[:n], loudness[:n]
    active = loudness >= loudness.max() - ACTIVE_RANGE_DB
    voiced = active & (confidence >= VOICED_THRESHOLD)
    mel = log_mel(audio, sample_rate)
    mel_level = np.log(np.exp(mel).sum(0))
    mel_active = mel_level >= mel_level.max() - ACTIVE_RANGE_DB * math.log(10) / 10
    return ClipStats(
        name=name,
        group=group,
        f0_cents=(1200 * np.log2(f0_hz[voiced] / _F0_REFERENCE_HZ)).astype(np.float32),
        loudness_db=loudness[active].astype(np.float32),
        log_mel=mel[:, mel_active],
        embeddings=np.stack(
            [log_mel_embedding(w, sample_rate) for w in _windows(audio, sample_rate)]
        ),
    )


def load_real(
    real_path: str | Path, species: str, sample_rate: int = SAMPLE_RATE
) -> tuple[list[Recording], list[dict[str, str]]]:
    """Real recordings of ``species`` from ``real_path/species/`` → (recordings, skipped).

    ``real_path`` is a preprocessed folder (``*.npz``, used as they are) or a raw one (audio
    files, analysed here like ``preprocess`` does; recordists from ``manifest.csv`` if any).
    """
    real_path = Path(real_path)
    folder = real_path / species
    npz = sorted(folder.glob("*.npz"))
    recordings, skipped = [], []
    if npz:
        for file in npz:
            try:
                rec = load_processed(file)
            except ValueError as error:
                skipped.append({"file": str(file), "reason": str(error)})
                continue
            if rec.sample_rate != sample_rate:
                skipped.append(
                    {"file": str(file), "reason": f"sample rate {rec.sample_rate} != {sample_rate}"}
                )
                continue
            recordings.append(rec)
        return recordings, skipped
    recordists = read_manifest(real_path)
    settings = PreprocessSettings(sample_rate=sample_rate)
    for file in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS):
        recordist = recordists.get(file.relative_to(real_path).as_posix(), file.stem)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # clipping: still fine to measure distributions
                recordings.append(preprocess_file(file, species, recordist, settings))
        except AudioError as error:
            skipped.append({"file": str(file), "reason": error.reason})
    return recordings, skipped


def split_halves(groups: Sequence[str], seed: int = 0) -> tuple[list[int], list[int], str]:
    """Indices ``(held_out, rest, unit)`` splitting items into halves by group.

    ``groups`` is each item's recordist; with a single recordist the items themselves are
    split. ``held_out`` gets whole groups while it holds at most half the items (≥ 1).
    Fewer than two items: ``held_out`` is empty.
    """
    n = len(groups)
    if n < 2:
        return [], list(range(n)), "none (fewer than 2 recordings)"
    by_group: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        by_group.setdefault(group, []).append(index)
    # Recordists only matter when one of them made several recordings.
    by_recordist = len(by_group) > 1 and len(by_group) < n
    units = list(by_group.values()) if by_recordist else [[i] for i in range(n)]
    unit = "recordist" if by_recordist else "recording"
    # The smallest of >= 2 units holds at most n // 2 items, so something always fits.
    held: list[int] = []
    for k in np.random.default_rng(seed).permutation(len(units)):
        if len(held) + len(units[k]) <= n // 2:
            held.extend(units[k])
    held_set = set(held)
    return sorted(held), [i for i in range(n) if i not in held_set], unit


def _pool(clips: Sequence[ClipStats], attribute: str) -> np.ndarray:
    arrays = [getattr(c, attribute) for c in clips]
    return np.concatenate(arrays, axis=-1) if arrays else np.empty(0, np.float32)


def _maybe(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def _distribution_metrics(
    a: Sequence[ClipStats], b: Sequence[ClipStats], rng: np.random.Generator, size: int | None
) -> dict[str, float | None]:
    """Distances between clip sets ``a`` and ``b``; Fréchet on ``size`` windows of each."""
    out: dict[str, float | None] = {}
    for key, attribute in (
        ("f0_wasserstein_cents", "f0_cents"),
        ("loudness_wasserstein_db", "loudness_db"),
    ):
        x, y = _pool(a, attribute), _pool(b, attribute)
        out[key] = _maybe(wasserstein(x, y)) if x.size and y.size else None
    mel_a, mel_b = (np.concatenate([c.log_mel for c in s], axis=1) for s in (a, b))
    out["log_mel_distance"] = (
        _maybe(np.mean(np.abs(mel_a.mean(1) - mel_b.mean(1))))
        if mel_a.size and mel_b.size
        else None
    )
    emb_a, emb_b = (np.concatenate([c.embeddings for c in s]) for s in (a, b))
    if size is not None:
        emb_a = emb_a[rng.permutation(len(emb_a))[:size]]
        emb_b = emb_b[rng.permutation(len(emb_b))[:size]]
    out["frechet_distance"] = (
        _maybe(frechet_distance(emb_a, emb_b)) if min(len(emb_a), len(emb_b)) > 1 else None
    )
    out["windows"] = int(min(len(emb_a), len(emb_b)))
    return out


def _nearest_medians(query: Sequence[ClipStats], reference: np.ndarray) -> np.ndarray:
    """Per query clip, the median over its windows of the distance to the nearest reference row."""
    return np.array([float(np.median(nearest_distance(c.embeddings, reference))) for c in query])


def _resynthesis(
    model_dir: Path, species: str, recordings: Sequence[Recording], progress: bool
) -> dict[str, Any]:
    entry = SpeciesBank.load(model_dir).entry(species)
    model = entry.model
    trained_on = set(entry.info.get("training_data", {}).get("recordings", []))
    scores: dict[str, float] = {}
    bar = tqdm(recordings, f"{species} resynthesis", unit="rec", leave=False, disable=not progress)
    for rec in bar:
        if rec.sample_rate != model.config.sample_rate or rec.hop_length != model.config.hop_length:
            continue
        active = rec.loudness_db >= rec.loudness_db.max() - ACTIVE_RANGE_DB
        voiced = active & (rec.confidence >= VOICED_THRESHOLD)
        if not voiced.any():
            continue
        rng = np.random.default_rng(_RESYNTH_SEED)
        out = model.synthesize(rec.f0_hz, rec.loudness_db, rec.confidence, rec.audio.shape[0], rng)
        f0_out, _ = estimate_f0(out, rec.sample_rate, rec.hop_length, *rec.band)
        scores[rec.name] = f0_accuracy(rec.f0_hz, f0_out, voiced)

    def mean(names: Iterable[str]) -> float | None:
        values = [scores[n] for n in names]
        return _maybe(float(np.mean(values))) if values else None

    return {
        "f0_within_50_cents": mean(scores),
        "f0_within_50_cents_trained_on": mean(n for n in scores if n in trained_on),
        "f0_within_50_cents_not_trained_on": mean(n for n in scores if n not in trained_on),
        "reference": 1.0,
        "by_recording": {k: _maybe(v) for k, v in scores.items()},
        "model_directory": str(model_dir),
    }


def _evaluate_species(
    synthetic: Sequence[ClipStats],
    real: Sequence[ClipStats],
    seed: int,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    held_idx, rest_idx, unit = split_halves([c.group for c in real], seed)
    held = [real[i] for i in held_idx]
    rest = [real[i] for i in rest_idx]
    result: dict[str, Any] = {
        "n_synthetic": len(synthetic),
        "n_real": len(real),
        "split": {"unit": unit, "held_out": [c.name for c in held], "rest": [c.name for c in rest]},
    }
    n_held_windows = sum(len(c.embeddings) for c in held)
    size = min(n_held_windows, sum(len(c.embeddings) for c in synthetic)) if held else None
    syn = _distribution_metrics(synthetic, rest, rng, size)
    ref = _distribution_metrics(held, rest, rng, size) if held else {}
    for key in (
        "f0_wasserstein_cents",
        "loudness_wasserstein_db",
        "log_mel_distance",
        "frechet_distance",
    ):
        result[key] = {"synthetic": syn[key], "reference": ref.get(key)}
    result["frechet_distance"]["windows"] = syn["windows"]

    syn_emb = _pool_embeddings(synthetic)
    result["diversity"] = {
        "synthetic": _maybe(diversity(syn_emb)),
        "reference": _maybe(diversity(_pool_embeddings(held))) if held else None,
    }
    # Memorisation: synthetic vs all real clips; each real clip vs the other recordists' clips.
    syn_nearest = _nearest_medians(synthetic, _pool_embeddings(real))
    real_nearest = _real_nearest_medians(real)
    threshold = COPY_RATIO * float(np.median(real_nearest)) if real_nearest.size else None
    copies = [
        c.name for c, d in zip(synthetic, syn_nearest, strict=True) if threshold and d < threshold
    ]
    result["nearest_real_distance"] = {
        "synthetic": _maybe(float(np.median(syn_nearest))),
        "reference": _maybe(float(np.median(real_nearest))) if real_nearest.size else None,
    }
    result["copies"] = {
        "threshold": _maybe(threshold),
        "files": copies,
        "fraction": _maybe(len(copies) / len(synthetic)),
        "flag": bool(copies),
    }
    return result


def _real_nearest_medians(real: Sequence[ClipStats]) -> np.ndarray:
    """Per real clip, the median distance of its windows to the nearest window of another
    recordist's clips (another recording's, when a species has one recordist)."""
    medians = []
    for clip in real:
        others = [o for o in real if o.group != clip.group] or [o for o in real if o is not clip]
        if others:
            medians.append(_nearest_medians([clip], _pool_embeddings(others))[0])
    return np.array(medians)


def _pool_embeddings(clips: Sequence[ClipStats]) -> np.ndarray:
    return (
        np.concatenate([c.embeddings for c in clips]) if clips else np.empty((0, 128), np.float32)
    )


def _load_synthetic(generated_path: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path, species in scan_folder(generated_path):
        found.setdefault(species, []).append(path)
    return found


def _plot(
    species: str,
    synthetic: Sequence[ClipStats],
    real: Sequence[ClipStats],
    result: dict,
    path: Path,
) -> None:
    held = set(result["split"]["held_out"])
    sets = {
        "real (rest)": [c for c in real if c.name not in held],
        "real (held-out)": [c for c in real if c.name in held],
        "synthetic": list(synthetic),
    }
    f0 = {k: _F0_REFERENCE_HZ * 2 ** (_pool(v, "f0_cents") / 1200) / 1000 for k, v in sets.items()}
    loud = {k: _pool(v, "loudness_db") for k, v in sets.items()}
    mel = {k: np.concatenate([c.log_mel for c in v], axis=1).mean(1) for k, v in sets.items() if v}
    comparison_panels(
        [
            ("hist", "F0 of voiced frames (kHz)", f0),
            ("hist", "loudness of active frames (dB)", loud),
            ("line", "mel band (500 Hz–16 kHz)", mel),
        ],
        path,
        title=f"{species.replace('_', ' ')}: real vs synthetic",
    )


def evaluate(
    generated_path: str | Path,
    real_path: str | Path,
    output_path: str | Path,
    model_path: str | Path | None = None,
    species: Iterable[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    judge: Literal["none", "birdnet"] = "none",
) -> dict[str, Any]:
    """Compare ``generated_path/<species>/*.wav`` with real recordings; write JSON, Markdown, PNGs.

    Returns the report (``evaluation.json``'s contents): ``{"settings", "species": {name:
    metrics}, "skipped", "unmatched"}``, each metric ``{"synthetic": x, "reference": y}``.
    ``judge="birdnet"`` adds ``"birdnet"`` per species (``birdnet.judge_species``: BirdNET's
    verdict on all real and all generated clips, side by side).
    """
    if judge not in ("none", "birdnet"):
        raise ValueError(f"judge must be 'none' or 'birdnet', got {judge!r}")
    birdnet = BirdNETJudge() if judge == "birdnet" else None  # fails early without the extra
    generated_path, real_path, output_path = (
        Path(generated_path),
        Path(real_path),
        Path(output_path),
    )
    if not real_path.is_dir():
        raise FileNotFoundError(f"{real_path}: no such folder of real recordings")
    synthetic_files = _load_synthetic(generated_path)
    if not synthetic_files:
        raise FileNotFoundError(f"{generated_path}: no generated audio under <species>/ folders")
    real_species = {p.name for p in real_path.iterdir() if p.is_dir()}
    names = sorted(set(species) if species is not None else set(synthetic_files))
    unmatched = sorted(n for n in names if n not in real_species or n not in synthetic_files)
    names = [n for n in names if n not in unmatched]
    if not names:
        raise FileNotFoundError(
            f"{real_path}: no real recordings for the generated species {sorted(synthetic_files)}"
        )
    model_dirs = find_model_dirs(model_path) if model_path is not None else {}
    report: dict[str, Any] = {
        "settings": {
            "generated_path": str(generated_path),
            "real_path": str(real_path),
            "model_path": None if model_path is None else str(model_path),
            "seed": seed,
            "sample_rate": SAMPLE_RATE,
            "window_seconds": _WINDOW_SECONDS,
            "copy_ratio": COPY_RATIO,
            "synthetic_vs": "real 'rest' half (training proxy)",
            "reference": "real held-out half vs real 'rest' half",
        },
        "species": {},
        "skipped": [],
        "unmatched": unmatched,
    }
    output_path.mkdir(parents=True, exist_ok=True)
    for name in tqdm(names, desc="evaluate", unit="species", disable=not progress):
        recordings, skipped = load_real(real_path, name)
        report["skipped"] += skipped
        if not recordings:
            report["unmatched"].append(name)
            continue
        real = [
            analyse_clip(
                r.name,
                r.recordist,
                r.audio,
                r.sample_rate,
                r.f0_hz,
                r.confidence,
                r.loudness_db,
                r.hop_length,
            )
            for r in recordings
        ]
        synthetic, synthetic_audio = [], []
        for path in synthetic_files[name]:
            try:
                audio, _ = load_audio(path, SAMPLE_RATE)
            except AudioError as error:
                report["skipped"].append({"file": str(path), "reason": error.reason})
                continue
            synthetic.append(
                analyse_clip(path.name, "synthetic", audio, SAMPLE_RATE, band=recordings[0].band)
            )
            synthetic_audio.append(audio)
        if not synthetic:
            report["unmatched"].append(name)
            continue
        result = _evaluate_species(synthetic, real, seed)
        if name in model_dirs:
            result["resynthesis"] = _resynthesis(model_dirs[name], name, recordings, progress)
        if birdnet is not None:
            real_audio = [r.audio for r in recordings]
            result["birdnet"] = judge_species(
                name, real_audio, synthetic_audio, SAMPLE_RATE, birdnet
            )
        _plot(name, synthetic, real, result, output_path / f"{name}_distributions.png")
        report["species"][name] = result
    atomic_write(
        output_path / "evaluation.json",
        lambda tmp: tmp.write_text(json.dumps(report, indent=2), "utf-8"),
    )
    atomic_write(
        output_path / "evaluation.md", lambda tmp: tmp.write_text(markdown_report(report), "utf-8")
    )
    return report


def _cell(metric: dict[str, Any] | None) -> str:
    if metric is None:
        return "–"
    syn, ref = metric.get("synthetic"), metric.get("reference")
    return f"{_fmt(syn)} ({_fmt(ref)})"


def markdown_report(report: dict[str, Any]) -> str:
    """The report as a Markdown table: each cell "synthetic (real-vs-real reference)"."""
    columns = [
        ("F0 W₁ (cents)", "f0_wasserstein_cents"),
        ("loudness W₁ (dB)", "loudness_wasserstein_db"),
        ("log-mel dist.", "log_mel_distance"),
        ("Fréchet", "frechet_distance"),
        ("diversity", "diversity"),
        ("nearest real", "nearest_real_distance"),
    ]
    header = [
        "species",
        "real (held-out)",
        "synthetic",
        *(c for c, _ in columns),
        "copies",
        "resynth F0 ≤50¢ (unseen)",
    ]
    lines = [
        "# Synthetic vs real",
        "",
        "Each cell: synthetic vs real (**real held-out half vs rest**, the reference). Lower is",
        "closer for distances; diversity should be near its reference; a nearest-real distance",
        f"far below its reference means copies (flagged below {COPY_RATIO}× the reference).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for name, result in report["species"].items():
        resynth = result.get("resynthesis")
        resynth_cell = "–"
        if resynth is not None:
            unseen = _fmt(resynth["f0_within_50_cents_not_trained_on"])
            resynth_cell = f"{_fmt(resynth['f0_within_50_cents'])} ({unseen})"
        copies = result["copies"]
        row = [
            name,
            f"{result['n_real']} ({len(result['split']['held_out'])})",
            str(result["n_synthetic"]),
            *(_cell(result.get(key)) for _, key in columns),
            f"{len(copies['files'])}" + (" ⚠" if copies["flag"] else ""),
            resynth_cell,
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += _birdnet_lines(report)
    if report["unmatched"]:
        lines += [
            "",
            f"Not evaluated (no real or no synthetic clips): {', '.join(report['unmatched'])}",
        ]
    if report["skipped"]:
        lines += ["", f"Skipped files: {len(report['skipped'])} (reasons in evaluation.json)"]
    return "\n".join(lines) + "\n"


def _birdnet_lines(report: dict[str, Any]) -> list[str]:
    judged = {k: v["birdnet"] for k, v in report["species"].items() if "birdnet" in v}
    if not judged:
        return []
    lines = [
        "",
        "## BirdNET (GLOBAL 6K v2.4): generated (real)",
        "",
        "| species | BirdNET label | top-1 | top-5 | confidence | Fréchet (embeddings) |",
        "|---|---|---|---|---|---|",
    ]
    for name, verdict in judged.items():
        if not verdict["known"]:
            lines.append(f"| {name} | not a BirdNET species | – | – | – | – |")
            continue
        gen, real = verdict["generated"] or {}, verdict["real"] or {}
        cells = [
            f"{_fmt(gen.get(k))} ({_fmt(real.get(k))})" for k in ("top1", "top5", "confidence")
        ]
        label = verdict["birdnet_label"].split("_", 1)[-1]
        lines.append(
            f"| {name} | {label} | {' | '.join(cells)} | {_fmt(verdict['frechet_distance'])} |"
        )
    return lines


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"
