"""The recorded residual: what a species model's harmonics leave of the clean bird.

Sinusoids plus noise, as in spectral modelling synthesis (Serra & Smith 1990), with the species
model as the sinusoidal part. Per 2 ms frame, the residual is the recording's spectrum minus
its measured background and minus the model's own harmonic rendering of that recording's
contours as heard, through the model's learned reverb, on a 62.5 Hz grid (``RESIDUAL_BANDS``).
Generation renders it in place of the decoder's 65-band noise, moved along with the contour
frames it belongs to, at the new song's pitch and level, on a 4 ms grid (:func:`song_residual`):
noise with those magnitudes whose phase ``RESIDUAL_PHASE_ITERS`` Griffin-Lim iterations make
consistent (``dsp.functional.griffin_lim_noise``). It is added *after* the reverb:
``reverb(harmonic) + residual`` (``model.species_model``), where the decoder's noise is rendered
``reverb(harmonic + noise)``.

Why through the reverb, both ways: the residual is recorded sound, so it already carries the
room, and the harmonics a listener hears (and a recording holds) are the reverberated ones. The
learned reverb adds 8-19 dB to the harmonic part (20 species' models, median 13 dB); measured
against the dry harmonics the residual kept most of every tonal note, and rendering it through
the reverb again boosted it a second time. Measuring against ``reverb(harmonic)`` and
adding the residual after the reverb is the one consistent pair that needs no inverse filter
(dividing the reverb's response out instead would blow up wherever that response dips).
Residuals measured the old way (before :data:`RESIDUAL_VERSION` 2) are not loaded
(``features.contours.ContourBank.load``): such a model falls back to its decoder's noise, with
a warning to retrain it.

Why: the harsh callers (goshawk, raven, jay, buzzard) carry their identity in spectral detail
the 65-band noise branch cannot draw and their harmonic branch misses when F0 is tracked at a
strong partial. Measured with BirdNET on 20 species' training windows (README, "Sinusoids plus
the recorded residual"): the model's resynthesis 0.49 top-1, with the recorded residual 0.57,
the real windows 0.68; on generated songs 0.49 -> 0.60. Version 2 against version 1 (docs/
RESULTS.md): even over the 20 species, better for the tonal songsters, a little worse for the
harsh callers.
"""

from __future__ import annotations

import numpy as np

from ..dsp.numba_kernels import pool_frames, warp_spectra_db
from ..dsp.spectral import magnitude_spectrogram
from .background import noise_floor

__all__ = [
    "RESIDUAL_BANDS",
    "RESIDUAL_FLOOR_DB",
    "RESIDUAL_PHASE_ITERS",
    "RESIDUAL_POOL",
    "RESIDUAL_VERSION",
    "measure_residual",
    "song_residual",
]

#: Bands of a residual frame: a 512-point FFT at 32 kHz, 62.5 Hz apart. At the decoder's 65
#: bands a noise vocoder of the clean recordings lost most species in BirdNET's ears; at 257 it
#: kept them (README: 0.35 vs 0.56 top-1 over 20 species).
RESIDUAL_BANDS = 257
#: Level of a residual band with nothing in it, dB (re. the filtered-noise gain 1).
RESIDUAL_FLOOR_DB = -120.0
#: Control frames per frame of the rendered residual: 2 (hop 128, 4 ms at 32 kHz), a quarter of
#: the 512-point (16 ms) window each band's level is measured through: the 75 % overlap
#: Griffin-Lim needs, and 2 ms frames oversample that window anyway. Each run of 2 frames is
#: pooled to its RMS per band, so its energy is kept (the pooled frame sits 1 ms after the STFT
#: frame it is rendered as, a sixteenth of the window).
RESIDUAL_POOL = 2
#: Griffin-Lim iterations that give the rendered residual a consistent phase. Random phase
#: (0) smears the pulses and periodicity within each band that harsh calls carry. Chosen on a
#: validation split (20 species, 24 songs each, BirdNET): over the old filtered noise at 8 ms,
#: 0 iterations +0.025 confidence, 8 +0.047, 16 and 32 no more (docs/RESULTS.md, realism, "The
#: phase"); each iteration costs about 3 ms per 3 s clip on one CPU thread.
RESIDUAL_PHASE_ITERS = 8
#: How residuals are measured and rendered: 2 against the harmonics through the model's reverb,
#: added after it; 1 (unversioned files) against the dry harmonics, rendered through the reverb.
RESIDUAL_VERSION = 2
# A phrase's level may be moved this far (dB) from its source frames' before its residual is
# clamped: jitter moves levels by a few dB, and the limit keeps a near-silent source frame from
# being blown up into audible noise.
_GAIN_LIMITS_DB = (-60.0, 20.0)


