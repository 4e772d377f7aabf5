"""What the speed benchmarks share: thread pinning, timing, JSON output, bundled-data models.

Imports only the standard library at module level, so a script can pin its threads (which
numba, OpenMP and BLAS read once, at import) before it imports numpy or torch.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ddsp_augment.sampling.bank import SpeciesBank

__all__ = ["BUNDLED_DATA", "bundled_bank", "pin_threads", "print_json", "timed"]

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_DATA = ROOT / "benchmarks" / "data" / "xc-germany"
_THREAD_VARIABLES = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)
T = TypeVar("T")


def pin_threads(threads: int = 1) -> None:
    """Run numba, OpenMP, BLAS and torch on ``threads`` threads. Call before importing numpy,
    numba or torch for the first three to take effect."""
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def timed(fn: Callable[[], T], repeats: int) -> tuple[float, float, T]:
    """``(median wall seconds, median thread-CPU seconds, last output)`` of ``repeats`` calls
    after one warm-up call (jit compilation, caches). Thread CPU time is what a busy machine
    does not inflate; wall time is what a user waits."""
    out = fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.thread_time()
        out = fn()
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return statistics.median(wall), statistics.median(cpu), out


def _rounded(value: Any, digits: int) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v, digits) for v in value]
    return value


def print_json(report: dict[str, Any], digits: int = 4, indent: int | None = None) -> None:
    """Print ``report`` as ONE JSON object on stdout, floats to ``digits`` significant digits."""
    print(json.dumps(_rounded(report, digits), indent=indent), flush=True)


def bundled_bank(
    directory: Path, n_species: int = 2, decoder: dict[str, Any] | None = None
) -> SpeciesBank:
    """Quick tiny models of the ``n_species`` smallest classes of the bundled clips, trained
    into ``directory`` (reused while the clips and settings are unchanged): the plumbing and its
    cost, not good audio. Pass real models to a benchmark for real numbers. ``decoder``: the
    architecture (`DecoderConfig` overrides; default ``{"hidden": 32}``; ``{}`` is the library
    default, what a speed benchmark should time)."""
    from ddsp_augment.augment.bank_builder import Clip, build_bank
    from ddsp_augment.constants import SAMPLE_RATE
    from ddsp_augment.io import load_audio, scan_folder
    from ddsp_augment.training.preprocess import read_manifest
    from ddsp_augment.training.train import TrainSettings

    files = scan_folder(BUNDLED_DATA)
    counts = {s: sum(1 for _, t in files if t == s) for _, s in files}
    chosen = sorted(sorted(counts), key=counts.get)[:n_species]
    recordists = read_manifest(BUNDLED_DATA)
    clips = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clipping notes on a few field recordings
        for path, species in files:
            if species in chosen:
                # Named as examples/balance_dataloader.py names them: the two share the models.
                audio, _ = load_audio(path, SAMPLE_RATE)
                recordist = recordists.get(f"{species}/{path.name}", path.stem)
                clips.append(Clip(audio, species, path.stem, recordist))
    decoder = {"hidden": 32} if decoder is None else decoder
    settings = TrainSettings(epochs=3, steps_per_epoch=8, batch_size=4, decoder=decoder)
    print(f"training quick models of {chosen} into {directory} ...", file=sys.stderr)
    bank, failures = build_bank(clips, directory, settings)
    for species, reason in failures.items():
        print(f"  no model for {species}: {reason}", file=sys.stderr)
    return bank
