"""Spectrogram figures: one clip, real-vs-synthetic contact sheets, labelled stacks.

Figures are built with :class:`matplotlib.figure.Figure` (Agg canvas) rather than ``pyplot``, so
plotting never touches the global backend or figure registry (safe in workers and headless runs).
Every spectrogram is linear 0–16 kHz (capped at Nyquist), in dB relative to the clip's own peak:
real recordings and synthetic songs sit at different levels, and a per-clip scale lets one
compare their shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .dsp.spectral import magnitude_spectrogram
from .io import atomic_write

__all__ = [
    "comparison_panels",
    "contact_sheet",
    "draw_spectrogram",
    "save_figure",
    "spectrogram_db",
    "spectrogram_png",
    "stacked_spectrograms",
]

_N_FFT = 512
_HOP = 128
_TOP_HZ = 16000.0
_RANGE_DB = 80.0
_CMAP = "magma"


def spectrogram_db(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """Magnitude spectrogram ``[bins, frames]`` in dB re the clip's peak, floored at −80 dB.

    Returns the spectrogram (bins up to ``min(16 kHz, Nyquist)``) and its top frequency in Hz.
    Hann window of 512 samples, hop 128 (16 ms / 4 ms at 32 kHz).
    """
    audio = np.asarray(audio, np.float32).ravel()
    magnitude = magnitude_spectrogram(audio, _N_FFT, _HOP, center=False)
    top_hz = min(_TOP_HZ, sample_rate / 2)
    n_bins = int(np.floor(top_hz / (sample_rate / _N_FFT))) + 1
    db = 20 * np.log10(magnitude[:n_bins] + 1e-10)
    db -= db.max()
    return np.maximum(db, -_RANGE_DB), top_hz


def _draw(ax: Axes, audio: np.ndarray, sample_rate: int, title: str | None) -> None:
    db, top_hz = spectrogram_db(audio, sample_rate)
    seconds = max(np.asarray(audio).size / sample_rate, _N_FFT / sample_rate)
    draw_spectrogram(ax, db, seconds, top_hz, title)


def draw_spectrogram(
    ax: Axes, db: np.ndarray, seconds: float, top_hz: float, title: str | None = None
) -> None:
    """Show a precomputed dB spectrogram ``[bins, frames]`` (0 dB at the top of the colour scale,
    −80 dB at the bottom) spanning ``seconds`` × 0–``top_hz`` on ``ax``, in this module's style.

    For spectrograms on a scale of the caller's choosing (e.g. several clips re one reference).
    """
    ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap=_CMAP,
        vmin=-_RANGE_DB,
        vmax=0.0,
        extent=(0.0, seconds, 0.0, top_hz / 1000),
        interpolation="nearest",
    )
    ax.set_ylabel("kHz")
    if title:
        ax.set_title(title, fontsize=9)


def _save(fig: Figure, path: str | Path) -> Path:
    return save_figure(fig, path)


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically (Agg canvas, no pyplot); returns ``path``."""
    path = Path(path)
    FigureCanvasAgg(fig)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return path


def spectrogram_png(
    audio: np.ndarray, sample_rate: int, path: str | Path, title: str | None = None
) -> Path:
    """Write the spectrogram of ``audio [samples]`` to ``path`` (PNG); returns ``path``."""
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax = fig.add_subplot()
    _draw(ax, audio, sample_rate, title)
    ax.set_xlabel("s")
    return _save(fig, path)


def contact_sheet(
    real_clips: Sequence[tuple[str, np.ndarray]] | Sequence[np.ndarray],
    synthetic_clips: Sequence[tuple[str, np.ndarray]] | Sequence[np.ndarray],
    sample_rate: int,
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Real clips (left column) beside synthetic clips (right column), one row per pair.

    Clips are ``[samples]`` arrays at ``sample_rate``, or ``(label, audio)`` pairs. With no real
    clips the sheet shows the synthetic column alone with a note saying so.
    """
    real = [_labelled(c, f"real {i + 1}") for i, c in enumerate(real_clips)]
    synthetic = [_labelled(c, f"synthetic {i + 1}") for i, c in enumerate(synthetic_clips)]
    if not real and not synthetic:
        raise ValueError("contact_sheet needs at least one clip")
    columns = [("Real", real), ("Synthetic", synthetic)] if real else [("Synthetic", synthetic)]
    rows = max(len(clips) for _, clips in columns)
    fig = Figure(figsize=(5 * len(columns), 1.9 * rows + 0.8), layout="constrained")
    grid = fig.subplots(rows, len(columns), squeeze=False)
    for col, (heading, clips) in enumerate(columns):
        for row in range(rows):
            ax = grid[row, col]
            if row < len(clips):
                _draw(ax, clips[row][1], sample_rate, clips[row][0])
            else:
                ax.set_axis_off()
        grid[len(clips) - 1, col].set_xlabel("s")
        grid[0, col].annotate(
            heading, (0.5, 1.25), xycoords="axes fraction", ha="center", fontweight="bold"
        )
    suptitle = title or ""
    if not real:
        suptitle += "\n(no real recordings given: pass --real_path to compare)"
    if suptitle:
        fig.suptitle(suptitle.strip(), fontsize=10)
    return _save(fig, path)


def stacked_spectrograms(
    rows: Sequence[tuple[str, np.ndarray]],
    sample_rate: int,
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Spectrograms stacked vertically on one time axis, one ``(label, audio [samples])`` per row.

    E.g. real | resynthesis | baseline for the same clip.
    """
    if not rows:
        raise ValueError("stacked_spectrograms needs at least one row")
    fig = Figure(figsize=(8, 2.0 * len(rows) + 0.5), layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (label, audio) in zip(axes, rows, strict=True):
        _draw(ax, audio, sample_rate, label)
    axes[-1].set_xlabel("s")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def comparison_panels(
    panels: Sequence[tuple[Literal["hist", "line"], str, Mapping[str, np.ndarray]]],
    path: str | Path,
    title: str | None = None,
    bins: int = 40,
) -> Path:
    """Side-by-side panels comparing sets (e.g. real vs synthetic), one curve per set.

    Each panel is ``(kind, xlabel, {label: values})``: ``kind`` "hist" draws density step
    histograms of 1-D samples on shared bins; "line" draws each ``values`` array against its
    index (e.g. a mean spectrum per band). Empty arrays are left out of their panel.
    """
    if not panels:
        raise ValueError("comparison_panels needs at least one panel")
    fig = Figure(figsize=(4.5 * len(panels), 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (kind, xlabel, sets) in zip(axes, panels, strict=True):
        present = {k: np.asarray(v, np.float64).ravel() for k, v in sets.items() if np.size(v)}
        if kind == "hist" and present:
            values = np.concatenate(list(present.values()))
            edges = np.linspace(values.min(), max(values.max(), values.min() + 1e-6), bins + 1)
            for label, v in present.items():
                ax.hist(v, bins=edges, density=True, histtype="step", linewidth=1.4, label=label)
            ax.set_ylabel("density")
        elif kind == "line":
            for label, v in present.items():
                ax.plot(v, linewidth=1.4, label=label)
        elif kind != "hist":
            raise ValueError(f"panel kind must be 'hist' or 'line', got {kind!r}")
        ax.set_xlabel(xlabel)
        if present:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _labelled(clip: tuple[str, np.ndarray] | np.ndarray, default: str) -> tuple[str, np.ndarray]:
    if isinstance(clip, tuple):
        return str(clip[0]), np.asarray(clip[1], np.float32)
    return default, np.asarray(clip, np.float32)
