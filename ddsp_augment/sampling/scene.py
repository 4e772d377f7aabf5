"""Recording scenes: place a clean synthesised bird at a distance, in a reverberant space, in
wind or rain, over a background recording's noise.

Every function is numpy, takes an explicit ``rng`` where it is random, keeps the input length
and returns float32. :func:`apply_scene` works in the frequency domain at the clip's own FFT
size: an FFT of the bird only when distance or reverb filter it, one of the reverb's impulse
response, and a single inverse FFT for the bird and every noise together, with filters and
spectral shapes cached per FFT size. FFTs are most of the cost (a 3 s scene at 32 kHz: about
0.6 ms over a measured background, 2 ms with distance and reverb too, on a slow shared core)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import scipy.fft as sfft
import torch
from torch import Tensor

from ..checks import check_range
from ..dsp.spectral import uniform_noise, white_noise_spectrum
from ..features.background import floor_noise_spectrum
from ..io import load_audio

__all__ = [
    "SceneConfig",
    "SceneDraw",
    "air_absorption_db_per_m",
    "apply_scene",
    "apply_scenes_torch",
    "distance",
    "draw_scene",
    "mix_at_snr",
    "rain_noise",
    "reverb",
    "wind_noise",
]

Background = Literal["none", "measured", "files"]
_BACKGROUNDS = get_args(Background)
# mix_at_snr's signal power: mean over frames of this many samples within 20 dB of the loudest.
_ACTIVE_FRAME = 256
_ACTIVE_RANGE_DB = 20.0
# Rain: share of its power in the broadband hiss (the rest in drop clicks).
_RAIN_HISS_SHARE = 0.5
# Drop clicks: decaying noise bursts with time constants in this range (s), 5 constants long.
_DROP_TAU_S = (0.0002, 0.0008)


def _check_audio(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(
            f"{name} must be a non-empty mono [samples] array, got shape {audio.shape}"
        )
    if not np.isfinite(audio).all():
        raise ValueError(f"{name} contains NaN or inf")
    return audio


def _check_rate(sample_rate: int) -> None:
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")


def _frozen(array: np.ndarray) -> np.ndarray:
    """A float32 read-only copy, safe to hand out from a cache."""
    array = np.array(array, np.float32)
    array.setflags(write=False)
    return array


def _spectrum_power(spectrum: np.ndarray, n_fft: int) -> float:
    """Mean power of the ``n_fft``-sample real signal with half spectrum ``spectrum`` (Parseval)."""
    energy = 2.0 * float(np.vdot(spectrum, spectrum).real) - abs(spectrum[0]) ** 2
    if n_fft % 2 == 0:
        energy -= abs(spectrum[-1]) ** 2
    return energy / n_fft**2


# --- distance ------------------------------------------------------------------------------


def air_absorption_db_per_m(
    freqs_hz: np.ndarray,
    temperature_c: float = 20.0,
    humidity_percent: float = 60.0,
    pressure_kpa: float = 101.325,
) -> np.ndarray:
    """Atmospheric absorption of pure tones in dB per metre (ISO 9613-1:1993, eqs. 3-5 and B.1).

    Birdsong's upper partials fade first with distance: at 20 °C and 60 % relative humidity
    about 0.005 dB/m at 1 kHz, 0.03 at 4 kHz and 0.1 at 8 kHz.
    """
    f2 = np.square(np.asarray(freqs_hz, np.float64))
    t_rel = (temperature_c + 273.15) / 293.15  # T / T0 (reference 20 °C)
    p_rel = pressure_kpa / 101.325
    # Molar concentration of water vapour (%) from relative humidity, via the saturation
    # vapour pressure of Annex B (T01 = 273.16 K, the triple point of water).
    exponent = -6.8346 * (273.16 / (temperature_c + 273.15)) ** 1.261 + 4.6151
    h = humidity_percent * 10.0**exponent / p_rel
    # Relaxation frequencies of oxygen and nitrogen.
    fr_o = p_rel * (24.0 + 4.04e4 * h * (0.02 + h) / (0.391 + h))
    fr_n = p_rel * t_rel**-0.5 * (9.0 + 280.0 * h * np.exp(-4.170 * (t_rel ** (-1 / 3) - 1.0)))
    temperature_k = temperature_c + 273.15
    return (
        8.686
        * f2
        * (
            1.84e-11 / p_rel * t_rel**0.5
            + t_rel**-2.5
            * (
                0.01275 * np.exp(-2239.1 / temperature_k) / (fr_o + f2 / fr_o)
                + 0.1068 * np.exp(-3352.0 / temperature_k) / (fr_n + f2 / fr_n)
            )
        )
    )


@functools.lru_cache(maxsize=16)
def _absorption_nepers(sample_rate: int, n_fft: int) -> np.ndarray:
    """Amplitude absorption per metre on the rfft grid, in nepers (``gain = exp(-a·m)``)."""
    freqs = sfft.rfftfreq(n_fft, 1.0 / sample_rate)
    return _frozen(air_absorption_db_per_m(freqs) * np.log(10.0) / 20.0)


def _distance_gain(
    sample_rate: int, n_fft: int, distance_m: float, reference_m: float
) -> np.ndarray:
    if distance_m <= 0 or reference_m <= 0:
        raise ValueError(
            f"distances must be > 0, got distance_m={distance_m}, reference_m={reference_m}"
        )
    absorption = _absorption_nepers(sample_rate, n_fft)
    return (reference_m / distance_m) * np.exp(absorption * np.float32(-(distance_m - reference_m)))


def distance(
    audio: np.ndarray, sample_rate: int, distance_m: float, reference_m: float = 1.0
) -> np.ndarray:
    """The bird at ``distance_m`` instead of ``reference_m`` → float32 ``[samples]``.

    Spherical spreading, −20·log10(distance_m / reference_m) dB at every frequency, plus air
    absorption over the extra path (:func:`air_absorption_db_per_m`, 20 °C, 60 % RH), applied
    as one zero-phase gain in the FFT domain.
    """
    audio = _check_audio(audio)
    _check_rate(sample_rate)
    n_fft = sfft.next_fast_len(audio.shape[0], real=True)
    gain = _distance_gain(sample_rate, n_fft, distance_m, reference_m)
    spectrum = sfft.rfft(audio, n_fft, workers=1) * gain
    return sfft.irfft(spectrum, n_fft, workers=1)[: audio.shape[0]].astype(np.float32, copy=False)


# --- reverb --------------------------------------------------------------------------------


def _reverb_ir(
    sample_rate: int, rt60_s: float, predelay_s: float, max_length: int, rng: np.random.Generator
) -> np.ndarray:
    """Unit-energy decaying-noise impulse response (the wet path only), float32.

    Its energy falls 60 dB in ``rt60_s`` after ``predelay_s`` of silence; it stops at −60 dB or
    at ``max_length`` samples (later samples could not reach a clip of that length). All zeros
    when the pre-delay alone is that long.
    """
    if not 0 < rt60_s <= 20 or not 0 <= predelay_s <= 1:
        raise ValueError(
            f"need 0 < rt60_s <= 20 and 0 <= predelay_s <= 1, got {rt60_s}, {predelay_s}"
        )
    delay = int(round(predelay_s * sample_rate))
    length = min(delay + max(1, int(rt60_s * sample_rate)), max_length)
    ir = np.zeros(max(length, 1), np.float32)
    tail = length - delay
    if tail > 0:
        # Amplitude 10^-3 (−60 dB energy) after rt60_s.
        decay = np.exp(
            np.arange(tail, dtype=np.float32) * np.float32(-3 * np.log(10) / (rt60_s * sample_rate))
        )
        ir[delay:] = uniform_noise(tail, rng) * decay
        ir /= np.sqrt(np.dot(ir, ir))
    return ir


def reverb(
    audio: np.ndarray,
    sample_rate: int,
    rt60_s: float,
    wet: float,
    rng: np.random.Generator,
    predelay_s: float = 0.0,
    circular: bool = False,
) -> np.ndarray:
    """``(1 − wet)·audio + wet·(audio ⊛ ir)`` → float32 ``[samples]``.

    ``ir`` is exponentially decaying noise (energy −60 dB after ``rt60_s``) of unit energy after
    ``predelay_s`` of silence, so the wet path is about as loud as the dry one. The convolution
    is linear and cut to the input length, or with ``circular`` the tail that would run past
    the end wraps round to the start — the clip heard as a loop, as if cut from a longer
    scene — which keeps the FFTs at the clip's length (what :func:`apply_scene` does).
    """
    audio = _check_audio(audio)
    _check_rate(sample_rate)
    if not 0 <= wet <= 1:
        raise ValueError(f"wet must be in [0, 1], got {wet}")
    n = audio.shape[0]
    ir = _reverb_ir(sample_rate, rt60_s, predelay_s, n, rng)
    n_fft = sfft.next_fast_len(n if circular else n + ir.shape[0] - 1, real=True)
    spectrum = sfft.rfft(audio, n_fft, workers=1)
    spectrum *= _reverb_response(ir, wet, n_fft)
    return sfft.irfft(spectrum, n_fft, workers=1)[:n].astype(np.float32, copy=False)


def _reverb_response(ir: np.ndarray, wet: float, n_fft: int) -> np.ndarray:
    """Frequency response of the dry/wet mix with ``ir`` on the ``n_fft`` rfft grid."""
    return np.float32(wet) * sfft.rfft(ir, n_fft, workers=1) + np.float32(1 - wet)


# --- noises --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _wind_shape(sample_rate: int, n_fft: int) -> np.ndarray:
    """Wind rumble on the rfft grid: flat to 100 Hz, then −12 dB per octave; unit mean power."""
    freqs = sfft.rfftfreq(n_fft, 1.0 / sample_rate)
    shape = 1.0 / (1.0 + (freqs / 100.0) ** 2)
    return _frozen(shape / np.sqrt(np.mean(shape**2)))


def _wind_spectrum(
    sample_rate: int, n_fft: int, rng: np.random.Generator, gusts: float
) -> np.ndarray:
    """Wind rumble with gusts: amplitude modulation by ``1 + Σ mᵢ·cos(2π gᵢ t + φᵢ)``.

    Two gust components of 0.1–1 Hz with depths summing to ``gusts`` (< 1, so the envelope
    stays positive). Modulating by a cosine moves the spectrum up and down by its frequency,
    so the gusts cost two shifted additions per component instead of a second inverse FFT.
    The envelope has period ``n_fft`` (the clip seen as a loop).
    """
    carrier = white_noise_spectrum(n_fft, rng) * _wind_shape(sample_rate, n_fft)
    wind = carrier.copy()
    depths = gusts * rng.dirichlet((1.0, 1.0))
    for depth in depths:
        b = max(1, int(round(rng.uniform(0.1, 1.0) * n_fft / sample_rate)))
        c = np.complex64(depth / 2 * np.exp(1j * rng.uniform(0, 2 * np.pi)))
        # cos(ωt + φ)·x = (e^{jφ} x·e^{jωt} + e^{-jφ} x·e^{-jωt}) / 2: the spectrum moved up and
        # down by b bins. Moving up folds negative frequencies back in as conjugates; what moves
        # past Nyquist is dropped (wind has no energy there).
        wind[b:] += c * carrier[:-b]
        wind[:b] += c * np.conj(carrier[b:0:-1])
        wind[:-b] += np.conj(c) * carrier[b:]
    return wind


def wind_noise(
    n_samples: int, sample_rate: int, rng: np.random.Generator, gusts: float = 0.5
) -> np.ndarray:
    """Unit-RMS wind ``[n_samples]`` float32: low-frequency rumble (flat to 100 Hz, then
    −12 dB/octave) whose amplitude swells and drops in slow gusts of depth ``gusts`` in [0, 1).
    """
    _check_rate(sample_rate)
    if n_samples < 1 or not 0 <= gusts < 1:
        raise ValueError(f"need n_samples >= 1 and gusts in [0, 1), got {n_samples}, {gusts}")
    n_fft = sfft.next_fast_len(n_samples, real=True)
    wind = sfft.irfft(_wind_spectrum(sample_rate, n_fft, rng, gusts), n_fft, workers=1)[:n_samples]
    return (wind / max(float(np.sqrt(np.mean(np.square(wind)))), 1e-12)).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _hiss_shape(sample_rate: int, n_fft: int) -> np.ndarray:
    """Rain hiss on the rfft grid: broadband, rolled off below 1 kHz (12 dB/octave); unit power."""
    f2 = sfft.rfftfreq(n_fft, 1.0 / sample_rate) ** 2
    shape = f2 / (f2 + 1000.0**2)
    return _frozen(shape / np.sqrt(np.mean(shape**2)))


def _rain_drops(
    n_samples: int, sample_rate: int, rng: np.random.Generator, drops_per_s: float
) -> np.ndarray:
    """Unit-power drop clicks ``[n_samples]`` float32 (all zeros when no drop falls).

    Poisson-distributed onsets; each drop a burst of noise decaying with a random 0.2–0.8 ms
    time constant, its level spread over 20 dB (many small drops, a few big ones).
    """
    count = int(rng.poisson(drops_per_s * n_samples / sample_rate))
    drops = np.zeros(n_samples, np.float32)
    if count == 0:
        return drops
    length = max(1, int(5 * _DROP_TAU_S[1] * sample_rate))
    rates = (-1.0 / (rng.uniform(*_DROP_TAU_S, count) * sample_rate)).astype(np.float32)
    levels = (10.0 ** rng.uniform(-1.0, 0.0, count)).astype(np.float32)
    envelopes = np.exp(rates[:, None] * np.arange(length, dtype=np.float32)[None, :])
    bursts = uniform_noise(count * length, rng).reshape(count, length)
    bursts *= levels[:, None] * envelopes
    onsets = rng.integers(0, n_samples, count)
    drops = np.zeros(n_samples + length, np.float32)
    # Overlapping bursts add up: np.add.at sums every contribution to a sample.
    np.add.at(drops, (onsets[:, None] + np.arange(length)[None, :]).ravel(), bursts.ravel())
    drops = drops[:n_samples]
    energy = float(np.dot(drops, drops))
    if energy > 0:
        drops *= np.float32(np.sqrt(n_samples / energy))
    return drops


def rain_noise(
    n_samples: int, sample_rate: int, rng: np.random.Generator, drops_per_s: float = 50.0
) -> np.ndarray:
    """Unit-RMS rain ``[n_samples]`` float32: broadband hiss (above ~1 kHz) plus random short
    decaying clicks of drops at ``drops_per_s`` on average, half the power each."""
    _check_rate(sample_rate)
    if n_samples < 1 or drops_per_s < 0:
        raise ValueError(
            f"need n_samples >= 1 and drops_per_s >= 0, got {n_samples}, {drops_per_s}"
        )
    n_fft = sfft.next_fast_len(n_samples, real=True)
    hiss = sfft.irfft(
        white_noise_spectrum(n_fft, rng) * _hiss_shape(sample_rate, n_fft), n_fft, workers=1
    )
    hiss = hiss[:n_samples] / max(float(np.sqrt(np.mean(np.square(hiss[:n_samples])))), 1e-12)
    drops = _rain_drops(n_samples, sample_rate, rng, drops_per_s)
    share = _RAIN_HISS_SHARE if drops.any() else 1.0
    rain = np.sqrt(share) * hiss + np.sqrt(1 - share) * drops
    return rain.astype(np.float32)


# --- mixing --------------------------------------------------------------------------------


def _active_power(signal: np.ndarray) -> float:
    """Mean power of the frames (256 samples) within 20 dB of the loudest: the song, not the
    silence between its phrases. Shorter signals: their mean power."""
    n = signal.shape[0] // _ACTIVE_FRAME * _ACTIVE_FRAME
    if n == 0:
        return float(np.mean(np.square(signal, dtype=np.float64)))
    frames = signal[:n].reshape(-1, _ACTIVE_FRAME)
    power = np.einsum("ij,ij->i", frames, frames) / _ACTIVE_FRAME
    return float(np.mean(power[power >= power.max() * 10 ** (-_ACTIVE_RANGE_DB / 10)]))


def mix_at_snr(signal: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + g·background``, ``g`` such that 10·log10(P_signal / P_background) = ``snr_db``.

    P_signal is the signal's *active* power: the mean power of its 256-sample frames within
    20 dB of its loudest frame, so the silence between phrases does not count (a sparse song
    is not "quieter" than a dense one). P_background is the mean power of ``background``,
    which is tiled or cut to the signal's length first. A silent signal or background adds
    nothing. Returns float32 ``[samples]``.
    """
    signal = _check_audio(signal, "signal")
    background = np.resize(_check_audio(background, "background"), signal.shape[0])
    p_background = float(np.mean(np.square(background, dtype=np.float64)))
    if p_background == 0:
        return signal
    gain = np.sqrt(_active_power(signal) / (p_background * 10 ** (snr_db / 10)))
    return (signal + np.float32(gain) * background).astype(np.float32)


