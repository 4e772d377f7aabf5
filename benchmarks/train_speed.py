"""Training speed: seconds per species, one at a time and all at once (stacked). Prints one JSON
object.

Preprocesses (once, cached under ``.cache/train_speed``) the bundled xeno-canto clips of
``--species`` species (songbirds first: great tit, chaffinch, blackbird, robin, then the rest by
name) and trains them with the library's default decoder for a short fixed schedule, from
scratch each run, on one thread:

* ``seconds_per_species_cpu_sequential``: ``train_folder(together=False)``, one species after
  the other, on the first ``--cpu_species`` species (default: all);
* ``seconds_per_species_cpu_stacked``: ``train_folder(together=True)``, all species at once
  (``training.stacked``), and ``stacked_speedup_cpu``, the ratio of the two (wall time;
  ``cpu_seconds_*`` and ``stacked_speedup_cpu_time`` the same in process CPU time);
* with ``--device cuda``: ``seconds_per_species_cuda_stacked`` (all species at once on the GPU),
  ``seconds_cuda_stacked_total`` and ``cuda_stacked_speedup_vs_cpu_sequential``; the CPU stacked
  run is skipped there;
* ``val_spectral_distance_*``: the mean final validation spectral distance of each run over the
  species it trained (the sequential run's ``..._same_species`` over the same species as the
  stacked one), which should not depend on how the species were scheduled.

    python benchmarks/train_speed.py [--species 4] [--epochs 4] [--steps 10] [--device cpu]
    # GPU machine: 20 species on the default schedule (30 x 30 steps) against one on the CPU
    python benchmarks/train_speed.py --device cuda --species 20 --cpu_species 1 \
        --epochs 30 --steps 30
    # ... or the CPU reference side by side, in a second process (gpu_check.sh does this)
    python benchmarks/train_speed.py --device cuda --species 20 --cpu_species 0 & \
    python benchmarks/train_speed.py --species 1 --cpu_species 1
"""

from __future__ import annotations

from _common import BUNDLED_DATA, pin_threads, print_json

pin_threads(1)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from ddsp_augment.training.preprocess import preprocess_folder  # noqa: E402
from ddsp_augment.training.train import TrainSettings, train_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SONGBIRDS = ("Parus_major", "Fringilla_coelebs", "Turdus_merula", "Erithacus_rubecula")


def _species(n: int) -> list[str]:
    everyone = sorted(p.name for p in BUNDLED_DATA.iterdir() if p.is_dir())
    order = [s for s in SONGBIRDS if s in everyone] + [s for s in everyone if s not in SONGBIRDS]
    if not 1 <= n <= len(order):
        raise SystemExit(f"--species must be in 1..{len(order)}, got {n}")
    return order[:n]


def _processed(cache: Path, species: list[str]) -> Path:
    """The bundled clips of ``species``, linked into ``<cache>/data/<species>/`` and
    preprocessed (reused)."""
    data = cache / "data"
    for name in species:
        (data / name).mkdir(parents=True, exist_ok=True)
        for path in sorted((BUNDLED_DATA / name).iterdir()):
            link = data / name / path.name
            if not link.exists():
                link.symlink_to(path)
    manifest = data / "manifest.csv"
    if not manifest.exists():
        manifest.symlink_to(BUNDLED_DATA / "manifest.csv")
    out = cache / "processed"
    preprocess_folder(data, out, jobs=os.cpu_count() or 1, species=species, progress=False)
    return out


def _run(
    processed: Path, models: Path, settings: TrainSettings, species: list[str], together: bool
) -> tuple[float, dict[str, float]]:
    """(wall seconds per species, CPU seconds per species, {species: final validation spectral
    distance}) of a fresh run. CPU time (this process, one thread) is what a busy shared machine
    inflates least."""
    shutil.rmtree(models, ignore_errors=True)
    start, start_cpu = time.perf_counter(), time.process_time()
    # The per-epoch log lines go to stderr: stdout is the one JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        results = train_folder(
            processed, models, settings, species, together=together, progress=False
        )
    seconds = (time.perf_counter() - start) / len(results)
    cpu_seconds = (time.process_time() - start_cpu) / len(results)
    return (
        seconds,
        cpu_seconds,
        {r["species"]: r["val_spectral_distance"] for r in results if r["status"] == "trained"},
    )


def _mean(values) -> float:
    values = list(values)
    return statistics.fmean(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", type=int, default=4, help="species trained (default 4)")
    parser.add_argument(
        "--cpu_species",
        type=int,
        help="species of the CPU one-at-a-time run (default: all; 0: none, with --device cuda)",
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--cache_dir", type=Path, default=ROOT / ".cache" / "train_speed")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    species = _species(args.species)
    processed = _processed(args.cache_dir, species)
    cpu_species = species if args.cpu_species is None else species[: args.cpu_species]
    if not cpu_species and args.device != "cuda":
        raise SystemExit("--cpu_species 0 needs --device cuda: there would be nothing to time")
    report: dict = {
        "species": len(species),
        "cpu_sequential_species": len(cpu_species),
        "epochs": args.epochs,
        "steps_per_epoch": args.steps,
    }
    settings = TrainSettings(epochs=args.epochs, steps_per_epoch=args.steps, seed=0, threads=1)
    runs = [("cpu_sequential", "cpu", cpu_species, False)] if cpu_species else []
    if args.device == "cuda":
        runs.append(("cuda_stacked", "cuda", species, True))
    else:
        runs.append(("cpu_stacked", "cpu", species, True))
    distances: dict[str, dict[str, float]] = {}
    # One untimed step of each kind first: numba compiles the validation's F0 tracker on first
    # use, which would otherwise be charged to whichever run came first.
    for _, device, _, together in runs:
        brief = replace(settings, epochs=1, steps_per_epoch=1, device=device)
        _run(processed, args.cache_dir / "models" / "warm-up", brief, species[:1], together)
    for name, device, names, together in runs:
        seconds, cpu_seconds, distances[name] = _run(
            processed,
            args.cache_dir / "models" / name,
            replace(settings, device=device),
            names,
            together,
        )
        report[f"seconds_per_species_{name}"] = seconds
        report[f"cpu_seconds_per_species_{name}"] = cpu_seconds
        report[f"val_spectral_distance_{name}"] = _mean(distances[name].values())
        report[f"trained_{name}"] = len(distances[name])
    stacked = runs[-1][0]
    if args.device == "cuda":
        report["cuda"] = torch.cuda.get_device_name()
    if not cpu_species:  # the CPU reference runs elsewhere (another process, same machine)
        print_json(report, indent=2)
        return 0
    shared = [s for s in distances["cpu_sequential"] if s in distances[stacked]]
    report["val_spectral_distance_cpu_sequential_same_species"] = _mean(
        distances["cpu_sequential"][s] for s in shared
    )
    report[f"val_spectral_distance_{stacked}_same_species"] = _mean(
        distances[stacked][s] for s in shared
    )
    ratio = report["seconds_per_species_cpu_sequential"] / report[f"seconds_per_species_{stacked}"]
    if args.device == "cuda":
        report["seconds_cuda_stacked_total"] = report["seconds_per_species_cuda_stacked"] * len(
            species
        )
        report["cuda_stacked_speedup_vs_cpu_sequential"] = ratio
    else:
        report["stacked_speedup_cpu"] = ratio
        report["stacked_speedup_cpu_time"] = (
            report["cpu_seconds_per_species_cpu_sequential"]
            / report["cpu_seconds_per_species_cpu_stacked"]
        )
    print_json(report, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
