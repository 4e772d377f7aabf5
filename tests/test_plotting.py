from pathlib import Path

import numpy as np
import pytest

from ddsp_augment.plotting import (
    comparison_panels,
    contact_sheet,
    spectrogram_db,
    spectrogram_png,
    stacked_spectrograms,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chirp(seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * (2000 * t + 1500 * t**2))).astype(np.float32)


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_spectrogram_db_is_peak_relative_and_capped_at_16k_or_nyquist():
    db, top = spectrogram_db(_chirp(0.5, 32000), 32000)
    assert top == 16000.0 and db.max() == pytest.approx(0.0) and db.min() >= -80.0
    assert db.shape[0] == 257  # 512-point FFT: every bin up to 16 kHz
    _, top = spectrogram_db(_chirp(0.5, 22050), 22050)
    assert top == 11025.0
    db, _ = spectrogram_db(np.zeros(100, np.float32), 32000)  # shorter than one FFT, silent
    assert np.isfinite(db).all()


def test_spectrogram_png_writes_a_png(tmp_path):
    path = spectrogram_png(_chirp(1.0, 32000), 32000, tmp_path / "a" / "song.png", "a title")
    assert _is_png(path)


def test_contact_sheet_with_and_without_real_clips(tmp_path):
    real = [("real.wav", _chirp(1.0, 32000))]
    synthetic = [_chirp(1.0, 32000), _chirp(0.7, 32000)]
    assert _is_png(contact_sheet(real, synthetic, 32000, tmp_path / "sheet.png", "Parus major"))
    assert _is_png(contact_sheet([], synthetic, 32000, tmp_path / "only.png", "Parus major"))
    with pytest.raises(ValueError):
        contact_sheet([], [], 32000, tmp_path / "none.png")


def test_stacked_spectrograms_and_comparison_panels(tmp_path):
    rows = [("real", _chirp(1.0, 22050)), ("resynthesis", 0.1 * _chirp(1.0, 22050))]
    assert _is_png(stacked_spectrograms(rows, 22050, tmp_path / "stack.png", "clip"))
    rng = np.random.default_rng(0)
    panels = [
        ("hist", "F0 (kHz)", {"real": rng.normal(4, 1, 500), "synthetic": np.empty(0)}),
        ("line", "mel band", {"real": rng.normal(size=64)}),
        ("hist", "loudness", {}),
    ]
    assert _is_png(comparison_panels(panels, tmp_path / "panels.png", "t"))