def measure_residual(
    audio: np.ndarray,
    harmonic: np.ndarray,
    hop_length: int,
    n_bands: int = RESIDUAL_BANDS,
) -> np.ndarray:
    """The recorded residual of ``audio [samples]`` → ``[samples // hop_length + 1, n_bands]``
    float32 dB: filtered-noise gains (``dsp.numba_kernels.filtered_noise``'s magnitudes) that
    re-render what ``harmonic [samples]`` (the model's harmonic part for this audio's
    contours as heard, through its reverb: ``SpeciesModel.harmonic_part``) leaves of the bird
    above the recording's background, to be added after the reverb.

    Power per bin: the recording's, minus its background (``background.noise_floor`` at this
    resolution; none in a clip under half its window), minus the harmonic part's,
    floored at zero; then scaled from a Hann-windowed spectrum back to noise gains. Empty bins
    read ``RESIDUAL_FLOOR_DB``.
    """
    audio = np.asarray(audio, np.float32)
    harmonic = np.asarray(harmonic, np.float32)
    if audio.ndim != 1 or audio.shape != harmonic.shape:
        raise ValueError(
            f"measure_residual needs mono audio and harmonic of one shape, got {audio.shape} "
            f"and {harmonic.shape}"
        )
    if n_bands < 2:
        raise ValueError(f"n_bands must be >= 2, got {n_bands}")
    n_fft = 2 * (n_bands - 1)
    frames = audio.shape[0] // hop_length + 1
    power = magnitude_spectrogram(audio, n_fft, hop_length, power=2.0)[:, :frames]
    # Under half an analysis window there is no background to measure (nor room to pad for it).
    if audio.shape[0] > n_fft // 2:
        power -= noise_floor(audio, n_fft)[:, None] ** 2
    power -= magnitude_spectrogram(harmonic, n_fft, hop_length, power=2.0)[:, :frames]
    # A Hann-windowed frame of unit white noise reads sqrt(sum(w^2)) per bin.
    window = np.hanning(n_fft + 1)[:-1]
    gain_power = np.maximum(power.T, 0.0) / np.sum(window**2)
    floor = 10.0 ** (RESIDUAL_FLOOR_DB / 10.0)
    return (10.0 * np.log10(np.maximum(gain_power, floor))).astype(np.float32)


def song_residual(
    residual_db: np.ndarray,
    sung: np.ndarray,
    rows: np.ndarray,
    gain_db: np.ndarray,
    ratio: np.ndarray,
) -> np.ndarray:
    """A recorded residual ``[R, bands]`` (dB) under a new song → the song's noise magnitudes
    ``[ceil(frames / RESIDUAL_POOL), bands]`` float32, to render at ``RESIDUAL_POOL`` times
    the control hop (``dsp.functional.griffin_lim_noise``).

    ``sung [frames]`` (bool) marks the song's frames with a bird; the others have no noise.
    The ``i``-th sung frame takes residual frame ``rows[i]``, raised by ``gain_db[i]`` (clamped
    to [-60, 20] dB) and stretched along frequency by ``ratio[i]`` (the new F0 over the source
    frame's: band ``k`` reads the source at ``k / ratio``, linearly between bands; beyond the
    top band, nothing), so the noise keeps its place relative to the harmonics it was measured
    against. Each run of ``RESIDUAL_POOL`` frames is then pooled to its RMS per band, so the
    run's noise keeps its energy in every band. The source rows are read in place and only the
    sung frames computed: this runs per generated clip, on the host whatever the device.
    """
    sung = np.asarray(sung, bool)
    n_sung = int(np.count_nonzero(sung))
    if sung.ndim != 1:
        raise ValueError(f"sung must be [frames], got shape {sung.shape}")
    for name, values in (("rows", rows), ("gain_db", gain_db), ("ratio", ratio)):
        if np.shape(values) != (n_sung,):
            raise ValueError(
                f"{name} must be [{n_sung}] (one per sung frame), got {np.shape(values)}"
            )
    gain = np.clip(np.asarray(gain_db, np.float32), *_GAIN_LIMITS_DB)
    magnitudes = warp_spectra_db(residual_db, rows, gain, ratio, RESIDUAL_FLOOR_DB)
    slots = np.full(sung.shape[0], -1, np.int64)
    slots[sung] = np.arange(n_sung)
    return pool_frames(magnitudes, RESIDUAL_POOL, slots)
