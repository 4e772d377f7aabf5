"""Background noise floors for synthetic items: checked when given, measured from a dataset.

A "measured" scene hears a synthetic song over the noise floor of a real recording. The floors
of the whole dataset (every class, every recording channel) place a rare species' songs in the
conditions its real test recordings will have, rather than those of its few training
recordings; that measured best in ``benchmarks/classifier_gain.py`` (README).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..features.background import FLOOR_FFT_SIZE, noise_floor
from ..io import resample
from .layout import ItemLayout

__all__ = ["MAX_DATASET_BACKGROUNDS", "check_noise_floors", "measure_dataset_backgrounds"]

# A dataset's backgrounds: at most this many real items are measured (4 KB of spectrum each).
MAX_DATASET_BACKGROUNDS = 256
_BINS = FLOOR_FFT_SIZE // 2 + 1


def check_noise_floors(floors: Any, name: str = "backgrounds") -> np.ndarray:
    """``floors`` as float32 ``[n, 1025]`` `noise_floor` magnitudes, or a ValueError."""
    pool = np.asarray(floors, np.float32)
    if pool.ndim != 2 or pool.shape[0] == 0 or pool.shape[1] != _BINS:
        raise ValueError(f"{name} must be [n, {_BINS}] noise floors, got shape {pool.shape}")
    if not np.isfinite(pool).all() or (pool < 0).any():
        raise ValueError(f"{name} must be finite magnitudes >= 0")
    return pool


def measure_dataset_backgrounds(
    dataset: Any,
    layout: ItemLayout,
    model_rate: int,
    sample_rate: int | None = None,
    max_items: int = MAX_DATASET_BACKGROUNDS,
    progress: bool = True,
) -> np.ndarray:
    """Noise floors ``[n, 1025]`` (at ``model_rate``) of up to ``max_items`` real items.

    Items are evenly spaced over the dataset, so a large dataset is sampled across every class
    and recording session without reading it all. Multichannel items are mixed to mono; items
    shorter than one analysis frame (2048 samples at ``model_rate``) or with NaN/inf are skipped.

    Args:
        dataset: Map-style dataset of items laid out as ``layout`` says.
        layout: Where each item keeps its waveform and sample rate.
        model_rate: The species models' sample rate, at which floors are measured.
        sample_rate: The items' rate when they do not carry one.
        max_items: How many items to measure at most.
        progress: Show a progress bar.
    """
    n = len(dataset)
    picks = np.unique(np.linspace(0, n - 1, min(n, max_items)).round()).astype(int)
    floors = []
    for i in tqdm(picks, desc="measuring backgrounds", disable=not progress):
        item = dataset[int(i)]
        audio = np.asarray(layout.get(item, "waveform"), np.float32)
        audio = audio.mean(axis=0) if audio.ndim == 2 else audio
        rate = layout.sample_rate_of(item, sample_rate)
        if rate != model_rate:
            audio = resample(audio, rate, model_rate)
        if audio.shape[0] >= FLOOR_FFT_SIZE and np.isfinite(audio).all():
            floors.append(noise_floor(audio))
    if not floors:
        raise ValueError(
            f"backgrounds='dataset': no item of at least {FLOOR_FFT_SIZE} finite samples at "
            f"{model_rate} Hz to measure; pass backgrounds='species' (the species' own training "
            "backgrounds) or an array of noise floors"
        )
    return np.stack(floors)
