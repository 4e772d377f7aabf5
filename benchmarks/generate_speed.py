"""End-to-end generation speed and bank memory. Prints one JSON object.

Contour sampling + jitter + decoder + synthesis + scene (measured background) for 3 s clips at
32 kHz on one thread:

* ``x_realtime_numba`` / ``x_realtime_torch``: one clip per call (audio seconds per wall
  second, median call), numba and torch backends, the songs' noise the recorded residual (the
  default); ``x_realtime_numba_model_noise`` with the decoder's noise branch instead, and
  ``numba_recorded_vs_model_noise_cpu_time`` the cost ratio of the two;
* ``x_realtime_torch_cpu_n{1,16,256}``: the torch backend rendering ``n`` clips per call as one
  batch on the CPU (decoder, synthesis, reverb and scene) and, when CUDA is present,
  ``x_realtime_torch_cuda_n{1,16,256,1024}`` on the GPU;
* ``ms_per_3s_clip_torch_host_draws``: what stays on the CPU per clip whatever the device (the
  contours, the white noise and the scene's random draws, from each clip's generator), and
  ``x_realtime_host_draws_bound``, the real-time factor one CPU core feeding a device can reach;
  ``..._device_draws`` twins of both with ``draws="device"`` (the bulk noise drawn on the
  device: the host composes contours and draws scene parameters), and of the torch timings
  (``x_realtime_torch_cpu_n256_device_draws``, ``x_realtime_torch_cuda_n{...}_device_draws``);
* ``torch_cpu_n256_vs_numba`` (wall) and ``..._cpu_time``: batched torch throughput per core over
  the numba path's one-clip calls (≥ 1: torch is as fast), and
  ``torch_cpu_n256_vs_numba_n256_cpu_time`` over numba rendering the very same 256-clip calls
  (same species and seeds, so the same songs: the like-for-like ratio, as song lengths vary).
  Those two backends' 256-clip calls alternate, call by call, so that a shared machine's
  changing load hits both alike; ``..._paired`` is the median over the pairs of the ratio;
* ``*_cpu_time`` twins of the CPU figures: from the thread's CPU time, which a busy machine
  does not inflate (wall-clock medians do);
* ``max_diff_torch_{cpu,cuda}_vs_numba``: the largest difference between the batched torch
  songs and the numba songs of the same seed, relative to each clip's peak (tested ≤ 1e-3);
* the memory a bank holds, and whether ``--growth_clips`` calls grow the process.

Without ``--models`` it trains (once, cached under ``.cache/generate_speed``) quick models of
two bundled species with the library's default decoder architecture: speed depends on the
architecture, not on how well the model sings.

    python benchmarks/generate_speed.py [--models models/] [--repeats 15]
"""

from __future__ import annotations

from _common import ROOT, bundled_bank, pin_threads, print_json, timed

# One core for every backend; set before numpy/numba/torch start their thread pools.
pin_threads(1)

import argparse  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ddsp_augment.sampling.bank import SpeciesBank  # noqa: E402
from ddsp_augment.sampling.scene import SceneConfig  # noqa: E402

CLIP_SECONDS = 3.0
CPU_BATCHES = (1, 16, 256)
CUDA_BATCHES = (1, 16, 256, 1024)


def _time_calls(
    bank: SpeciesBank,
    backend: str,
    scene: SceneConfig,
    n: int,
    repeats: int,
    device: str,
    draws: str = "host",
    noise: str = "recorded",
) -> tuple[float, float]:
    """Median (wall, thread-CPU) seconds of one ``n``-clip call, species and seeds cycling."""
    calls = iter(range(10**9))

    def call() -> None:
        i = next(calls)
        bank.sample(
            bank.species[i % len(bank)],
            n=n,
            seconds=CLIP_SECONDS,
            seed=i,
            backend=backend,
            scene=scene,
            device=device,
            draws=draws,
            noise=noise,
        )
        if device == "cuda":
            torch.cuda.synchronize()

    wall, cpu, _ = timed(call, repeats)
    return wall, cpu


