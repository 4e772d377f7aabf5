"""End-to-end generation speed and bank memory. Prints one JSON object.

Contour sampling + jitter + decoder + synthesis + scene (measured background) for 3 s clips at
32 kHz on one thread: the numba backend one clip per call, the torch backend one clip per call
(``x_realtime_torch``, today's per-clip path) and batched, ``n`` clips per call on the CPU
(n = 1, 16, 256) and, when CUDA is present, on the GPU (n = 1, 16, 256, 1024). Also the memory a
bank holds and whether sampling ``--growth_clips`` clips grows the process.

Without ``--models`` it trains (once, cached under ``.cache/generate_speed``) a small bank of
two species from the bundled recordings, with the default decoder architecture: speed depends
on the architecture, not on how well the model sings.

    python benchmarks/generate_speed.py                  # bundled data, cached bank
    python benchmarks/generate_speed.py --models models/
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

from ddsp_augment.augment.bank_builder import Clip, build_bank
from ddsp_augment.io import load_audio
from ddsp_augment.sampling.bank import SpeciesBank
from ddsp_augment.sampling.scene import SceneConfig
from ddsp_augment.training.train import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
CLIP_SECONDS = 3.0
# The bundled tonal songs the test bank is also trained on.
BUNDLED = {
    "Parus_major": sorted((ROOT / "tests" / "data" / "Parus_major").glob("*.wav")),
    "Fringilla_coelebs": sorted(
        (ROOT / "benchmarks" / "data" / "xc-germany" / "Fringilla_coelebs").glob("*.mp3")
    )[:4],
}
# Brief training: enough for a model that sings, quick on one core.
BANK_SETTINGS = TrainSettings(
    epochs=3, steps_per_epoch=10, batch_size=4, crop_seconds=0.5, seed=0, threads=1, device="cpu"
)


def cached_bank(directory: Path) -> SpeciesBank:
    """The bundled species trained (or reused: same clips and settings) under ``directory``."""
    clips = [
        Clip(load_audio(path, 32000)[0], species, path.stem, recordist=path.stem)
        for species, paths in BUNDLED.items()
        for path in paths
    ]
    bank, failures = build_bank(clips, directory, BANK_SETTINGS)
    if failures:
        print(f"note: no model for {sorted(failures)}", file=sys.stderr)
    return bank


def _seconds_per_call(
    bank: SpeciesBank, backend: str, scene: SceneConfig, n: int, calls: int, device: str = "cpu"
) -> float:
    species = bank.species
    sample = lambda i, k: bank.sample(  # noqa: E731
        species[i % len(species)],
        n=k,
        seconds=CLIP_SECONDS,
        seed=i,
        backend=backend,
        scene=scene,
        device=device,
    )
    sample(0, min(n, 2))  # warm-up: numba compilation, FFT plans, CUDA context
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(calls):
        sample(i, n)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def _x_realtime(seconds_per_call: float, n: int) -> float:
    return round(n * CLIP_SECONDS / seconds_per_call, 1)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None, help="default: a cached small bank")
    parser.add_argument("--cache_dir", type=Path, default=ROOT / ".cache" / "generate_speed")
    parser.add_argument("--clips", type=int, default=60, help="clips per per-clip timing")
    parser.add_argument("--growth_clips", type=int, default=2000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    bank = SpeciesBank.load(args.models) if args.models else cached_bank(args.cache_dir)
    scene = SceneConfig(background="measured")
    numba_s = _seconds_per_call(bank, "numba", scene, 1, args.clips)
    torch_s = _seconds_per_call(bank, "torch", scene, 1, max(5, args.clips // 4))
    clean_s = _seconds_per_call(bank, "numba", SceneConfig(background="none"), 1, args.clips)
    batched = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        sizes = (1, 16, 256) + ((1024,) if device == "cuda" else ())
        for n in sizes:
            # About as many clips per size: a few calls of the small batches, one of 256.
            calls = max(1, 32 // n) if device == "cpu" else max(3, 1024 // n)
            seconds = _seconds_per_call(bank, "torch", scene, n, calls, device)
            batched[f"x_realtime_torch_{device}_n{n}"] = _x_realtime(seconds, n)
            batched[f"ms_per_3s_clip_torch_{device}_n{n}"] = round(1000 * seconds / n, 2)
    rss_before = _rss_mb()
    for i in range(args.growth_clips):
        bank.sample(bank.species[i % len(bank)], n=1, seconds=CLIP_SECONDS, seed=i, scene=scene)
    rss_after = _rss_mb()
    report = {
        "species": len(bank),
        "x_realtime_numba": _x_realtime(numba_s, 1),
        "x_realtime_torch": _x_realtime(torch_s, 1),
        **{k: v for k, v in batched.items() if k.startswith("x_")},
        "ms_per_3s_clip_numba": round(1000 * numba_s, 2),
        "ms_per_3s_clip_torch": round(1000 * torch_s, 2),
        "ms_per_3s_clip_numba_clean_bird": round(1000 * clean_s, 2),
        **{k: v for k, v in batched.items() if k.startswith("ms_")},
        "numba_vs_torch": round(torch_s / numba_s, 2),
        "bank_mb": round(bank.nbytes / 2**20, 3),
        "bank_mb_per_species": round(bank.nbytes / 2**20 / len(bank), 3),
        "rss_growth_mb_over_growth_clips": round(rss_after - rss_before, 1),
        "growth_clips": args.growth_clips,
        "threads": 1,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
