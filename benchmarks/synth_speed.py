"""Synthesis speed: numba fast path vs torch (CPU) vs a naive numpy reference, on one core.

Renders a 5 s, 32 kHz song (F0 sweeping 2-6 kHz in syllable-like glides, a 64-harmonic budget,
65 noise bands, hop 64) with each backend, after a warm-up, and prints one JSON object:

* ``<backend>_x_realtime``: audio seconds rendered per second of wall-clock time (median of the
  repeats), harmonic + noise together; ``<backend>_harmonic_ms`` / ``_noise_ms`` split it.
* ``numba_x_realtime_cpu``: the same from the thread's CPU time, which a busy machine does not
  inflate (wall-clock medians do).
* ``numba_vs_torch``: torch time / numba time; ``max_abs_diff_*``: output disagreement
  (``peak`` is the numba output's peak, for scale).

Run: ``python benchmarks/synth_speed.py [--seconds 5] [--repeats 21]``.
"""

from __future__ import annotations

from _common import pin_threads, print_json, timed

# One core for every backend; set before numpy/numba/torch start their thread pools.
pin_threads(1)

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ddsp_augment.constants import HOP_LENGTH, SAMPLE_RATE  # noqa: E402
from ddsp_augment.dsp import functional as F  # noqa: E402
from ddsp_augment.dsp import numba_kernels as nk  # noqa: E402

N_HARMONICS = 64
N_BANDS = 65


