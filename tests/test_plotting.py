from pathlib import Path

import numpy as np
import pytest

from ddsp_augment import plotting
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


@pytest.fixture()
def drawn(monkeypatch):
    """The figures the plotting functions save, kept for inspection (the PNGs are still written)."""
    figures = []
    save = plotting._save

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plotting, "_save", keep)
    return figures


def _images(fig) -> list[np.ndarray]:
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]


def test_spectrogram_png_draws_the_spectrogram(tmp_path, drawn):
    audio = _chirp(1.0, 32000)
    path = spectrogram_png(audio, 32000, tmp_path / "a" / "song.png", "a title")
    assert _is_png(path)
    (ax,) = drawn[0].axes
    np.testing.assert_array_equal(_images(drawn[0])[0], spectrogram_db(audio, 32000)[0])
    assert ax.images[0].get_extent() == [0.0, 1.0, 0.0, 16.0]  # seconds, kHz
    assert ax.get_title() == "a title" and ax.get_ylabel() == "kHz"
    # The chirp rises from 2 to 5 kHz: its loudest bin climbs from ~bin 32 to ~bin 80.
    ridge = _images(drawn[0])[0].argmax(axis=0)
    assert abs(int(ridge[5]) - 32) <= 2 and abs(int(ridge[-5]) - 80) <= 3


def test_contact_sheet_with_and_without_real_clips(tmp_path, drawn):
    real = [("real.wav", _chirp(1.0, 32000))]
    synthetic = [_chirp(1.0, 32000), _chirp(0.7, 32000)]
    assert _is_png(contact_sheet(real, synthetic, 32000, tmp_path / "sheet.png", "Parus major"))
    assert _is_png(contact_sheet([], synthetic, 32000, tmp_path / "only.png", "Parus major"))
    both, alone = drawn
    # Real column: one clip and an empty cell below it; synthetic column: two clips.
    assert [ax.get_title() for ax in both.axes] == ["real.wav", "synthetic 1", "", "synthetic 2"]
    assert [ax.axison for ax in both.axes] == [True, True, False, True]
    expected = [spectrogram_db(a, 32000)[0] for a in (real[0][1], *synthetic)]
    for image, want in zip(_images(both), expected, strict=True):
        np.testing.assert_array_equal(image, want)
    assert [ax.get_title() for ax in alone.axes] == ["synthetic 1", "synthetic 2"]
    assert "no real recordings given" in alone.get_suptitle()
    with pytest.raises(ValueError):
        contact_sheet([], [], 32000, tmp_path / "none.png")


def test_stacked_spectrograms_and_comparison_panels(tmp_path, drawn):
    rows = [("real", _chirp(1.0, 22050)), ("resynthesis", 0.1 * _chirp(1.0, 22050))]
    assert _is_png(stacked_spectrograms(rows, 22050, tmp_path / "stack.png", "clip"))
    real, quiet = _images(drawn[0])
    np.testing.assert_allclose(real, quiet, atol=1e-3)  # dB re each clip's peak: gain cancels
    assert [ax.get_title() for ax in drawn[0].axes] == ["real", "resynthesis"]
    rng = np.random.default_rng(0)
    f0 = rng.normal(4, 1, 500)
    band_means = rng.normal(size=64)
    panels = [
        ("hist", "F0 (kHz)", {"real": f0, "synthetic": np.empty(0)}),
        ("line", "mel band", {"real": band_means}),
        ("hist", "loudness", {}),
    ]
    assert _is_png(comparison_panels(panels, tmp_path / "panels.png", "t"))
    hist, line, empty = drawn[1].axes
    # The empty synthetic set is left out; the histogram is a density over 40 shared bins.
    assert [t.get_text() for t in hist.get_legend().get_texts()] == ["real"]
    (step,) = hist.patches
    x, y = step.get_xy().T
    assert x.min() == pytest.approx(f0.min()) and x.max() == pytest.approx(f0.max())
    assert np.sum(np.diff(np.unique(x)) * y[1:-1:2][:40]) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_array_equal(line.lines[0].get_ydata(), band_means)
    assert [t.get_text() for t in empty.texts] == ["no data"]