def _time_paired(
    bank: SpeciesBank, scene: SceneConfig, n: int, repeats: int
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """The torch backend (CPU) and numba rendering the same ``n``-clip calls (species and seeds
    cycling: the same songs), alternated: each one's median (wall, thread-CPU) seconds of a
    call, and the median over the pairs of numba's thread-CPU time over torch's (after one
    warm-up pair)."""
    times: dict[str, list[tuple[float, float]]] = {"torch": [], "numba": []}
    for i in range(repeats + 1):
        for backend, spent in times.items():
            start_wall, start_cpu = time.perf_counter(), time.thread_time()
            bank.sample(
                bank.species[i % len(bank)], n=n, seconds=CLIP_SECONDS, seed=i,
                backend=backend, scene=scene,
            )  # fmt: skip
            if i:
                spent.append((time.perf_counter() - start_wall, time.thread_time() - start_cpu))

    def medians(spent: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(w for w, _ in spent), statistics.median(c for _, c in spent)

    pairs = zip(times["numba"], times["torch"], strict=True)
    ratio = statistics.median(numba[1] / torch_[1] for numba, torch_ in pairs)
    return medians(times["torch"]), medians(times["numba"]), ratio


def _host_draw_seconds(
    bank: SpeciesBank, scene: SceneConfig, n: int, repeats: int, draws: str
) -> float:
    """Thread-CPU seconds per clip of the torch backend's per-clip host work (median call)."""
    species = bank.species[0]
    entry, config = bank.entry(species), bank.jitter_config(species)
    n_model = int(round(CLIP_SECONDS * entry.model.config.sample_rate))

    def call() -> None:
        rngs = [np.random.default_rng(i) for i in range(n)]
        # The bank's own per-clip host step (private: what SpeciesBank.sample runs first).
        bank._host_draws(species, config, rngs, n_model, scene, entry.backgrounds, draws, True)

    _, cpu, _ = timed(call, max(3, repeats // 3))
    return cpu / n


def _x_realtime(seconds: float, n: int) -> float:
    return n * CLIP_SECONDS / seconds


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None, help="default: cached quick models")
    parser.add_argument("--cache_dir", type=Path, default=ROOT / ".cache" / "generate_speed")
    parser.add_argument("--repeats", type=int, default=15, help="calls per one-clip timing")
    parser.add_argument("--growth_clips", type=int, default=500)
    args = parser.parse_args(argv)
    bank = (
        SpeciesBank.load(args.models) if args.models else bundled_bank(args.cache_dir, decoder={})
    )
    scene = SceneConfig(background="measured")
    report: dict = {"species": len(bank), "hidden": bank.entry(bank.species[0]).model.config.hidden}
    seconds = {}
    for name, backend, clip_scene in (
        ("numba", "numba", scene),
        ("torch", "torch", scene),
        ("numba_clean_bird", "numba", SceneConfig(background="none")),
    ):
        seconds[name] = _time_calls(bank, backend, clip_scene, 1, args.repeats, "cpu")
    # The decoder's own noise branch instead of the recorded residual (the default): its cost.
    seconds["numba_model_noise"] = _time_calls(
        bank, "numba", scene, 1, args.repeats, "cpu", noise="model"
    )
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    reference = bank.sample(bank.species[0], n=4, seconds=CLIP_SECONDS, seed=123, scene=scene)
    for device in devices:
        songs = bank.sample(
            bank.species[0], n=4, seconds=CLIP_SECONDS, seed=123, scene=scene,
            backend="torch", device=device,
        )  # fmt: skip
        peaks = np.abs(reference).max(axis=1)
        report[f"max_diff_torch_{device}_vs_numba"] = float(
            (np.abs(songs - reference).max(axis=1) / peaks).max()
        )
    for device in devices:
        for n in CPU_BATCHES if device == "cpu" else CUDA_BATCHES:
            # About as much audio per size, and the median of at least 3 calls (one call of
            # 256 swung the n256 ratio by 10 % between runs on the loaded box).
            repeats = max(3, min(args.repeats, 64 // n)) if device == "cpu" else 3
            if device == "cpu" and n == 256:  # the same calls (species, seeds: songs) in numba
                seconds["torch_cpu_n256"], seconds["numba_n256"], paired = _time_paired(
                    bank, scene, n, 5
                )
            else:
                seconds[f"torch_{device}_n{n}"] = _time_calls(
                    bank, "torch", scene, n, repeats, device
                )
            if device == "cuda" or n == 256:
                seconds[f"torch_{device}_n{n}_device_draws"] = _time_calls(
                    bank, "torch", scene, n, repeats, device, "device"
                )
    for name, (wall, cpu) in seconds.items():
        batch = re.search(r"_n(\d+)", name)
        n = int(batch.group(1)) if batch else 1
        if name != "numba_clean_bird":
            report[f"x_realtime_{name}"] = _x_realtime(wall, n)
            if "cuda" not in name:
                report[f"x_realtime_{name}_cpu_time"] = _x_realtime(cpu, n)
        report[f"ms_per_3s_clip_{name}"] = 1000 * wall / n
        if "cuda" not in name:
            report[f"ms_per_3s_clip_{name}_cpu_time"] = 1000 * cpu / n
    report["numba_vs_torch"] = seconds["torch"][0] / seconds["numba"][0]
    report["numba_recorded_vs_model_noise_cpu_time"] = (
        seconds["numba"][1] / seconds["numba_model_noise"][1]
    )
    report["torch_cpu_n256_vs_numba"] = seconds["numba"][0] / (seconds["torch_cpu_n256"][0] / 256)
    report["torch_cpu_n256_vs_numba_cpu_time"] = seconds["numba"][1] / (
        seconds["torch_cpu_n256"][1] / 256
    )
    # Like for like: the same 256-clip calls, so the same songs, on both backends.
    report["torch_cpu_n256_vs_numba_n256_cpu_time"] = (
        seconds["numba_n256"][1] / seconds["torch_cpu_n256"][1]
    )
    report["torch_cpu_n256_vs_numba_n256_cpu_time_paired"] = paired
    for draws, suffix in (("host", ""), ("device", "_device_draws")):
        host = _host_draw_seconds(bank, scene, 64, args.repeats, draws)
        report[f"ms_per_3s_clip_torch_host_draws{suffix}"] = 1000 * host
        report[f"x_realtime_host_draws_bound{suffix}"] = CLIP_SECONDS / host
    report["bank_mb"] = bank.nbytes / 2**20
    report["bank_mb_per_species"] = bank.nbytes / 2**20 / len(bank)
    rss_before = _rss_mb()
    for i in range(args.growth_clips):
        bank.sample(bank.species[i % len(bank)], n=1, seconds=CLIP_SECONDS, seed=i, scene=scene)
    report["rss_growth_mb_over_growth_clips"] = _rss_mb() - rss_before
    report["growth_clips"] = args.growth_clips
    report["threads"] = 1
    report["cuda"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    print_json(report, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