def make_song(seconds: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Frame-rate controls and white noise for a synthetic song (float32)."""
    n_samples = int(seconds * SAMPLE_RATE)
    frames = n_samples // HOP_LENGTH + 1
    t = np.arange(frames) / (SAMPLE_RATE / HOP_LENGTH)
    # Four glides a second between 2 and 6 kHz (log-frequency cosine), each syllable faded in
    # and out: the kind of contour the model renders.
    glide = 0.5 - 0.5 * np.cos(2 * np.pi * 2.0 * t)
    f0 = 2000.0 * 3.0**glide
    envelope = np.sin(np.pi * (4.0 * t % 1.0)) ** 2
    amplitude = 0.3 * envelope
    k = np.arange(1, N_HARMONICS + 1)
    distribution = np.exp(-k / 3.0) * rng.uniform(0.5, 1.5, (frames, N_HARMONICS))
    bands = np.linspace(0.0, 1.0, N_BANDS)
    magnitudes = (
        0.01 * envelope[:, None] * np.exp(-4.0 * bands) * rng.uniform(0.5, 1.5, (frames, N_BANDS))
    )
    noise = rng.uniform(-1.0, 1.0, n_samples)
    song = {
        "f0_hz": f0,
        "amplitude": amplitude,
        "harmonic_distribution": distribution,
        "magnitudes": magnitudes,
        "noise": noise,
    }
    return {name: value.astype(np.float32) for name, value in song.items()}


def numpy_harmonic(
    f0_hz: np.ndarray, amplitude: np.ndarray, distribution: np.ndarray, n_samples: int
) -> np.ndarray:
    """Naive reference: every harmonic's sine at every sample, masked ones multiplied by zero."""
    frames = f0_hz.shape[0]
    position = np.minimum(np.arange(n_samples) / HOP_LENGTH, frames - 1)
    grid = np.arange(frames)
    k = np.arange(1, distribution.shape[1] + 1)
    masked = distribution * (f0_hz[:, None] * k < SAMPLE_RATE / 2)
    amps = masked / np.maximum(masked.sum(1, keepdims=True), 1e-7) * amplitude[:, None]
    f0 = np.interp(position, grid, f0_hz.astype(np.float64))
    phase = np.cumsum(2 * np.pi * f0 / SAMPLE_RATE) % (2 * np.pi)
    upsampled = np.stack([np.interp(position, grid, a) for a in amps.T], axis=1)
    return (np.sin(phase[:, None] * k) * upsampled).sum(1).astype(np.float32)


def numpy_noise(magnitudes: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Naive reference: batched FFT filtering of every frame, overlap-added with slice sums."""
    frames = magnitudes.shape[0]
    n_samples = noise.shape[0]
    size = 2 * (N_BANDS - 1)
    ir = np.roll(np.fft.irfft(magnitudes), size // 2, axis=-1)
    ir *= 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)
    blocks = np.zeros(frames * HOP_LENGTH, np.float32)
    used = min(n_samples, blocks.shape[0])
    blocks[:used] = noise[:used]
    blocks = blocks.reshape(frames, HOP_LENGTH)
    span = HOP_LENGTH + size - 1
    n_fft = 256
    filtered = np.fft.irfft(np.fft.rfft(blocks, n_fft) * np.fft.rfft(ir, n_fft), n_fft)
    hops = -(-span // HOP_LENGTH)
    pieces = np.zeros((frames, hops * HOP_LENGTH))
    pieces[:, :span] = filtered[:, :span]
    pieces = pieces.reshape(frames, hops, HOP_LENGTH)
    out = np.zeros((frames + hops, HOP_LENGTH))
    for j in range(hops):
        out[j : j + frames] += pieces[:, j]
    out = out.reshape(-1)[size // 2 : size // 2 + n_samples]
    return np.pad(out, (0, n_samples - out.shape[0])).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=21, help="numba repeats (others: a third)")
    args = parser.parse_args()
    pin_threads(1)
    song = make_song(args.seconds, np.random.default_rng(0))
    n = song["noise"].shape[0]
    f0, amp, dist = song["f0_hz"], song["amplitude"], song["harmonic_distribution"]
    mags, noise = song["magnitudes"], song["noise"]
    tensors = {name: torch.from_numpy(value)[None] for name, value in song.items()}

    def torch_harmonic() -> np.ndarray:
        with torch.inference_mode():
            out = F.harmonic_synth(
                tensors["f0_hz"],
                tensors["amplitude"],
                tensors["harmonic_distribution"],
                SAMPLE_RATE,
                HOP_LENGTH,
                n,
            )
        return out[0].numpy()

    def torch_noise() -> np.ndarray:
        with torch.inference_mode():
            return F.filtered_noise(tensors["magnitudes"], tensors["noise"], HOP_LENGTH)[0].numpy()

    slow = max(3, args.repeats // 3)
    parts = {
        "numba": (
            lambda: nk.harmonic_synth(f0, amp, dist, SAMPLE_RATE, HOP_LENGTH, n),
            lambda: nk.filtered_noise(mags, noise, HOP_LENGTH),
            args.repeats,
        ),
        "torch": (torch_harmonic, torch_noise, slow),
        "numpy": (lambda: numpy_harmonic(f0, amp, dist, n), lambda: numpy_noise(mags, noise), slow),
    }
    result: dict[str, float] = {}
    outputs: dict[str, np.ndarray] = {}
    for backend, (harmonic, filtered, repeats) in parts.items():
        harmonic_wall, harmonic_cpu, harmonic_out = timed(harmonic, repeats)
        noise_wall, noise_cpu, noise_out = timed(filtered, repeats)
        result[f"{backend}_x_realtime"] = args.seconds / (harmonic_wall + noise_wall)
        result[f"{backend}_x_realtime_cpu"] = args.seconds / (harmonic_cpu + noise_cpu)
        result[f"{backend}_harmonic_ms"] = 1e3 * harmonic_wall
        result[f"{backend}_noise_ms"] = 1e3 * noise_wall
        outputs[backend] = harmonic_out + noise_out
        outputs[f"{backend}_harmonic"] = harmonic_out
        outputs[f"{backend}_noise"] = noise_out
    result["numba_vs_torch"] = result["numba_x_realtime"] / result["torch_x_realtime"]
    for other in ("torch", "numpy"):
        for part in ("", "_harmonic", "_noise"):
            diff = np.abs(outputs[f"numba{part}"] - outputs[f"{other}{part}"]).max()
            result[f"max_abs_diff_numba_{other}{part}"] = float(diff)
    result["peak"] = float(np.abs(outputs["numba"]).max())
    result["seconds"] = args.seconds
    print_json(result)


if __name__ == "__main__":
    main()
