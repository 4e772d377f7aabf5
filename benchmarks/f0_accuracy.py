"""How accurate and how fast are the F0 trackers on birdsong? Prints one JSON object.

Synthetic signals of known F0 at 32 kHz (steady whistles 1.2-11 kHz, 1->10 kHz sweeps and
10->1 kHz glides of 50 ms to 1 s, trills with 20-60 Hz frequency modulation of ±300/±800 Hz,
harmonic-rich tones with 5 Hz vibrato), each clean and at 10 dB SNR in white noise, scored on
the frames where the true tone is on:

- ``within_50_cents``: fraction of those frames within 50 cents of the truth;
- ``octave_errors``: fraction off by a whole number of octaves (±100 cents).

``voiced_recall`` / ``false_voiced_in_noise``: share of tone frames called voiced (confidence
>= 0.5) and of noise-only frames (>= 20 ms from the tone, noisy copies) called voiced.

``x_realtime``: audio seconds per second of thread CPU time, one thread, 2 ms hop (CPU time, not
wall time, because the machine may be shared), on the first 20 s of the real recordings (CREPE
on a shorter excerpt).

Real recordings (``--data_root``, default ``../shared/data/tonal-songs``, ``<species>/*.wav``):
``agreement_with_crepe`` is, over frames that both the numba tracker and relabelled CREPE call
voiced (confidence >= 0.5 for each), the fraction whose F0 agree within 50 cents; also given with
CREPE's periodicity >= 0.7. CREPE costs ~3 ms (tiny) / ~70 ms (full) per frame on one core,
so it runs on a 5 ms hop for the synthetic set and a 10 ms hop on the real songs; the full
model on a subset (every third synthetic signal, the first ``--full_seconds`` of every other
recording).

    python benchmarks/f0_accuracy.py [--data_root DIR] [--no_full]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from _common import pin_threads, print_json, timed

from ddsp_augment.constants import VOICED_THRESHOLD
from ddsp_augment.evaluation.metrics import f0_accuracy, octave_error_rate
from ddsp_augment.features.pitch import estimate_f0
from ddsp_augment.io import load_audio

ROOT = Path(__file__).resolve().parents[1]
SR = 32000
HOP = 64


def _render(f_inst: np.ndarray, amps: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Tone with instantaneous F0 ``f_inst`` (10 ms fades) between 0.1 s of silence.

    Returns ``(audio, f0_true, on)`` per sample; ``on`` where the envelope is >= 0.5.
    """
    phase = 2 * np.pi * np.cumsum(f_inst) / SR
    x = sum(a * np.sin(h * phase) * (h * f_inst < 0.45 * SR) for h, a in enumerate(amps, 1))
    fade = int(0.01 * SR)
    env = np.ones(f_inst.size)
    env[:fade] = env[-fade:][::-1] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
    pad = int(0.1 * SR)
    return np.pad(x * env, pad), np.pad(f_inst, pad, mode="edge"), np.pad(env >= 0.5, pad)


def synthetic_set() -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]]:
    """``[(category, name, audio, f0_true, on)]`` of clean signals (see the module doc)."""
    items = []
    for f in (1200, 1500, 2200, 3000, 4500, 6000, 7500, 9000, 11000):
        items.append(("steady", f"steady_{f}", *_render(np.full(int(0.3 * SR), f, float), (1,))))
    for seconds in (0.05, 0.1, 0.3, 1.0):
        n = int(seconds * SR)
        items.append(("sweep", f"up_{seconds}", *_render(np.linspace(1000, 10000, n), (1,))))
        items.append(("sweep", f"down_{seconds}", *_render(np.geomspace(10000, 1000, n), (1,))))
    t = np.arange(int(0.4 * SR)) / SR
    for carrier, rate, depth in [
        (2500, 20, 300),
        (4000, 40, 300),
        (6000, 60, 300),
        (3000, 30, 800),
        (5000, 50, 800),
        (2500, 60, 800),
    ]:
        f_inst = carrier + depth * np.sin(2 * np.pi * rate * t)
        items.append(("trill", f"trill_{carrier}_{rate}_{depth}", *_render(f_inst, (1,))))
    for f in (1200, 2000, 3000, 4500):
        vibrato = f * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
        sawtooth = tuple(1 / h for h in range(1, 20))
        items.append(("harmonic", f"saw_{f}", *_render(vibrato, sawtooth)))
        items.append(("harmonic", f"strong2_{f}", *_render(vibrato, (1.0, 1.0, 0.6, 0.3, 0.2))))
    return items


def noisy(items: list, snr_db: float, rng: np.random.Generator) -> list:
    out = []
    for category, name, audio, f0, on in items:
        power = np.mean(audio[on] ** 2)
        noise = rng.standard_normal(audio.size) * np.sqrt(power / 10 ** (snr_db / 10))
        out.append((category, f"{name}_snr{snr_db:g}", audio + noise, f0, on))
    return out


