"""How well do species models reproduce held-out real birdsong? Prints one JSON object.

For every species of the given data roots: preprocess, hold out whole recordists for validation,
train a species model with default settings, then resynthesise each validation recording from
its own F0/loudness and compare with two baselines that get the same information:

- ``sine``: one sinusoid following the recording's F0 and level;
- ``sine_noise``: that sinusoid plus stationary noise shaped to the recording's own background
  spectrum — the baseline to beat (the model's resynthesis gets the same background noise).

Scored as training's validation scores (``training.train``): spectral distance, the mean over
FFT sizes 2048…128 (75 % overlap, Hann) of mean |log(|X| + 1e-5) − log(|Y| + 1e-5)| over active
frames (`metrics.spectral_distance`), within the band the recording carries
(`features.background.recorded_band_edge`: MP3s low-passed at 14–16 kHz, files of a lower rate
are silent above it, and comparing silence there measured nothing of the bird); loudness error
of the bird above the recording's background (`features.activity.bird_activity`). Numbers from
before that change (full band, loudness with the background) are not comparable.

    python benchmarks/train_quality.py --data_root ../shared/data/tonal-songs --jobs 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import pin_threads, print_json
from joblib import Parallel, delayed

from ddsp_augment.dsp import numba_kernels as nk
from ddsp_augment.evaluation.metrics import f0_accuracy, loudness_mae_db, spectral_distance
from ddsp_augment.features.activity import bird_activity
from ddsp_augment.features.background import (
    FLOOR_FFT_SIZE,
    recorded_band_edge,
    render_noise_floor,
)
from ddsp_augment.features.pitch import estimate_f0
from ddsp_augment.model.storage import SavedSpecies, load_species_model
from ddsp_augment.plotting import stacked_spectrograms
from ddsp_augment.training.preprocess import Recording, load_processed, preprocess_folder
from ddsp_augment.training.train import TrainSettings, split_by_recordist, train_species

ROOT = Path(__file__).resolve().parents[1]


def _frame_amplitude(rec: Recording) -> np.ndarray:
    """Sine amplitude per frame: the recording's frame power above its background, as a peak."""
    hop = rec.hop_length
    padded = np.pad(rec.audio, (2 * hop, 2 * hop))
    frames = np.lib.stride_tricks.sliding_window_view(padded, 4 * hop)[::hop][: rec.f0_hz.shape[0]]
    power = (frames**2).mean(1)
    floor = rec.background
    window_power = np.sum(np.hanning(FLOOR_FFT_SIZE + 1)[:-1] ** 2)
    background_power = 2 * np.sum(floor.astype(np.float64) ** 2) / window_power / FLOOR_FFT_SIZE
    return np.sqrt(2 * np.clip(power - background_power, 0, None)).astype(np.float32)


def _distance(rec: Recording, heard: np.ndarray) -> float:
    """Spectral distance within the band ``rec`` carries."""
    edge = recorded_band_edge(rec.background, rec.sample_rate)
    return spectral_distance(rec.audio, heard, rec.sample_rate, f_max=edge)


def _score(rec: Recording, heard: np.ndarray, bird: np.ndarray) -> dict[str, float]:
    active = rec.loudness_db >= rec.loudness_db.max() - 40
    voiced = active & (rec.confidence >= 0.5)
    f0_out, _ = estimate_f0(bird, rec.sample_rate, hop_length=rec.hop_length)
    heard_loud = bird_activity(heard, rec.sample_rate, rec.background, None, rec.hop_length)
    return {
        "spectral_distance": _distance(rec, heard),
        "f0_within_50_cents": f0_accuracy(rec.f0_hz, f0_out, voiced) if voiced.any() else np.nan,
        "loudness_mae_db": loudness_mae_db(rec.loudness_db, heard_loud.loudness_db, active),
    }


