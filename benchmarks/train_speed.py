"""Training speed: seconds per species, one at a time and two at a time. Prints one JSON object.

Preprocesses (once, cached under ``.cache/train_speed``) the bundled tonal songs of two species
(great tit, chaffinch) and trains both with the library's default decoder for a short fixed
schedule, from scratch each run:

* ``seconds_per_species_cpu_sequential``: ``train_folder(jobs=1)``, one thread;
* ``seconds_per_species_cpu_jobs2``: ``train_folder(jobs=2)`` through joblib, one thread each
  (wall seconds of the whole run divided by the species count);
* ``seconds_per_species_cuda_sequential`` when CUDA is present;
* ``val_spectral_distance_*``: the mean final validation spectral distance of each run, which
  should not depend on how the species were scheduled.

Many species trained at once on one GPU (stacked weights, ``torch.func.vmap``) is not built
yet; the CUDA figure is the per-species path on the GPU.

    python benchmarks/train_speed.py [--epochs 4] [--steps 10]
"""

from __future__ import annotations

from _common import ROOT, pin_threads, print_json

pin_threads(1)

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from ddsp_augment.training.preprocess import preprocess_folder  # noqa: E402
from ddsp_augment.training.train import TrainSettings, train_folder  # noqa: E402

SONGS = {
    "Parus_major": sorted((ROOT / "tests" / "data" / "Parus_major").glob("*.wav")),
    "Fringilla_coelebs": sorted(
        (ROOT / "benchmarks" / "data" / "xc-germany" / "Fringilla_coelebs").glob("*.mp3")
    ),
}


def _processed(cache: Path) -> Path:
    """The bundled songs, linked into ``<cache>/data/<species>/`` and preprocessed (reused)."""
    data = cache / "data"
    for species, paths in SONGS.items():
        (data / species).mkdir(parents=True, exist_ok=True)
        for path in paths:
            link = data / species / path.name
            if not link.exists():
                link.symlink_to(path)
    out = cache / "processed"
    preprocess_folder(data, out, progress=False)
    return out


def _run(processed: Path, models: Path, settings: TrainSettings, jobs: int) -> tuple[float, float]:
    """(wall seconds per species, mean final validation spectral distance) of one fresh run."""
    shutil.rmtree(models, ignore_errors=True)
    start = time.perf_counter()
    results = train_folder(processed, models, settings, jobs=jobs, progress=False)
    seconds = (time.perf_counter() - start) / len(results)
    trained = [r["val_spectral_distance"] for r in results if r["status"] == "trained"]
    return seconds, statistics.fmean(trained) if trained else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch")
    parser.add_argument("--cache_dir", type=Path, default=ROOT / ".cache" / "train_speed")
    args = parser.parse_args(argv)
    processed = _processed(args.cache_dir)
    report: dict = {"species": len(SONGS), "epochs": args.epochs, "steps_per_epoch": args.steps}
    runs = [("cpu_sequential", "cpu", 1), ("cpu_jobs2", "cpu", 2)]
    if torch.cuda.is_available():
        runs.append(("cuda_sequential", "cuda", 1))
    for name, device, jobs in runs:
        settings = TrainSettings(
            epochs=args.epochs, steps_per_epoch=args.steps, seed=0, threads=1, device=device
        )
        seconds, distance = _run(processed, args.cache_dir / "models" / name, settings, jobs)
        report[f"seconds_per_species_{name}"] = seconds
        report[f"val_spectral_distance_{name}"] = distance
    report["jobs2_speedup"] = (
        report["seconds_per_species_cpu_sequential"] / report["seconds_per_species_cpu_jobs2"]
    )
    report["cuda"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    print_json(report, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