def score(items: list, hop: int, **kwargs) -> dict:
    refs, ests, voiced, per_category = [], [], [], {}
    detected, false_alarms = [], []
    for category, name, audio, f0_true, on in items:
        audio = (0.3 * audio / np.abs(audio).max()).astype(np.float32)
        f0, confidence = estimate_f0(audio, SR, hop_length=hop, **kwargs)
        centres = np.minimum(np.arange(f0.size) * hop, audio.size - 1)
        refs.append(f0_true[centres])
        ests.append(f0)
        voiced.append(on[centres])
        per_category.setdefault(category, []).append(len(refs) - 1)
        called = confidence >= VOICED_THRESHOLD
        detected.append(called[on[centres]])
        # Frames well clear of the tone (>= 20 ms) in the noisy copies hold noise only.
        off = np.convolve(on[centres], np.ones(2 * (SR // 50 // hop) + 1), "same") == 0
        if "_snr" in name:
            false_alarms.append(called[off])
    ref, est, on = (np.concatenate(a) for a in (refs, ests, voiced))

    def acc(indices: list[int]) -> float:
        return round(
            f0_accuracy(*(np.concatenate([a[i] for i in indices]) for a in (refs, ests, voiced))),
            4,
        )

    return {
        "within_50_cents": round(f0_accuracy(ref, est, on), 4),
        "octave_errors": round(octave_error_rate(ref, est, on), 4),
        "per_category": {c: acc(i) for c, i in per_category.items()},
        "voiced_recall": round(float(np.mean(np.concatenate(detected))), 4),
        "false_voiced_in_noise": round(float(np.mean(np.concatenate(false_alarms))), 4),
        "hop_ms": 1000 * hop / SR,
        "voiced_frames": int(on.sum()),
    }


def x_realtime(audio: np.ndarray, **kwargs) -> float:
    """Audio seconds per thread-CPU second at a 2 ms hop, one thread, median of 3 runs."""
    _, cpu, _ = timed(lambda: estimate_f0(audio, SR, HOP, **kwargs), repeats=3)
    return round(audio.size / SR / cpu, 2)


def real_songs(data_root: Path, seconds: float | None, every: int = 1) -> list[np.ndarray]:
    paths = sorted(data_root.glob("*/*.wav"))[::every]
    if not paths:
        sys.exit(f"no recordings in {data_root}/<species>/*.wav")
    songs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a clipped sample here and there does not matter here
        for path in paths:
            audio, _ = load_audio(path, SR)
            songs.append(audio if seconds is None else audio[: int(seconds * SR)])
    return songs


def agreement(songs: list[np.ndarray], hop: int, crepe_model: str) -> dict:
    both_voiced, sure = [], []
    for audio in songs:
        f0_n, conf_n = estimate_f0(audio, SR, hop_length=hop)
        f0_c, conf_c = estimate_f0(
            audio, SR, hop_length=hop, method="crepe", crepe_model=crepe_model
        )
        error = np.abs(1200 * np.log2(f0_n / f0_c))
        voiced_n = conf_n >= VOICED_THRESHOLD
        both_voiced.append(error[voiced_n & (conf_c >= VOICED_THRESHOLD)])
        sure.append(error[voiced_n & (conf_c >= 0.7)])
    both, strict = np.concatenate(both_voiced), np.concatenate(sure)
    octave = np.round(both / 1200)
    return {
        "agreement": round(float(np.mean(both <= 50)), 4),
        "octave_disagreements": round(
            float(np.mean((octave >= 1) & (np.abs(both - 1200 * octave) <= 100))), 4
        ),
        "frames_both_voiced": int(both.size),
        "agreement_crepe_conf_0.7": round(float(np.mean(strict <= 50)), 4),
        "frames_crepe_conf_0.7": int(strict.size),
        "seconds": round(sum(s.size for s in songs) / SR, 1),
        "hop_ms": 1000 * hop / SR,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_root", type=Path, default=ROOT.parent / "shared/data/tonal-songs")
    parser.add_argument("--full_seconds", type=float, default=2.0)
    parser.add_argument("--no_full", action="store_true", help="skip the full CREPE model")
    args = parser.parse_args()
    pin_threads(1)  # torch and numba trackers timed on one thread; the scores do not depend on it
    rng = np.random.default_rng(0)
    clean = synthetic_set()
    items = clean + noisy(clean, 10.0, rng)
    songs = real_songs(args.data_root, None)
    timing_audio = np.concatenate(songs)[: 20 * SR]  # real song with its background

    result = {"numba": score(items, HOP)}
    result["numba"]["x_realtime"] = x_realtime(timing_audio)
    result["numba"]["agreement_with_crepe"] = {"crepe_tiny": agreement(songs, 320, "tiny")}

    result["crepe_tiny"] = score(items, 160, method="crepe", crepe_model="tiny")
    result["crepe_tiny"]["x_realtime"] = x_realtime(timing_audio[:SR], method="crepe")
    if not args.no_full:
        subset = items[::3]
        result["crepe_full"] = score(subset, 320, method="crepe", crepe_model="full")
        result["crepe_full"]["subset"] = "every third synthetic signal"
        result["crepe_full"]["x_realtime"] = x_realtime(
            timing_audio[: SR // 4], method="crepe", crepe_model="full"
        )
        short = real_songs(args.data_root, args.full_seconds, every=2)
        result["numba"]["agreement_with_crepe"]["crepe_full"] = agreement(short, 320, "full")
    result["settings"] = {
        "sample_rate": SR,
        "synthetic_signals": len(items),
        "real_recordings": len(songs),
        "voiced_threshold": VOICED_THRESHOLD,
        "timing": "thread CPU time, torch/numba on 1 thread",
    }
    print_json(result, indent=1)


if __name__ == "__main__":
    main()