def evaluate_recording(
    saved: SavedSpecies, rec: Recording, seed: int = 0, png: Path | None = None
) -> dict[str, float]:
    """Scores of one validation recording; ``png`` gets real | model | baseline spectrograms."""
    n = rec.audio.shape[0]
    rng = np.random.default_rng(seed)
    bird = saved.model.synthesize(rec.f0_hz, rec.loudness_db, rec.confidence, n, rng)
    background = render_noise_floor(rec.background, n, rng)
    ones = np.ones((rec.f0_hz.shape[0], 1), np.float32)
    sine = nk.harmonic_synth(
        rec.f0_hz, _frame_amplitude(rec), ones, rec.sample_rate, rec.hop_length, n
    )
    model_scores = _score(rec, bird + background, bird)
    if png is not None:
        stacked_spectrograms(
            [
                ("real", rec.audio),
                ("model resynthesis + background", bird + background),
                ("sine + background baseline", sine + background),
            ],
            rec.sample_rate,
            png,
            title=f"{rec.species} / {rec.name} (validation)",
        )
    return {
        "val_spectral_distance": model_scores["spectral_distance"],
        "f0_within_50_cents": model_scores["f0_within_50_cents"],
        "loudness_mae_db": model_scores["loudness_mae_db"],
        "sine_baseline_spectral_distance": _distance(rec, sine),
        "sine_noise_baseline_spectral_distance": _distance(rec, sine + background),
    }


def run_species(processed: Path, models: Path, species: str, settings: TrainSettings) -> dict:
    recordings = [load_processed(p) for p in sorted((processed / species).glob("*.npz"))]
    start = time.perf_counter()
    train_species(recordings, models / species, settings, progress=False, log=lambda _: None)
    wall = time.perf_counter() - start
    saved = load_species_model(models / species)
    _, val = split_by_recordist(recordings, settings.val_fraction, settings.seed)
    val = val or recordings
    rows = [
        evaluate_recording(saved, rec, png=models / species / "validation.png" if i == 0 else None)
        for i, rec in enumerate(val)
    ]
    means = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
    return {
        "species": species,
        "train_seconds_audio": saved.info["training_data"]["seconds"],
        "wall_seconds": round(wall, 1),
        "validation_files": len(val),
        **means,
        "model_vs_sine_noise": means["val_spectral_distance"]
        / means["sine_noise_baseline_spectral_distance"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data_root",
        nargs="+",
        type=Path,
        default=[
            ROOT.parent / "shared/data/tonal-songs",
            ROOT.parent / "shared/data/xc-germany-20",
        ],
    )
    parser.add_argument("--work_dir", type=Path, default=ROOT / ".cache" / "train_quality")
    parser.add_argument("--species", nargs="*")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    args = parser.parse_args(argv)
    pin_threads(1)  # one thread per species job
    settings = TrainSettings(epochs=args.epochs, threads=1)
    report: dict[str, dict] = {}
    for root in args.data_root:
        processed = args.work_dir / root.name / "processed"
        preprocess_folder(root, processed, jobs=args.jobs, species=args.species, progress=False)
        names = sorted(p.name for p in processed.iterdir() if p.is_dir())
        rows = []
        for row in Parallel(n_jobs=args.jobs, return_as="generator_unordered")(
            delayed(run_species)(processed, args.work_dir / root.name / "models", name, settings)
            for name in names
        ):
            print(json.dumps(row), file=sys.stderr, flush=True)  # progress survives a cut-off run
            rows.append(row)
        rows.sort(key=lambda r: r["species"])
        keys = [k for k in rows[0] if k != "species"]
        report[root.name] = {
            "species": {r["species"]: {k: r[k] for k in keys} for r in rows},
            "mean": {k: float(np.nanmean([r[k] for r in rows])) for k in keys},
            "beats_sine_noise": int(sum(r["model_vs_sine_noise"] < 1 for r in rows)),
            "n_species": len(rows),
        }
    print_json(report, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
