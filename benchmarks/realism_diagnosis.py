"""Why does BirdNET reject a species' generated songs? Timbre, composition or training data.

For each species of a finished ``benchmarks/realism.py`` run (its ``realism.json`` names each
species' training recordings; its ``models/`` holds the trained models), BirdNET judges

- ``sample``: ``SpeciesBank.sample`` songs as made by default (the baseline);
- ``resynth``: ``SpeciesBank.resynthesize`` of the species' real training recordings, cut in
  ``--seconds`` windows: the model's timbre on real contours and real timing. Low here while
  ``train_real`` is high: the timbre fails. High here while ``sample`` is low: composition;
- ``resynth_model_noise`` and ``sample_model_noise``: the same two with the decoder's noise
  branch (``noise="model"``) instead of the recorded residual (the default);
- one row per composition variant (``sample(**overrides)``): ``no_recombine`` (a song within
  one recording), ``long_gaps`` (0.5-1.5 s silence between phrases), ``markov`` (the species'
  learned syllable order);
- ``train_real``: the real training windows themselves. Low here: the model learned from
  recordings BirdNET does not recognise either (poor training data);
- ``vocoder_<bands>`` and ``vocoder_<bands>_clean``: the training windows through an ideal
  filtered-noise vocoder, the ceiling of a noise synthesiser at that resolution: each 2 ms
  frame's magnitudes measured on the window itself (``n_fft = 2 * (bands - 1)``), white noise
  filtered by them (``dsp.numba_kernels.filtered_noise``, the model's own noise kernel). The
  model's noise branch has 65 bands. ``_clean`` first subtracts the window's measured
  background (``features.background.noise_floor``), as the model's training target does: the
  clean bird, which generation then places in a scene.

    nice -n 10 python benchmarks/realism_diagnosis.py --run_path /work/notes/realism20 \\
        --species Corvus_corax Erithacus_rubecula
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from ddsp_augment.dsp.numba_kernels import filtered_noise
from ddsp_augment.dsp.spectral import magnitude_spectrogram
from ddsp_augment.evaluation.birdnet import BirdNETJudge, judge_species
from ddsp_augment.features.background import noise_floor
from ddsp_augment.io import AudioError, load_audio
from ddsp_augment.sampling.bank import SpeciesBank

ROOT = Path(__file__).resolve().parents[1]
RATE = 32000
HOP = 64
#: Filtered-noise vocoder resolutions: the model's noise branch (65) and 4x finer.
VOCODER_BANDS = (65, 257)
#: Composition variants: ``SpeciesBank.sample`` jitter overrides, each against the defaults.
VARIANTS: dict[str, dict[str, object]] = {
    "no_recombine": {"recombine": False},
    "long_gaps": {"gap_seconds": (0.5, 1.5)},
    "markov": {"syntax": "markov"},
}


def windows(audio: np.ndarray, seconds: float, sample_rate: int) -> list[np.ndarray]:
    """Non-overlapping ``seconds`` windows of ``audio`` ``[samples]``; a remainder of at least
    half a window is kept (BirdNET pads it), a shorter one dropped. A clip shorter than half a
    window gives one window (itself)."""
    size = int(round(seconds * sample_rate))
    if size < 1:
        raise ValueError(f"seconds must give at least one sample, got {seconds}")
    cuts = [audio[i : i + size] for i in range(0, audio.shape[0], size)]
    kept = [c for c in cuts if c.shape[0] >= size // 2]
    return kept or [audio]


def vocoder(audio: np.ndarray, bands: int, clean: bool, rng: np.random.Generator) -> np.ndarray:
    """``audio [samples]`` re-rendered as white noise shaped, every ``HOP`` samples, by its own
    magnitude spectrum at ``bands`` bins (minus its measured background when ``clean``); same
    length and RMS."""
    n_fft = 2 * (bands - 1)
    mag = magnitude_spectrogram(audio, n_fft, HOP)[:, : audio.shape[0] // HOP + 1]
    if clean:
        floor = noise_floor(audio, n_fft)[:, None]
        mag = np.sqrt(np.maximum(mag**2 - floor**2, 0.0))
    # A Hann-windowed frame of unit white noise reads sqrt(sum(w^2)) per bin: back to gains.
    gains = mag.T / np.sqrt(np.sum(np.hanning(n_fft) ** 2))
    out = filtered_noise(gains, rng.standard_normal(audio.shape[0]).astype(np.float32), HOP)
    return out * float(np.std(audio) / max(np.std(out), 1e-9))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--run_path`` must hold a ``realism.py`` run (``realism.json`` and
    ``models/``), else ``ValueError`` naming it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_path", type=Path, required=True, help="a realism.py output_path")
    parser.add_argument("--data_path", type=Path, help="default: the run's own data_path")
    parser.add_argument("--species", nargs="+", help="only these species (default: all)")
    parser.add_argument("--n", type=int, default=12, help="generated songs per variant")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.run_path / "realism.json").is_file() or not (args.run_path / "models").is_dir():
        raise ValueError(f"run_path {args.run_path} holds no realism.json and models/")
    if args.n < 1 or args.seconds <= 0:
        raise ValueError(f"need n >= 1 and seconds > 0, got n={args.n}, seconds={args.seconds}")
    return args


def diagnose(
    bank: SpeciesBank,
    species: str,
    train_audio: list[np.ndarray],
    args: argparse.Namespace,
    judge: BirdNETJudge,
) -> dict[str, object]:
    """BirdNET's ``{"n", "top1", "top5", "confidence"}`` on each kind of clip of ``species``."""
    real = [w for audio in train_audio for w in windows(audio, args.seconds, RATE)]
    clips = {
        "sample": list(bank.sample(species, args.n, args.seconds, RATE, seed=args.seed)),
        "resynth": [
            bank.resynthesize(species, w, RATE, seed=args.seed + i) for i, w in enumerate(real)
        ],
        "sample_model_noise": list(
            bank.sample(species, args.n, args.seconds, RATE, seed=args.seed, noise="model")
        ),
        "resynth_model_noise": [
            bank.resynthesize(species, w, RATE, seed=args.seed + i, noise="model")
            for i, w in enumerate(real)
        ],
    }
    for name, overrides in VARIANTS.items():
        songs = bank.sample(species, args.n, args.seconds, RATE, seed=args.seed, **overrides)
        clips[name] = list(songs)
    rng = np.random.default_rng(args.seed)
    for bands in VOCODER_BANDS:
        for suffix, clean in (("", False), ("_clean", True)):
            clips[f"vocoder_{bands}{suffix}"] = [vocoder(w, bands, clean, rng) for w in real]
    row: dict[str, object] = {"species": species}
    row["train_real"] = judge_species(species, real, [], RATE, judge)["real"]
    for name, found in clips.items():
        row[name] = judge_species(species, [], found, RATE, judge)["generated"]
    return row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = json.loads((args.run_path / "realism.json").read_text("utf-8"))
    data_path = args.data_path or Path(run["settings"]["data_path"])
    with open(data_path / "manifest.csv", newline="", encoding="utf-8") as handle:
        paths = {Path(r["path"]).stem: data_path / r["path"] for r in csv.DictReader(handle)}
    started = time.perf_counter()
    judge = BirdNETJudge()
    rows = []
    for entry in run["species"]:
        species = entry["species"]
        if (args.species and species not in args.species) or "failed" in entry:
            continue
        train_audio = []
        for name in entry["train"]:
            try:
                train_audio.append(load_audio(paths[name], RATE)[0])
            except (KeyError, AudioError) as error:
                print(f"skipping {name}: {error}", file=sys.stderr)
        bank = SpeciesBank.load(args.run_path / "models" / species)
        row = diagnose(bank, species, train_audio, args, judge)
        rows.append(row)
        print(json.dumps({k: v["top1"] if isinstance(v, dict) else v for k, v in row.items()}))
    kinds = ("train_real", "resynth", "sample", "resynth_model_noise", "sample_model_noise")
    kinds += tuple(VARIANTS)
    kinds += tuple(f"vocoder_{b}{s}" for b in VOCODER_BANDS for s in ("", "_clean"))
    summary = {
        kind: float(np.mean([r[kind]["top1"] for r in rows if r[kind]])) if rows else None
        for kind in kinds
    }
    result = {
        "settings": {**vars(args), "run_path": str(args.run_path), "data_path": str(data_path)},
        "summary_top1": summary,
        "species": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
