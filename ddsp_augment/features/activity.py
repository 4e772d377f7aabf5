"""The bird above the background: loudness and activity measured over a recording's noise floor.

A recording's plain A-weighted loudness (``loudness.loudness_db``) carries its background: on a
hissy recording every frame is "loud", the activity test counts noise as song, and a model
trained on those contours renders hiss (or a steady tone) where no bird sang. Here each frame's
power spectrum is compared with the recording's measured noise floor
(``background.noise_floor``, the same floor training and generation render as background) in the
bird band:

- a bin counts only where its power exceeds the floor by ``_BIN_SNR`` (×6, 7.8 dB; background
  alone does so in e^-6 = 0.25 % of bins, since a Rayleigh bin's power is exponential), and then
  contributes its power *minus* the floor;
- those excesses are A-weighted and summed: the bird's loudness, on the same calibration as
  ``loudness_db`` (a full-scale 1 kHz sine reads 0 dB);
- a frame is active when that loudness reaches the floor's own A-weighted loudness in the band
  (``margin_db`` above it; a tone at that level stands ~20 dB over the floor in its own bins), or,
  if voiced, ``voiced_margin_db`` below that, within ``range_db`` of the loudest bird frame.

Background-only frames then read ~``10 log10(6 e^-6)`` = -18 dB under the floor's loudness in
theory (~-14 dB on real, not quite stationary backgrounds), so they fall outside activity; their
loudness is then set to the -100 dB floor (beyond ``_GATE_SECONDS`` of any active frame), so the
contour the model learns from and generation renders is silent where no bird sang. A tone held
unchanged for most of a recording is part of its floor by this measure, as hum or a cicada is.
"""

from __future__ import annotations

import numpy as np

from ..constants import F0_MAX_HZ, F0_MIN_HZ, HOP_LENGTH, LOUDNESS_FLOOR_DB
from ..dsp.spectral import frame_signal, hann_window, magnitude_spectrogram, power_blocks
from .loudness import _a_weights

__all__ = ["BirdActivity", "bird_activity", "share_below"]

_BIN_SNR = 6.0
_BAND_LOW_RATIO = 0.5  # the band starts an octave under f_min: lower partials of low calls
_GATE_SECONDS = 0.03  # loudness is kept this close to activity (attacks, decays), silent beyond


class BirdActivity:
    """Per-frame bird loudness and activity of one recording (each ``[n_frames]``).

    Attributes:
        loudness_db: A-weighted loudness of the bird-band power over the noise floor (float32 dB,
            same calibration as ``loudness.loudness_db``; ``LOUDNESS_FLOOR_DB`` where nothing rises
            above the floor and away from active frames).
        active: Frames where a bird is heard above the background (bool).
        floor_db: A-weighted loudness of the noise floor itself in the band (float, dB).
    """

    def __init__(self, loudness_db: np.ndarray, active: np.ndarray, floor_db: float) -> None:
        self.loudness_db = loudness_db
        self.active = active
        self.floor_db = floor_db


