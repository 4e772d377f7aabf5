"""numba kernel of the spectral-peak F0 tracker used by `features.pitch.estimate_f0`.

Kept apart from ``features`` so that the jitted code (cached on disk) is small and has no
Python-level dependencies.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["track_peaks"]

_MAX_CANDIDATES = 4  # strongest local maxima examined per frame


@njit(cache=True, nogil=True)
def _select_inplace(values, n, k):  # pragma: no cover - jitted
    """``k``-th smallest of ``values[:n]`` (reordered in place): Hoare quickselect."""
    lo, hi = 0, n - 1
    while lo < hi:
        pivot = values[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return values[k]


@njit(cache=True, nogil=True)
def _peak_near(row, centre, half_width, first, last):  # pragma: no cover - jitted
    """Strongest bin within ``centre ± half_width`` (in the band) if it is a local maximum,
    else -1."""
    k_lo = max(first, int(math.floor(centre - half_width)))
    k_hi = min(last, int(math.ceil(centre + half_width)))
    k = -1
    for j in range(k_lo, k_hi + 1):
        if k < 0 or row[j] > row[k]:
            k = j
    if k < 0 or row[k] < row[k - 1] or row[k] < row[k + 1]:
        return -1
    return k


@njit(cache=True, nogil=True)
def _contrast_db(row, k, lobe, ring, step, n_bins, quantile, scratch):  # pragma: no cover
    """Peak ``k`` against its surroundings: its power over a low quantile of the ring of bins
    ``lobe < |j - k| <= lobe + ring`` (every ``step``-th: zero-padded bins are not independent)
    in dB, the larger of the two sides' values.

    Taking each side apart keeps a peak on a steep spectral edge (rumble rising below the band,
    an MP3 low-pass above it) from passing as tonal; a low quantile rather than the median keeps
    the valleys between the partials of a harmonic-rich note as its reference.
    """
    reference = 0.0
    for side in (-1, 1):
        n = 0
        for d in range(lobe + 1, lobe + ring + 1, step):
            j = k + side * d
            if 1 <= j < n_bins - 1:
                scratch[n] = row[j]
                n += 1
        if n > 0:
            reference = max(reference, _select_inplace(scratch, n, int(quantile * (n - 1))))
    return 10.0 * math.log10((row[k] + 1e-30) / (reference + 1e-30))


@njit(cache=True, nogil=True)
def track_peaks(
    power,
    first,
    last,
    lobe,
    ring,
    step,
    quantile,
    accept_db,
    sub_accept_db,
    subharmonic_ratio,
    floor_power,
):  # pragma: no cover - jitted
    """Fundamental per frame from a power spectrogram.

    Args:
        power: ``[n_frames, n_bins]`` float32 power spectra (Hann window, zero padded).
        first, last: Search band in bins; ``2 <= first < last <= n_bins - 2``.
        lobe: Half-width of the window's main lobe, in bins.
        ring: Width (bins) of the neighbourhood on each side of a peak's lobe that sets its
            local noise level.
        step: Zero-padding factor: every ``step``-th neighbourhood bin is used.
        quantile: Quantile of the neighbourhood taken as that noise level.
        accept_db: Contrast (dB over the neighbourhood) that makes a peak tonal.
        sub_accept_db, subharmonic_ratio: A local peak at 1/2 or 1/3 of the chosen one with at
            least this contrast and this share of its power is taken as the fundamental
            (octave-error guard).
        floor_power: Frames whose strongest bin is below this are digital silence.

    Returns:
        ``(f0_bin [n_frames] float64, contrast_db [n_frames] float32)``: fractional bin of the
        fundamental and its contrast over its neighbourhood (0 for digital silence).
    """
    n_frames, n_bins = power.shape
    f0_bin = np.empty(n_frames, np.float64)
    contrast_out = np.zeros(n_frames, np.float32)
    scratch = np.empty(ring, np.float32)
    cand = np.empty(_MAX_CANDIDATES, np.int64)
    for i in range(n_frames):
        row = power[i]
        # Strongest local maxima in the band, by descending power (insertion into a short list).
        n_cand = 0
        for k in range(first, last + 1):
            p = row[k]
            if p < row[k - 1] or p <= row[k + 1]:
                continue
            if n_cand < _MAX_CANDIDATES:
                pos = n_cand
                n_cand += 1
            elif p > row[cand[_MAX_CANDIDATES - 1]]:
                pos = _MAX_CANDIDATES - 1
            else:
                continue
            while pos > 0 and row[cand[pos - 1]] < p:
                cand[pos] = cand[pos - 1]
                pos -= 1
            cand[pos] = k
        if n_cand == 0 or row[cand[0]] <= floor_power:
            f0_bin[i] = first
            continue
        # The strongest tonal peak wins; if none is tonal, the most tonal one (low confidence).
        best_bin, best_contrast = cand[0], -1e30
        for c in range(n_cand):
            contrast = _contrast_db(row, cand[c], lobe, ring, step, n_bins, quantile, scratch)
            if contrast > best_contrast:
                best_bin, best_contrast = cand[c], contrast
            if contrast >= accept_db:
                break
        # Octave guard: the strongest partial of a harmonic-rich note can be its 2nd or 3rd
        # harmonic; a peak at 1/2 or 1/3 of it that stands out from its own neighbourhood and
        # has a fair share of its power is the fundamental (noise there rarely comes within
        # 10 dB of a tonal peak). Repeat from the new bin (the 4th harmonic is found via the 2nd).
        reference_power = row[best_bin]
        moved = best_contrast >= accept_db
        while moved:
            moved = False
            for divisor in (2, 3):
                k = _peak_near(row, best_bin / divisor, 0.5 * lobe, first, last)
                if k < 0 or k >= best_bin or row[k] < subharmonic_ratio * reference_power:
                    continue
                contrast = _contrast_db(row, k, lobe, ring, step, n_bins, quantile, scratch)
                if contrast < sub_accept_db:
                    continue
                # A fundamental at a third needs its 2nd harmonic too: lone low-frequency
                # noise peaks at a third are common, note shapes with a dominant 3rd are not.
                if divisor == 3:
                    k2 = _peak_near(row, 2.0 * best_bin / 3.0, 0.5 * lobe, first, last)
                    if k2 < 0 or row[k2] < subharmonic_ratio * reference_power:
                        continue
                best_bin = k
                moved = True
                break
        # Parabolic interpolation on log power: exact for a Gaussian lobe, close for Hann.
        a = math.log(row[best_bin - 1] + 1e-30)
        b = math.log(row[best_bin] + 1e-30)
        c = math.log(row[best_bin + 1] + 1e-30)
        denom = a - 2.0 * b + c
        offset = 0.5 * (a - c) / denom if denom < 0.0 else 0.0
        f0_bin[i] = best_bin + min(0.5, max(-0.5, offset))
        contrast_out[i] = best_contrast
    return f0_bin, contrast_out
