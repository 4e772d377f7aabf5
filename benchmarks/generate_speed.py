"""End-to-end generation speed and bank memory. Prints one JSON object.

Contour sampling + jitter + decoder + synthesis + scene (measured background) for 3 s clips at
32 kHz on one core, numba and torch backends in the same run, plus the memory a 20-species bank
holds and whether sampling 100 000 clips' worth of calls grows the process.

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

from ddsp_augment.sampling.bank import SpeciesBank
from ddsp_augment.sampling.scene import SceneConfig


def _ms_per_clip(bank: SpeciesBank, backend: str, scene: SceneConfig, clips: int) -> float:
    species = bank.species
    bank.sample(species[0], n=2, seconds=3.0, seed=0, backend=backend, scene=scene)  # warm-up
    start = time.perf_counter()
    for i in range(clips):
        bank.sample(
            species[i % len(species)], n=1, seconds=3.0, seed=i, backend=backend, scene=scene
        )
    return 1000 * (time.perf_counter() - start) / clips


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--growth_clips", type=int, default=2000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    bank = SpeciesBank.load(args.models)
    scene = SceneConfig(background="measured")
    numba_ms = _ms_per_clip(bank, "numba", scene, args.clips)
    torch_ms = _ms_per_clip(bank, "torch", scene, max(5, args.clips // 4))
    clean_ms = _ms_per_clip(bank, "numba", SceneConfig(background="none"), args.clips)
    rss_before = _rss_mb()
    for i in range(args.growth_clips):
        bank.sample(bank.species[i % len(bank)], n=1, seconds=3.0, seed=i, scene=scene)
    rss_after = _rss_mb()
    report = {
        "species": len(bank),
        "x_realtime_numba": round(3000 / numba_ms, 1),
        "x_realtime_torch": round(3000 / torch_ms, 1),
        "ms_per_3s_clip_numba": round(numba_ms, 2),
        "ms_per_3s_clip_torch": round(torch_ms, 2),
        "ms_per_3s_clip_numba_clean_bird": round(clean_ms, 2),
        "numba_vs_torch": round(torch_ms / numba_ms, 2),
        "bank_mb": round(bank.nbytes / 2**20, 3),
        "bank_mb_per_species": round(bank.nbytes / 2**20 / len(bank), 3),
        "rss_growth_mb_over_growth_clips": round(rss_after - rss_before, 1),
        "growth_clips": args.growth_clips,
        "threads": 1,
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
