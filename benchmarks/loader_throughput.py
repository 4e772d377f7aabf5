"""DataLoader throughput with and without DDSPBalancedDataset, and per-item synthesis cost.

Prints ONE JSON object:
- ``plain_items_per_s`` / ``balanced_items_per_s``: items per second over one shuffled epoch,
  ``{"0": ..., "2": ...}`` by DataLoader worker count (persistent workers, timed after a warm-up
  epoch). The balanced dataset adds as many synthetic items as there are real ones
  (``synthetic_fraction``), spread over the bank's species.
- ``synthetic_ms_per_item``: one synthetic item (template lookup, song with a measured-background
  scene, tensor), CPU time of one single-threaded process (``*_wall``: wall-clock time).
- ``synthetic_scene_ms_per_item``: the same with DDSPBalancedDataset's defaults, the classifier
  benchmark's setting: ``backgrounds="dataset"`` and a scene with distance and reverb (one FFT
  more per song).
- ``resynth_ms_per_item``: ``DDSPSynth(mode="resynth", p=1)`` on one real clip, likewise.

Items are 3 s at 32 kHz, cut from the bundled clips (decoded once, held in memory, so the plain
loader measures the loader itself, not MP3 decoding). Without models in ``--models``, quick tiny
models are trained first (``_common.bundled_bank``); pass real models for real numbers.

    python benchmarks/loader_throughput.py [--models models/]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import BUNDLED_DATA, ROOT, bundled_bank, pin_threads, print_json
from torch.utils.data import DataLoader, Dataset

from ddsp_augment.augment.dataset import DDSPBalancedDataset
from ddsp_augment.augment.ddsp_synth import DDSPSynth
from ddsp_augment.constants import SAMPLE_RATE
from ddsp_augment.io import load_audio, scan_folder
from ddsp_augment.model.storage import is_model_dir
from ddsp_augment.sampling.bank import SpeciesBank
from ddsp_augment.sampling.scene import SceneConfig

QUICK_MODELS = ROOT / ".cache" / "quick-models"
SECONDS = 3.0


class MemoryClips(Dataset):
    """torchaudio-style ``(waveform [1, time], sample_rate, species, clip_id)`` held in memory."""

    def __init__(self, root: Path) -> None:
        n = int(SECONDS * SAMPLE_RATE)
        self.items = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # clipping notes on field recordings
            for path, species in scan_folder(root):
                audio, _ = load_audio(path, SAMPLE_RATE)
                audio = np.pad(audio[:n], (0, max(0, n - audio.shape[0])))
                self.items.append(
                    (torch.from_numpy(audio)[None, :], SAMPLE_RATE, species, path.stem)
                )
        self.targets = [item[2] for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str, str]:
        return self.items[index]


def _items_per_s(dataset: Dataset, workers: int, batch_size: int) -> float:
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    rates = []
    for epoch in range(2):  # epoch 0 warms up workers, numba caches and the template caches
        if isinstance(dataset, DDSPBalancedDataset):
            dataset.set_epoch(epoch)
        start = time.perf_counter()
        items = sum(batch[0].shape[0] for batch in loader)
        rates.append(items / (time.perf_counter() - start))
    return round(rates[-1], 1)


def _ms_per_call(calls: list[Callable[[], object]]) -> tuple[float, float]:
    """(CPU ms, wall ms) per call. CPU time of this single-threaded process is what one free core
    would take; wall time also counts waiting for a core on a busy machine."""
    cpu, wall = time.process_time(), time.perf_counter()
    for call in calls:
        call()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return round(1000 * cpu / len(calls), 2), round(1000 * wall / len(calls), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=QUICK_MODELS)
    parser.add_argument("--data", type=Path, default=BUNDLED_DATA)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    pin_threads(1)

    has_models = args.models.is_dir() and (
        is_model_dir(args.models) or any(is_model_dir(p) for p in args.models.iterdir())
    )
    bank = SpeciesBank.load(args.models) if has_models else bundled_bank(args.models)
    plain = MemoryClips(args.data)
    counts = {s: plain.targets.count(s) for s in set(plain.targets)}
    extra = len(plain) // len(bank.species)
    target = {s: counts[s] + extra for s in bank.species if s in counts}
    if not target:
        raise SystemExit(f"no species of {args.models} in {args.data}")
    # The plain measured-background song; the default setting is timed below as "scene".
    balanced = DDSPBalancedDataset(
        plain,
        bank,
        target=target,
        seed=0,
        scene=SceneConfig(background="measured"),
        backgrounds="species",
        progress=False,
    )
    synthetic = range(len(plain), len(balanced))

    report = {
        "items": {"real": len(plain), "synthetic": len(synthetic)},
        "synthetic_fraction": round(len(synthetic) / len(balanced), 3),
        "seconds_per_item": SECONDS,
        "sample_rate": SAMPLE_RATE,
        "bank_species": bank.species,
        "plain_items_per_s": {},
        "balanced_items_per_s": {},
    }
    for workers in (0, 2):
        report["plain_items_per_s"][str(workers)] = _items_per_s(plain, workers, args.batch_size)
        report["balanced_items_per_s"][str(workers)] = _items_per_s(
            balanced, workers, args.batch_size
        )

    balanced.set_epoch(2)  # songs not drawn before; templates already cached
    report["synthetic_ms_per_item"], report["synthetic_ms_per_item_wall"] = _ms_per_call(
        [lambda i=i: balanced[i] for i in synthetic]
    )

    in_scene = DDSPBalancedDataset(plain, bank, target=target, seed=0, progress=False)  # defaults
    for i in synthetic:  # warm-up epoch: caches the templates, as the loader runs above did
        in_scene[i]
    in_scene.set_epoch(2)
    report["synthetic_scene_ms_per_item"], report["synthetic_scene_ms_per_item_wall"] = (
        _ms_per_call([lambda i=i: in_scene[i] for i in synthetic])
    )

    real = [(item[0][0].numpy(), item[2]) for item in plain.items if item[2] in bank]
    resynth = {s: DDSPSynth(bank, s, p=1.0, seed=0) for s in bank.species}
    resynth[real[0][1]](real[0][0], SAMPLE_RATE)  # warm-up
    report["resynth_ms_per_item"], report["resynth_ms_per_item_wall"] = _ms_per_call(
        [lambda c=clip, s=species: resynth[s](c, SAMPLE_RATE) for clip, species in real]
    )
    report["threads_per_process"] = 1

    print_json(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