def bird_activity(
    audio: np.ndarray,
    sample_rate: int,
    floor: np.ndarray,
    confidence: np.ndarray | None = None,
    hop_length: int = HOP_LENGTH,
    f_min: float = F0_MIN_HZ,
    f_max: float = F0_MAX_HZ,
    margin_db: float = 0.0,
    voiced_margin_db: float = 10.0,
    range_db: float = 40.0,
) -> BirdActivity:
    """Bird loudness and activity of mono ``audio [samples]`` over its noise ``floor``.

    Args:
        audio: Mono float audio ``[samples]`` at ``sample_rate``.
        sample_rate: Its rate.
        floor: The recording's background magnitude per bin ``[n_fft // 2 + 1]``
            (``background.noise_floor`` of this audio, any FFT size).
        confidence: Voicing confidence ``[n_frames]`` (``pitch.estimate_f0``) or None; voiced
            frames (>= 0.5) count as active ``voiced_margin_db`` lower.
        hop_length: Frame hop; frames are those of ``loudness.loudness_db`` (``len // hop + 1``,
            centred, Hann window of ``4 * hop_length``).
        f_min, f_max: The bird band (the F0 search band); it starts an octave under ``f_min``.
        margin_db: Activity threshold over the floor's band loudness.
        voiced_margin_db: How much lower the threshold is on voiced frames.
        range_db: Frames more than this under the loudest bird frame are never active.

    Returns:
        :class:`BirdActivity` with ``[n_frames]`` arrays.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise ValueError(f"bird_activity: audio must be mono [samples], got shape {audio.shape}")
    floor = np.asarray(floor, np.float64)
    if floor.ndim != 1 or floor.shape[0] < 2 or not np.all(np.isfinite(floor)):
        raise ValueError(f"bird_activity: floor must be a finite [bins] vector, got {floor.shape}")
    n_fft = 4 * hop_length
    # The frames and calibration of features.loudness.loudness_db (centred, zero padded).
    frames = frame_signal(audio, n_fft, hop_length)
    n_frames = frames.shape[0]
    window_power = float(np.sum(hann_window(n_fft).astype(np.float64) ** 2))
    floor_fft = 2 * (floor.shape[0] - 1)
    floor_window_power = float(np.sum(hann_window(floor_fft).astype(np.float64) ** 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    # A stationary background's power per bin scales with the window's energy (Σw²): the floor
    # measured at its own FFT size, moved onto this grid.
    floor_power = (
        np.interp(freqs, np.fft.rfftfreq(floor_fft, 1.0 / sample_rate), floor) ** 2
        * window_power
        / floor_window_power
    )
    band = (freqs >= _BAND_LOW_RATIO * f_min) & (freqs <= min(f_max, 0.5 * sample_rate))
    weights = np.where(band, _a_weights(sample_rate, n_fft), 0.0)
    weighted = np.empty(n_frames, np.float64)
    for rows, power in power_blocks(frames, n_fft):
        excess = np.where(power > _BIN_SNR * floor_power, power - floor_power, 0.0)
        weighted[rows] = excess @ weights
    # Same reference as loudness_db: a unit sine's summed one-sided power, n_fft Σw² / 4.
    reference = n_fft * window_power / 4.0
    with np.errstate(divide="ignore"):
        loud = 10 * np.log10(weighted / reference)
        floor_db = float(10 * np.log10(max(float(weights @ floor_power), 1e-30) / reference))
    loud = np.maximum(loud, LOUDNESS_FLOOR_DB).astype(np.float32)
    threshold = np.full(n_frames, floor_db + margin_db)
    if confidence is not None:
        confidence = np.asarray(confidence)
        if confidence.shape != (n_frames,):
            raise ValueError(
                f"bird_activity: confidence must be [{n_frames}] frames, got {confidence.shape}"
            )
        threshold = np.where(confidence >= 0.5, threshold - voiced_margin_db, threshold)
    active = (loud >= threshold) & (loud >= loud.max() - range_db) & (loud > LOUDNESS_FLOOR_DB)
    reach = int(round(_GATE_SECONDS * sample_rate / hop_length))
    # Dilation by ``reach`` frames ("full" then centred: "same" would grow a short input).
    spread = np.convolve(active.astype(np.float32), np.ones(2 * reach + 1), mode="full")
    near = spread[reach : reach + n_frames] > 0.5
    loud = np.where(near, loud, LOUDNESS_FLOOR_DB).astype(np.float32)
    return BirdActivity(loud, active, floor_db)


def share_below(
    audio: np.ndarray,
    sample_rate: int,
    floor: np.ndarray,
    active: np.ndarray,
    split_hz: float,
    hop_length: int = HOP_LENGTH,
    low_hz: float = 100.0,
    high_hz: float = F0_MAX_HZ,
) -> float:
    """Share of a recording's bird power, between ``low_hz`` and ``high_hz``, below ``split_hz``.

    The bird's power is what rises over the noise ``floor`` (as in :func:`bird_activity`: bins
    ``_BIN_SNR`` over it, less the floor) in the ``active [n_frames]`` frames (frames of
    ``hop_length``), on the floor's own FFT grid (``floor [n_fft // 2 + 1]``, hop ``n_fft // 4``).
    Near 1 for a species singing below the analysis band: on xc-germany-20, below 1 kHz, the
    wood pigeon's recordings read 0.03-1.00 (median 1.00), no other species' median exceeds
    0.12. 0 when nothing rises over the floor.
    """
    audio = np.asarray(audio, np.float32)
    floor = np.asarray(floor, np.float64)
    active = np.asarray(active, bool)
    if audio.ndim != 1 or floor.ndim != 1 or floor.shape[0] < 2:
        raise ValueError(
            f"share_below: need mono audio and a [bins] floor, got {audio.shape} and {floor.shape}"
        )
    if not low_hz < split_hz < high_hz:
        raise ValueError(
            f"share_below: need low_hz < split_hz < high_hz, got {low_hz}, {split_hz}, {high_hz}"
        )
    n_fft = 2 * (floor.shape[0] - 1)
    power = magnitude_spectrogram(audio, n_fft, n_fft // 4, power=2.0)  # [bins, frames]
    # Each spectrum frame is centred at j * n_fft / 4 samples: the control frame there says
    # whether the bird sang.
    at = np.minimum(np.arange(power.shape[1]) * (n_fft // 4) // hop_length, active.shape[0] - 1)
    power = power[:, active[at]].astype(np.float64)
    floor_power = floor[:, None] ** 2
    excess = np.where(power > _BIN_SNR * floor_power, power - floor_power, 0.0).sum(axis=1)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    total = float(excess[(freqs >= low_hz) & (freqs < high_hz)].sum())
    below = float(excess[(freqs >= low_hz) & (freqs < split_hz)].sum())
    return below / total if total > 0 else 0.0
