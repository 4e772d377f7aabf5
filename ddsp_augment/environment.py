"""Recording scenes: place a clean synthesised bird at a distance, in a room or forest, in wind
or rain, over a background — the original plan's "environmental effects such as wind and rain".

All functions are numpy, take an explicit ``rng`` and keep the input length.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from .background import render_noise_floor

__all__ = [
    "SceneConfig",
    "air_absorption_db_per_m",
    "apply_scene",
    "distance",
    "mix_at_snr",
    "rain_noise",
    "reverb",
    "wind_noise",
]

# ISO 9613-1 pure-tone atmospheric absorption at 20 °C, 70 % RH, 101.325 kPa (dB per km),
# interpolated log-log in frequency: birdsong's upper partials fade first with distance.
_ABSORPTION_HZ = np.array([63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000], float)
_ABSORPTION_DB_KM = np.array([0.1, 0.4, 1.0, 1.9, 3.7, 9.7, 32.8, 117.0, 400.0, 1300.0])


def air_absorption_db_per_m(freqs_hz: np.ndarray) -> np.ndarray:
    f = np.clip(freqs_hz, _ABSORPTION_HZ[0], _ABSORPTION_HZ[-1])
    return 10 ** np.interp(np.log10(f), np.log10(_ABSORPTION_HZ), np.log10(_ABSORPTION_DB_KM)) / 1000


def distance(
    audio: np.ndarray, sample_rate: int, distance_m: float, reference_m: float = 1.0
) -> np.ndarray:
    """Spherical spreading (−20·log10(d/ref) dB) plus air absorption over ``distance_m``."""
    if distance_m <= 0 or reference_m <= 0:
        raise ValueError(f"distances must be > 0, got {distance_m}, {reference_m}")
    n = audio.shape[-1]
    spectrum = sfft.rfft(audio, n, workers=1)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    loss_db = 20 * np.log10(distance_m / reference_m) + air_absorption_db_per_m(freqs) * (
        distance_m - reference_m
    )
    return sfft.irfft(spectrum * 10 ** (-loss_db / 20), n, workers=1).astype(np.float32)


def _exp_decay_ir(sample_rate: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    length = int(min(rt60_s, 2.0) * sample_rate)
    t = np.arange(length) / sample_rate
    ir = rng.standard_normal(length) * np.exp(-np.log(1000.0) * t / rt60_s)
    return (ir / np.sqrt(np.sum(ir**2))).astype(np.float32)


def reverb(
    audio: np.ndarray, sample_rate: int, rt60_s: float, wet: float, rng: np.random.Generator
) -> np.ndarray:
    """Dry + ``wet`` × (audio convolved with an exponentially decaying noise IR of ``rt60_s``)."""
    if rt60_s <= 0 or not 0 <= wet <= 1:
        raise ValueError(f"need rt60_s > 0 and wet in [0, 1], got {rt60_s}, {wet}")
    ir = _exp_decay_ir(sample_rate, rt60_s, rng)
    n = audio.shape[-1]
    size = sfft.next_fast_len(n + ir.shape[0] - 1, real=True)
    wet_part = sfft.irfft(sfft.rfft(audio, size, workers=1) * sfft.rfft(ir, size, workers=1), size)
    return (audio + wet * wet_part[:n]).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _wind_shape(n: int, sample_rate: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    # Wind rumble: flat to ~100 Hz, then falling 12 dB per octave.
    return 1.0 / (1.0 + (freqs / 100.0) ** 2)


def wind_noise(n_samples: int, sample_rate: int, rng: np.random.Generator, gust_hz: float = 0.5) -> np.ndarray:
    """Unit-RMS low-frequency rumble with slow gusts (amplitude modulation at ~``gust_hz``)."""
    spectrum = sfft.rfft(rng.standard_normal(n_samples), workers=1) * _wind_shape(n_samples, sample_rate)
    noise = sfft.irfft(spectrum, n_samples, workers=1)
    t = np.arange(n_samples) / sample_rate
    gusts = 1.0 + 0.6 * np.sin(2 * np.pi * gust_hz * t + rng.uniform(0, 2 * np.pi))
    noise *= gusts
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def rain_noise(n_samples: int, sample_rate: int, rng: np.random.Generator, drops_per_s: float = 40.0) -> np.ndarray:
    """Unit-RMS rain: soft broadband hiss plus random short decaying drop clicks."""
    hiss = 0.3 * rng.standard_normal(n_samples)
    n_drops = rng.poisson(drops_per_s * n_samples / sample_rate)
    impulses = np.zeros(n_samples)
    impulses[rng.integers(0, n_samples, n_drops)] = rng.uniform(0.2, 1.0, n_drops) * rng.choice([-1, 1], n_drops)
    decay = np.exp(-np.arange(int(0.004 * sample_rate)) / (0.0008 * sample_rate))
    drops = np.convolve(impulses, decay * rng.standard_normal(decay.size), mode="same")
    rain = hiss + drops
    return (rain / (np.sqrt(np.mean(rain**2)) + 1e-12)).astype(np.float32)


def _active_power(signal: np.ndarray, frame: int = 256) -> float:
    """Mean power over frames within 20 dB of the loudest: the song, not the gaps between."""
    n = signal.shape[0] // frame * frame
    if n == 0:
        return float(np.mean(signal**2))
    power = np.mean(signal[:n].reshape(-1, frame) ** 2, axis=1)
    return float(np.mean(power[power >= power.max() / 100.0]))


def mix_at_snr(signal: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal`` + ``background`` scaled so that 10·log10(P_signal / P_background) = ``snr_db``.

    P_signal is measured on the signal's active frames (see :func:`_active_power`), P_background
    over the whole background (tiled or cropped to the signal's length).
    """
    n = signal.shape[0]
    background = np.resize(background, n)
    p_background = float(np.mean(background**2))
    if p_background == 0:
        return signal.astype(np.float32)
    scale = np.sqrt(_active_power(signal) / (p_background * 10 ** (snr_db / 10)))
    return (signal + scale * background).astype(np.float32)


