"""``benchmarks/realism_diagnosis.py``: its windows and its argument checks (no BirdNET run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from realism_diagnosis import parse_args, vocoder, windows


def test_windows_keep_half_window_remainders():
    audio = np.arange(8000, dtype=np.float32)  # 8 s at 1 kHz: 3 + 3 + 2 s
    cuts = windows(audio, 3.0, 1000)
    assert [c.shape[0] for c in cuts] == [3000, 3000, 2000]
    assert cuts[1][0] == 3000.0
    # A 1 s remainder (under half a window) is dropped; a clip under half a window is kept whole.
    assert [c.shape[0] for c in windows(audio[:7000], 3.0, 1000)] == [3000, 3000]
    assert [c.shape[0] for c in windows(audio[:1000], 3.0, 1000)] == [1000]
    with pytest.raises(ValueError, match="seconds"):
        windows(audio, 0.0001, 1000)


def test_parse_args_needs_a_realism_run(tmp_path):
    with pytest.raises(ValueError, match="run_path"):
        parse_args(["--run_path", str(tmp_path)])
    (tmp_path / "models").mkdir()
    (tmp_path / "realism.json").write_text(json.dumps({"species": []}), "utf-8")
    args = parse_args(["--run_path", str(tmp_path), "--species", "Corvus_corax", "--n", "3"])
    assert (args.species, args.n, args.seconds, args.seed) == (["Corvus_corax"], 3, 3.0, 0)
    with pytest.raises(ValueError, match="n >= 1"):
        parse_args(["--run_path", str(tmp_path), "--n", "0"])


def _band_db(audio: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(audio.shape[0], 1 / 32000)
    return float(10 * np.log10(spectrum[(freqs >= lo) & (freqs < hi)].mean()))


def test_vocoder_keeps_where_the_energy_is_and_clean_drops_the_background():
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 32000
    tone = 0.3 * np.sin(2 * np.pi * 3000 * t) * (t > 0.5)  # a tone over the second half
    audio = (tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    for bands in (65, 257):
        out = vocoder(audio, bands, clean=False, rng=np.random.default_rng(1))
        assert out.shape == audio.shape and np.all(np.isfinite(out))
        assert np.std(out) == pytest.approx(np.std(audio), rel=1e-4)
        # Noise shaped like the tone: > 20 dB more around 3 kHz than an octave away.
        assert _band_db(out, 2800, 3200) - _band_db(out, 6000, 8000) > 20
        # ... and only while the tone sounds (the first half is the faint background).
        assert np.std(out[:14000]) < 0.1 * np.std(out[18000:])
    plain = vocoder(audio, 257, clean=False, rng=np.random.default_rng(1))
    clean = vocoder(audio, 257, clean=True, rng=np.random.default_rng(1))
    # Background power subtracted (the floor is its RMS, so about half the frames stay above it):
    # away from the tone the level falls by 5.6 dB for this seed.
    assert _band_db(plain, 6000, 8000) - _band_db(clean, 6000, 8000) > 4