# --- scenes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneConfig:
    """Where a synthesised bird is heard. Ranges are ``(min, max)``, drawn uniformly per clip.

    Attributes:
        distance_m: Distance from the bird (spreading and air absorption relative to 1 m), or
            None to leave the bird as synthesised.
        rt60_s: Reverb time (−60 dB) of a decaying-noise reverb, or None for no reverb.
        wet: Reverb mix, 0 (dry) to 1 (only reverberant sound).
        predelay_s: Silence before the reverb tail (first reflections arrive later in a
            forest than in a room).
        p_wind: Probability of wind in a clip.
        wind_snr_db: Bird-to-wind ratio.
        wind_gusts: Depth of the wind's slow gusts, in [0, 1).
        p_rain: Probability of rain in a clip.
        rain_snr_db: Bird-to-rain ratio.
        rain_drops_per_s: Drop clicks per second.
        background: "none"; "measured": noise with the background spectrum of one of the
            species' training recordings (the ``background_spectra`` given to
            :func:`apply_scene`); "files": an excerpt of a background recording, from the
            ``background_clips`` given to :func:`apply_scene` or else loaded (once, cached)
            from ``background_files``.
        background_files: Audio files for ``background="files"``.
        snr_db: Bird-to-background ratio; None (default) keeps the background at its recorded
            level: a measured floor is absolute, like the loudness contours the bird is rendered
            from, so the pair reproduces the balance of a real recording of the species.

    Every signal-to-noise ratio compares the bird's direct sound at the microphone (after
    distance, before reverb; active frames only, as in :func:`mix_at_snr`) to the mean power
    of the noise.
    """

    distance_m: tuple[float, float] | None = None
    rt60_s: tuple[float, float] | None = None
    wet: tuple[float, float] = (0.05, 0.3)
    predelay_s: tuple[float, float] = (0.0, 0.02)
    p_wind: float = 0.0
    wind_snr_db: tuple[float, float] = (5.0, 20.0)
    wind_gusts: tuple[float, float] = (0.2, 0.8)
    p_rain: float = 0.0
    rain_snr_db: tuple[float, float] = (10.0, 25.0)
    rain_drops_per_s: tuple[float, float] = (20.0, 200.0)
    background: Background = "measured"
    background_files: tuple[str, ...] = ()
    snr_db: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.background not in _BACKGROUNDS:
            raise ValueError(f"background must be one of {_BACKGROUNDS}, got {self.background!r}")
        # Paths from JSON or pathlib become a hashable tuple of str.
        object.__setattr__(self, "background_files", tuple(str(p) for p in self.background_files))
        if self.background_files and self.background != "files":
            raise ValueError(
                f"background_files are only used with background='files', not {self.background!r}"
            )
        for name in ("p_wind", "p_rain"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(
                    f"{name} must be a probability in [0, 1], got {getattr(self, name)}"
                )
        check_range("distance_m", self.distance_m, 1e-3, 1e4, optional=True)
        if self.distance_m is not None and self.distance_m[0] <= 0:
            raise ValueError(f"distance_m must be > 0, got {self.distance_m}")
        check_range("rt60_s", self.rt60_s, 1e-3, 20.0, optional=True)
        check_range("wet", self.wet, 0.0, 1.0)
        check_range("predelay_s", self.predelay_s, 0.0, 1.0)
        check_range("wind_gusts", self.wind_gusts, 0.0, 0.99)
        check_range("rain_drops_per_s", self.rain_drops_per_s, 0.0, 1e5)
        for name in ("wind_snr_db", "rain_snr_db"):
            check_range(name, getattr(self, name), -60.0, 120.0)
        check_range("snr_db", self.snr_db, -60.0, 120.0, optional=True)


@functools.lru_cache(maxsize=32)
def _load_background(path: str, sample_rate: int) -> np.ndarray:
    return _frozen(load_audio(Path(path), sample_rate)[0])


def _excerpt(clip: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``n``-sample stretch of ``clip`` (looped from a random point when shorter)."""
    if clip.shape[0] >= n:
        start = int(rng.integers(clip.shape[0] - n + 1))
        return clip[start : start + n]
    return np.resize(np.roll(clip, -int(rng.integers(clip.shape[0]))), n)


def _noise_gain(p_bird: float, p_noise: float, snr_db: float) -> float:
    return float(np.sqrt(p_bird / (p_noise * 10 ** (snr_db / 10)))) if p_noise > 0 else 0.0


@dataclass
class SceneDraw:
    """Everything random about one clip's scene, drawn from its generator in a fixed order
    (:func:`draw_scene`), ready to be mixed by :func:`apply_scene` (numpy, one clip) or
    :func:`apply_scenes_torch` (a batch on a device): both mix the same draws.

    Attributes:
        params: The drawn parameters (JSON-ready, as :func:`apply_scene` returns them).
        n_fft: FFT size of the clip's spectral mix (the fast size of its length).
        distance_m: Distance to place the bird at, or None.
        reverb_ir: The reverb's impulse response ``[<= samples]`` float32, or None.
        wet: The reverb mix.
        noises: Noises made in the frequency domain, ``(spectrum [n_fft // 2 + 1] complex64,
            power, snr_db)``: scaled to ``snr_db`` below the bird's direct power taking
            ``power`` as theirs, or added as they are when ``snr_db`` is None.
        extras: Noises made in the time domain, ``(signal [samples] float32, power, snr_db)``,
            likewise; added after the inverse FFT.
    """

    params: dict
    n_fft: int
    distance_m: float | None = None
    reverb_ir: np.ndarray | None = None
    wet: float = 0.0
    noises: list[tuple[np.ndarray, float, float | None]] = field(default_factory=list)
    extras: list[tuple[np.ndarray, float, float | None]] = field(default_factory=list)

    @property
    def filters_bird(self) -> bool:
        """Whether distance or reverb filter the bird (else it is mixed in unchanged)."""
        return self.distance_m is not None or self.reverb_ir is not None

    @property
    def needs_bird_power(self) -> bool:
        """Whether a noise is mixed at an SNR (else the bird's power is never needed)."""
        return any(snr is not None for *_, snr in self.noises + self.extras)


def draw_scene(
    scene: SceneConfig,
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    background_spectra: np.ndarray | None = None,
    background_clips: Sequence[np.ndarray] | None = None,
) -> SceneDraw:
    """Draw one ``n_samples`` clip's scene from ``rng`` (arguments as :func:`apply_scene`).

    All of a scene's randomness, and the noises' spectral shapes, in the order
    :func:`apply_scene` has always drawn them: parameters, the reverb's impulse response,
    the background, wind, then rain.
    """
    _check_rate(sample_rate)
    params = _draw_scene(scene, rng, background_spectra, background_clips)
    # One FFT size for everything: the reverb is circular (see reverb), gusts loop anyway.
    n_fft = sfft.next_fast_len(n_samples, real=True)
    draw = SceneDraw(params, n_fft, params.get("distance_m"))
    snr = params.get("snr_db")
    if "rt60_s" in params:
        draw.reverb_ir = _reverb_ir(
            sample_rate, params["rt60_s"], params["predelay_s"], n_samples, rng
        )
        draw.wet = params["wet"]
    if scene.background == "measured":
        noise = floor_noise_spectrum(background_spectra[params["background_index"]], n_fft, rng)
        # As recorded without an SNR: the floor is an absolute level, like the bird's loudness.
        power = _spectrum_power(noise, n_fft) if snr is not None else 1.0
        draw.noises.append((noise, power, snr))
    elif scene.background == "files":
        index = params["background_index"]
        clip = background_clips[index] if background_clips else None
        if clip is None:
            clip = _load_background(params["background"], sample_rate)
        clip = _excerpt(_check_audio(clip, f"background {params['background']}"), n_samples, rng)
        draw.extras.append((clip, float(np.mean(np.square(clip, dtype=np.float64))), snr))
    if "wind_snr_db" in params:
        noise = _wind_spectrum(sample_rate, n_fft, rng, params["wind_gusts"])
        draw.noises.append((noise, _spectrum_power(noise, n_fft), params["wind_snr_db"]))
    if "rain_snr_db" in params:
        # Hiss and drops are each of unit power, mixed by their shares.
        drops = _rain_drops(n_samples, sample_rate, rng, params["rain_drops_per_s"])
        share = _RAIN_HISS_SHARE if drops.any() else 1.0
        hiss = white_noise_spectrum(n_fft, rng) * _hiss_shape(sample_rate, n_fft)
        draw.noises.append((hiss, 1.0 / share, params["rain_snr_db"]))
        if share < 1.0:
            draw.extras.append((drops, 1.0 / (1.0 - share), params["rain_snr_db"]))
    del params["background_index"]
    return draw


def apply_scene(
    audio: np.ndarray,
    sample_rate: int,
    scene: SceneConfig,
    rng: np.random.Generator,
    background_spectra: np.ndarray | None = None,
    background_clips: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, float | str]]:
    """Place a clean bird ``[samples]`` in ``scene`` → (float32 ``[samples]``, drawn parameters).

    In order: distance, reverb, then background, wind and rain mixed at their drawn SNRs (see
    :class:`SceneConfig`). ``background_spectra [n, K]`` are measured noise floors
    (``features.background.noise_floor``), ``background_clips`` recordings at ``sample_rate``.
    The parameters dict (JSON-ready) records every draw, for sidecars.

    Speed: the bird is transformed only when distance or reverb filter it; it and all noises
    made in the frequency domain share one inverse FFT; the reverb is circular (the clip heard
    as a loop, see :func:`reverb`). Noise levels therefore come from spectra (Parseval), and
    the bird's direct level is its active power (:func:`mix_at_snr`) times the distance
    filter's power gain on its spectrum: realised SNRs match the drawn ones to within a
    fraction of a dB. The draws are :func:`draw_scene`'s; :func:`apply_scenes_torch` mixes
    them for a batch on a device.
    """
    audio = _check_audio(audio)
    draw = draw_scene(scene, audio.shape[0], sample_rate, rng, background_spectra, background_clips)
    return _mix_scene(audio, sample_rate, draw), draw.params


def _mix_scene(audio: np.ndarray, sample_rate: int, draw: SceneDraw) -> np.ndarray:
    """:func:`apply_scene`'s mix of one clip's ``draw``."""
    n, n_fft = audio.shape[0], draw.n_fft
    # The bird's direct power sets the noise levels: only measured when an SNR asks for it.
    p_bird = _active_power(audio) if draw.needs_bird_power else 0.0
    # Spectral sum of the bird (when filtered) and the FFT-made noises; one inverse FFT at
    # the end. An unfiltered bird stays in the time domain, sparing its FFT.
    spectrum = None
    if draw.filters_bird:
        spectrum = sfft.rfft(audio, n_fft, workers=1)
    if draw.distance_m is not None:
        dry_energy = float(np.vdot(spectrum, spectrum).real) if p_bird > 0 else 0.0
        spectrum *= _distance_gain(sample_rate, n_fft, draw.distance_m, 1.0)
        if dry_energy > 0:
            p_bird *= float(np.vdot(spectrum, spectrum).real) / dry_energy
    if draw.reverb_ir is not None:
        spectrum *= _reverb_response(draw.reverb_ir, draw.wet, n_fft)
    for noise, power, snr_db in draw.noises:
        if snr_db is not None:
            noise = noise * np.float32(_noise_gain(p_bird, power, snr_db))
        spectrum = noise if spectrum is None else spectrum + noise
    extra = None  # noise made in the time domain, added after the inverse FFT
    for signal, power, snr_db in draw.extras:
        gain = _noise_gain(p_bird, power, snr_db) if snr_db is not None else 1.0
        signal = np.float32(gain) * signal
        extra = signal if extra is None else extra + signal
    out = None if draw.filters_bird else audio.copy()
    if spectrum is not None:
        rendered = sfft.irfft(spectrum, n_fft, workers=1)[:n]
        out = rendered if out is None else out + rendered
    if extra is not None:
        out += extra
    return out.astype(np.float32, copy=False)


def apply_scenes_torch(audio: Tensor, sample_rate: int, draws: Sequence[SceneDraw]) -> Tensor:
    """:func:`apply_scene`'s mix for a batch ``audio [batch, samples]`` on its device, clip
    ``i`` placed in ``draws[i]`` (from :func:`draw_scene`) → ``[batch, samples]``.

    The same maths as the numpy mix, batched: one FFT of the filtered birds, per-clip distance
    gains and reverb responses, every noise scaled by its clip's gain and summed into one
    inverse FFT. Equal to :func:`apply_scene` clip by clip within float32 rounding (sums in
    another order): tested within 1e-5 of the peak.
    """
    batch, n = audio.shape
    if len(draws) != batch or len({d.n_fft for d in draws}) > 1:
        raise ValueError(f"need one draw per clip of {n} samples, got {len(draws)} for {batch}")
    if not draws:
        return audio
    device, n_fft = audio.device, draws[0].n_fft
    p_bird = torch.zeros(batch, dtype=torch.float64, device=device)
    powered = [i for i, d in enumerate(draws) if d.needs_bird_power]
    if len(powered) == batch:  # only clips with a noise at an SNR need the bird's power
        p_bird = _active_power_torch(audio)
    elif powered:
        rows = torch.tensor(powered, device=device)
        p_bird[rows] = _active_power_torch(audio[rows])
    spectrum = None  # the filtered birds and the noises, summed for one inverse FFT
    filtered = [i for i, d in enumerate(draws) if d.filters_bird]
    if filtered:
        spectrum = torch.zeros(batch, n_fft // 2 + 1, dtype=torch.complex64, device=device)
        rows = torch.tensor(filtered, device=device)
        bird = torch.fft.rfft(audio[rows], n_fft)
        chosen = [draws[i] for i in filtered]
        distant = [(k, d.distance_m) for k, d in enumerate(chosen) if d.distance_m is not None]
        if distant:
            at = torch.tensor([k for k, _ in distant], device=device)
            metres = torch.tensor([m for _, m in distant], device=device)[:, None]
            absorption = torch.tensor(_absorption_nepers(sample_rate, n_fft), device=device)
            dry_energy = bird[at].abs().square().sum(-1, dtype=torch.float64)
            bird[at] *= torch.exp(absorption * (1.0 - metres)) / metres
            ratio = bird[at].abs().square().sum(-1, dtype=torch.float64) / dry_energy
            p_bird[rows[at]] *= torch.where(dry_energy > 0, ratio, 1.0)
        reverbs = [(k, d) for k, d in enumerate(chosen) if d.reverb_ir is not None]
        if reverbs:
            at = torch.tensor([k for k, _ in reverbs], device=device)
            irs = np.zeros((len(reverbs), n), np.float32)  # stacked here: one copy to device
            for row, (_, d) in enumerate(reverbs):
                irs[row, : d.reverb_ir.shape[0]] = d.reverb_ir
            wet = torch.tensor([d.wet for _, d in reverbs], device=device)[:, None]
            response = torch.fft.rfft(torch.from_numpy(irs).to(device), n_fft)
            bird[at] *= wet * response + (1.0 - wet)
        spectrum[rows] = bird
    noises = [(i, *noise) for i, d in enumerate(draws) for noise in d.noises]
    if noises:
        spectra = torch.from_numpy(np.stack([s for _, s, _, _ in noises])).to(device)
        if any(snr is not None for *_, snr in noises):  # else all as recorded: gains of 1
            spectra *= _gains(noises, p_bird)
        if spectrum is None and [i for i, *_ in noises] == list(range(batch)):
            spectrum = spectra  # one noise per clip, nothing else: nothing to add
        else:
            if spectrum is None:
                spectrum = torch.zeros(batch, spectra.shape[1], dtype=spectra.dtype, device=device)
            # As real pairs: complex index_add is not implemented on every device.
            torch.view_as_real(spectrum).index_add_(
                0, _owners(noises, device), torch.view_as_real(spectra)
            )
    if spectrum is None:  # nothing filtered, nothing made in the frequency domain
        out = audio.clone()
    else:
        out = torch.fft.irfft(spectrum, n_fft)[:, :n]
        unfiltered = [i for i, d in enumerate(draws) if not d.filters_bird]
        if len(unfiltered) == batch:
            out += audio
        elif unfiltered:
            rows = torch.tensor(unfiltered, device=device)
            out.index_add_(0, rows, audio[rows])
    extras = [(i, *extra) for i, d in enumerate(draws) for extra in d.extras]
    if extras:
        signals = torch.from_numpy(np.stack([s for _, s, _, _ in extras])).to(device)
        out.index_add_(0, _owners(extras, device), signals * _gains(extras, p_bird))
    return out


def _owners(entries: list[tuple], device: torch.device) -> Tensor:
    return torch.tensor([e[0] for e in entries], device=device)


def _gains(entries: list[tuple[int, object, float, float | None]], p_bird: Tensor) -> Tensor:
    """``[entries, 1]`` float32 gains of ``(clip, noise, power, snr_db)`` entries, as
    :func:`_noise_gain` (1 where ``snr_db`` is None, 0 for a silent noise)."""
    device = p_bird.device
    owner = _owners(entries, device)
    power = torch.tensor([e[2] for e in entries], dtype=torch.float64, device=device)
    snr = torch.tensor(
        [math.nan if e[3] is None else e[3] for e in entries], dtype=torch.float64, device=device
    )
    gain = torch.sqrt(p_bird[owner] / (power * 10 ** (snr / 10)))
    gain = torch.where(power > 0, gain, 0.0)
    return torch.where(snr.isnan(), 1.0, gain).to(torch.float32)[:, None]


def _active_power_torch(audio: Tensor) -> Tensor:
    """:func:`_active_power` of each clip of ``audio [batch, samples]`` → float64 ``[batch]``."""
    usable = audio.shape[-1] // _ACTIVE_FRAME * _ACTIVE_FRAME
    if usable == 0:
        return audio.to(torch.float64).square().mean(-1)
    frames = audio[:, :usable].reshape(audio.shape[0], -1, _ACTIVE_FRAME)
    power = frames.square().mean(-1)
    active = power >= power.amax(-1, keepdim=True) * 10 ** (-_ACTIVE_RANGE_DB / 10)
    power = power.to(torch.float64)
    return (power * active).sum(-1) / active.sum(-1)


def _draw_scene(
    scene: SceneConfig,
    rng: np.random.Generator,
    background_spectra: np.ndarray | None,
    background_clips: Sequence[np.ndarray] | None,
) -> dict:
    """Every parameter of one scene, drawn in a fixed order (and its backgrounds checked)."""
    params: dict = {"background": scene.background, "background_index": -1}
    if scene.distance_m is not None:
        params["distance_m"] = float(rng.uniform(*scene.distance_m))
    if scene.rt60_s is not None:
        params["rt60_s"] = float(rng.uniform(*scene.rt60_s))
        params["wet"] = float(rng.uniform(*scene.wet))
        params["predelay_s"] = float(rng.uniform(*scene.predelay_s))
    if scene.background == "measured":
        if background_spectra is None or len(background_spectra) == 0:
            raise ValueError(
                "background='measured' needs background_spectra (measured noise floors)"
            )
        params["background_index"] = int(rng.integers(len(background_spectra)))
        params["background"] = f"measured:{params['background_index']}"
    elif scene.background == "files":
        if background_clips:
            names = [f"clip:{i}" for i in range(len(background_clips))]
        elif scene.background_files:
            names = list(scene.background_files)
        else:
            raise ValueError("background='files' needs background_files or background_clips")
        params["background_index"] = int(rng.integers(len(names)))
        params["background"] = names[params["background_index"]]
    if scene.background != "none" and scene.snr_db is not None:
        params["snr_db"] = float(rng.uniform(*scene.snr_db))
    if rng.random() < scene.p_wind:
        params["wind_snr_db"] = float(rng.uniform(*scene.wind_snr_db))
        params["wind_gusts"] = float(rng.uniform(*scene.wind_gusts))
    if rng.random() < scene.p_rain:
        params["rain_snr_db"] = float(rng.uniform(*scene.rain_snr_db))
        params["rain_drops_per_s"] = float(rng.uniform(*scene.rain_drops_per_s))
    return params