@dataclass(frozen=True)
class SceneConfig:
    """Where a synthesised bird is heard. Ranges are (min, max), drawn uniformly; None is off.

    Attributes:
        distance_m: Source distance (spreading + air absorption), relative to 1 m.
        rt60_s: Reverb time of a decaying-noise reverb; ``wet`` its level.
        wet: (min, max) reverb mix.
        p_wind: Probability of adding wind; ``wind_snr_db`` its level under the bird.
        p_rain: Probability of adding rain; ``rain_snr_db`` its level.
        background: "none", "measured" (noise with the spectrum of one of the species' training
            recordings' backgrounds, drawn at random) or "clips" (user recordings passed to
            :func:`apply_scene`), mixed at ``snr_db``.
        snr_db: (min, max) bird-to-background ratio.
    """

    distance_m: tuple[float, float] | None = None
    rt60_s: tuple[float, float] | None = None
    wet: tuple[float, float] = (0.05, 0.3)
    p_wind: float = 0.0
    wind_snr_db: tuple[float, float] = (5.0, 20.0)
    p_rain: float = 0.0
    rain_snr_db: tuple[float, float] = (10.0, 25.0)
    background: str = "measured"
    snr_db: tuple[float, float] = (5.0, 30.0)

    def __post_init__(self) -> None:
        if self.background not in ("none", "measured", "clips"):
            raise ValueError(f"background must be none, measured or clips, got {self.background!r}")
        for name in ("p_wind", "p_rain"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if self.distance_m is not None and not 0 < self.distance_m[0] <= self.distance_m[1]:
            raise ValueError(f"distance_m must be 0 < min <= max, got {self.distance_m}")
        if self.rt60_s is not None and not 0 < self.rt60_s[0] <= self.rt60_s[1]:
            raise ValueError(f"rt60_s must be 0 < min <= max, got {self.rt60_s}")
        for name in ("wet", "wind_snr_db", "rain_snr_db", "snr_db"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be (min, max), got {(low, high)}")


def apply_scene(
    audio: np.ndarray,
    sample_rate: int,
    scene: SceneConfig,
    rng: np.random.Generator,
    background_spectra: np.ndarray | None = None,
    background_clips: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, float | str]]:
    """Place ``audio [samples]`` in ``scene``; returns the scene audio and the drawn parameters.

    ``background_spectra`` ``[n, bins]`` are measured noise floors (``background.noise_floor``);
    ``background_clips`` are background recordings at ``sample_rate``.
    """
    params: dict[str, float | str] = {}
    out = np.asarray(audio, np.float32)
    n = out.shape[0]
    if scene.distance_m is not None:
        params["distance_m"] = float(rng.uniform(*scene.distance_m))
        out = distance(out, sample_rate, params["distance_m"])
    if scene.rt60_s is not None:
        params["rt60_s"] = float(rng.uniform(*scene.rt60_s))
        params["wet"] = float(rng.uniform(*scene.wet))
        out = reverb(out, sample_rate, params["rt60_s"], params["wet"], rng)
    mixed = out
    if scene.background == "measured" and background_spectra is not None and len(background_spectra):
        index = int(rng.integers(len(background_spectra)))
        params["background"] = f"measured:{index}"
        params["snr_db"] = float(rng.uniform(*scene.snr_db))
        mixed = mix_at_snr(mixed, render_noise_floor(background_spectra[index], n, rng), params["snr_db"])
    elif scene.background == "clips" and background_clips:
        index = int(rng.integers(len(background_clips)))
        params["background"] = f"clip:{index}"
        params["snr_db"] = float(rng.uniform(*scene.snr_db))
        mixed = mix_at_snr(mixed, np.asarray(background_clips[index], np.float32), params["snr_db"])
    if rng.random() < scene.p_wind:
        params["wind_snr_db"] = float(rng.uniform(*scene.wind_snr_db))
        mixed = mixed + (mix_at_snr(out, wind_noise(n, sample_rate, rng), params["wind_snr_db"]) - out)
    if rng.random() < scene.p_rain:
        params["rain_snr_db"] = float(rng.uniform(*scene.rain_snr_db))
        mixed = mixed + (mix_at_snr(out, rain_noise(n, sample_rate, rng), params["rain_snr_db"]) - out)
    return mixed.astype(np.float32), params
