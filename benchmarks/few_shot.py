"""Does a shared prior help species with two recordings? Prior vs scratch, as JSON.

On a manifest folder (``<Genus_species>/<clip>`` + ``manifest.csv`` with recordists), per seed:
whole recordists of every species are held out for test (about a third of the clips), ``--targets``
species are cut to 2 training recordings (the rare ones), the others keep the rest (the
majority). One prior (``training.prior.train_prior``) is trained on every species' training
side; then each target species is trained with the same small budget

- ``scratch``: from random weights (what ``train`` does without ``--prior``);
- ``prior``: fine-tuned from the prior, all layers, same learning rate;
- ``prior_core``: fine-tuned with the prior's input and dilated-conv layers frozen;
- ``prior_low_lr``: all layers at 0.3x the learning rate;

and also ``prior_only``: the prior itself, not adapted. Scored on held-out stretches (the last
quarter of each of the two recordings, the validation ``train`` uses: ``stretch_spectral``, the
best epoch's) and on the held-out recordists' clips, resynthesised from their own contours with
their background (``recordist_spectral``, ``f0_within_50_cents``, ``loudness_mae_db``, and
``vs_sine_noise``: the ratio to a sine-plus-background baseline, < 1 beats it). Lower spectral
distance is better. Times: the prior's pretraining and each species' training, wall seconds.

    nice -n 10 python benchmarks/few_shot.py --targets 6 --epochs 8 --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from _common import pin_threads, print_json

pin_threads(1)  # one thread per job; before numpy/torch are imported

import numpy as np  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402
from realism import split_species  # noqa: E402
from train_quality import evaluate_recording  # noqa: E402

from ddsp_augment.model.storage import load_prior, load_species_model  # noqa: E402
from ddsp_augment.training.preprocess import (  # noqa: E402
    Recording,
    load_processed,
    preprocess_folder,
)
from ddsp_augment.training.prior import PRIOR_DIR, train_prior  # noqa: E402
from ddsp_augment.training.train import (  # noqa: E402
    CollapseError,
    TrainSettings,
    train_species,
)

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("scratch", "prior", "prior_core", "prior_low_lr")
QUIET = {"progress": False, "log": lambda _: None}


def variant_settings(name: str, settings: TrainSettings, prior: Path) -> TrainSettings:
    if name == "scratch":
        return settings
    tuned = replace(settings, prior=str(prior))
    if name == "prior_core":
        return replace(tuned, prior_freeze="core")
    if name == "prior_low_lr":
        return replace(tuned, learning_rate=0.3 * settings.learning_rate)
    return tuned


def recordist_scores(saved, test: list[Recording]) -> dict[str, float]:
    """Mean scores of a model's resynthesis of the held-out recordists' clips."""
    rows = [evaluate_recording(saved, rec) for rec in test]
    mean = lambda key: float(np.nanmean([r[key] for r in rows]))  # noqa: E731
    return {
        "recordist_spectral": mean("val_spectral_distance"),
        "f0_within_50_cents": mean("f0_within_50_cents"),
        "loudness_mae_db": mean("loudness_mae_db"),
        "vs_sine_noise": mean("val_spectral_distance")
        / mean("sine_noise_baseline_spectral_distance"),
    }


def run_one(
    species: str,
    variant: str,
    train: list[Recording],
    test: list[Recording],
    settings: TrainSettings,
    directory: Path,
) -> dict:
    tic = time.perf_counter()
    try:
        result = train_species(train, directory, settings, **QUIET)
    except CollapseError as error:
        return {"species": species, "variant": variant, "failed": str(error)}
    wall = time.perf_counter() - tic
    return {
        "species": species,
        "variant": variant,
        "stretch_spectral": result.best["val_spectral_distance"],
        "best_epoch": result.best["epoch"],
        **recordist_scores(load_species_model(directory), test),
        "wall_seconds": round(wall, 1),
    }


def load_split(
    data_path: Path, processed: Path, n_targets: int, targets: list[str] | None, seed: int
) -> tuple[list[str], dict[str, list[Recording]], dict[str, list[Recording]]]:
    """``(targets, train, test)``: recordings per species, recordists held out for test."""
    with open(data_path / "manifest.csv", newline="", encoding="utf-8") as handle:
        manifest = list(csv.DictReader(handle))
    by_species: dict[str, list[dict[str, str]]] = {}
    for row in manifest:
        by_species.setdefault(row["species"], []).append(row)
    names = sorted(by_species)
    if targets is None:
        targets = sorted(np.random.default_rng(seed).choice(names, n_targets, replace=False))
    rng = np.random.default_rng(seed + 1)
    train, test = {}, {}
    for name in names:
        recs = {p.stem: load_processed(p) for p in (processed / name).glob("*.npz")}
        keep = 2 if name in targets else len(by_species[name])
        train_rows, test_rows = split_species(by_species[name], keep, rng)
        stems = [[Path(r["path"]).stem for r in rows] for rows in (train_rows, test_rows)]
        train[name], test[name] = ([recs[s] for s in part if s in recs] for part in stems)
    return list(targets), train, test


def summarise(rows: list[dict]) -> dict:
    """Per variant: means over target species, and the paired difference to ``scratch``
    (negative = the variant's distance is lower), with how many species it improved."""
    by = {(r["species"], r["variant"]): r for r in rows if "failed" not in r}
    species = sorted({r["species"] for r in rows})
    out = {}
    for variant in ("prior_only", *VARIANTS):
        done = [by[s, variant] for s in species if (s, variant) in by]
        if not done:
            continue
        keys = [k for k in done[0] if isinstance(done[0][k], float) or k == "wall_seconds"]
        entry: dict = {k: float(np.mean([r[k] for r in done])) for k in keys}
        entry["failed"] = len(species) - len(done)
        for key in ("stretch_spectral", "recordist_spectral"):
            diffs = [
                r[key] - by[r["species"], "scratch"][key]
                for r in done
                if variant != "scratch" and key in r and (r["species"], "scratch") in by
            ]
            if diffs:
                entry[f"{key}_minus_scratch"] = float(np.mean(diffs))
                entry[f"{key}_better_than_scratch"] = f"{sum(d < 0 for d in diffs)}/{len(diffs)}"
        out[variant] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_path", type=Path, default=ROOT.parent / "shared/data/xc-germany-20")
    parser.add_argument("--targets", type=int, default=6, help="species cut to 2 recordings")
    parser.add_argument("--species", nargs="+", help="these target species instead")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=8, help="species budget (epochs)")
    parser.add_argument("--steps_per_epoch", type=int, default=30)
    parser.add_argument("--prior_epochs", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work_dir", type=Path, default=ROOT / ".cache" / "few_shot")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    processed = args.work_dir / "processed"
    preprocess_folder(args.data_path, processed, jobs=args.jobs, progress=False)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report: dict = {"settings": options, "seeds": {}}
    all_rows = []
    for seed in args.seeds:
        targets, train, test = load_split(
            args.data_path, processed, args.targets, args.species, seed
        )
        settings = TrainSettings(
            epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, seed=seed, threads=1
        )
        work = args.work_dir / f"seed{seed}"
        tic = time.perf_counter()
        prior_dir = train_prior(
            [r for recs in train.values() for r in recs],
            work / PRIOR_DIR,
            replace(settings, epochs=args.prior_epochs),
            **QUIET,
        )
        prior_seconds = time.perf_counter() - tic
        prior = load_prior(prior_dir)
        rows = [
            {"species": s, "variant": "prior_only", **recordist_scores(prior, test[s])}
            for s in targets
        ]
        rows += Parallel(n_jobs=args.jobs)(
            delayed(run_one)(
                s, v, train[s], test[s], variant_settings(v, settings, prior_dir), work / v / s
            )
            for s in targets
            for v in args.variants
        )
        for row in rows:
            print(json.dumps(row), file=sys.stderr, flush=True)
        all_rows += [{**r, "seed": seed} for r in rows]
        report["seeds"][seed] = {
            "targets": [str(t) for t in targets],
            "prior_seconds": round(prior_seconds, 1),
            "prior_training_recordings": sum(len(v) for v in train.values()),
            "prior_best": prior.info["metrics"],
            "summary": summarise(rows),
            "rows": rows,
        }
    report["summary"] = summarise(
        [{**r, "species": f"{r['seed']}/{r['species']}"} for r in all_rows]
    )
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    print_json(report, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
