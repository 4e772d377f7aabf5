"""Bird activity and loudness over the noise floor (features/activity.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import XC_GERMANY

from ddsp_augment.constants import LOUDNESS_FLOOR_DB
from ddsp_augment.features.activity import bird_activity, share_below
from ddsp_augment.features.background import noise_floor
from ddsp_augment.features.contours import find_segments
from ddsp_augment.features.loudness import loudness_db
from ddsp_augment.features.pitch import estimate_f0
from ddsp_augment.io import load_audio
from ddsp_augment.training.preprocess import analyse_audio

SR = 32000
HOP = 64
# A chiffchaff's calls over steady hiss (xeno-canto XC1158093, Johannes Dag Mayer, CC BY-NC-SA
# 4.0; bundled in benchmarks/data/xc-germany): the loudest call is only ~21 dB over the hiss, so
# a 40 dB range from the loudest frame counts the whole recording as song.
NOISY = XC_GERMANY / "Phylloscopus_collybita" / "XC1158093.mp3"


def _noise_with_tone(seconds: float = 4.0, tone: tuple[float, float] = (1.0, 2.0)) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    burst = (t >= tone[0]) & (t < tone[1])
    return (
        0.01 * rng.standard_normal(t.size) + 0.05 * np.sin(2 * np.pi * 3000 * t) * burst
    ).astype(np.float32)


def test_tone_burst_over_hiss_is_the_only_activity():
    audio = _noise_with_tone()
    result = bird_activity(audio, SR, noise_floor(audio), hop_length=HOP)
    frames = np.arange(result.active.size) * HOP / SR
    inside = (frames > 1.02) & (frames < 1.98)
    outside = (frames < 0.95) | (frames > 2.05)
    assert result.active.shape == (audio.size // HOP + 1,)
    assert result.active[inside].all()
    assert not result.active[outside].any()
    # Background-only frames away from the tone are gated to the loudness floor.
    far = (frames < 0.9) | (frames > 2.1)
    assert np.all(result.loudness_db[far] == LOUDNESS_FLOOR_DB)


def test_bird_loudness_keeps_the_loudness_calibration():
    """A 1 kHz sine burst over faint noise reads what pitch.loudness_db reads (0 dB full scale)."""
    t = np.arange(SR) / SR
    burst = (t >= 0.4) & (t < 0.7)
    noise = 1e-4 * np.random.default_rng(1).standard_normal(SR)
    audio = (np.sin(2 * np.pi * 1000 * t) * burst + noise).astype(np.float32)
    result = bird_activity(audio, SR, noise_floor(audio), hop_length=HOP)
    middle = slice(int(0.5 * SR / HOP), int(0.6 * SR / HOP))
    assert np.median(result.loudness_db[middle]) == pytest.approx(0.0, abs=0.2)
    plain = loudness_db(audio, SR, HOP)
    assert np.median(result.loudness_db[middle]) == pytest.approx(np.median(plain[middle]), abs=0.2)


def test_noisy_recording_activity_is_the_bird_not_the_hiss():
    audio, _ = load_audio(NOISY, SR)
    floor = noise_floor(audio)
    _, confidence = estimate_f0(audio, SR, hop_length=HOP)
    result = bird_activity(audio, SR, floor, confidence, HOP)
    plain = loudness_db(audio, SR, HOP)
    # The old test (40 dB from the loudest frame) takes the whole 8 s as one active stretch.
    assert find_segments(plain, SR / HOP) == [(0, plain.size)]
    segments = find_segments(result.loudness_db, SR / HOP, active=result.active)
    assert len(segments) == 10
    covered = sum(end - start for start, end in segments) / plain.size
    assert covered == pytest.approx(0.575, abs=0.01)
    assert result.active.mean() == pytest.approx(0.25, abs=0.01)
    assert result.floor_db == pytest.approx(-49.6, abs=0.2)
    # Outside the bird's stretches the contour is silent (91 %; the rest, next to dropped clicks,
    # stays under the hiss's own level): nothing there for a model to sing.
    outside = np.ones(plain.size, bool)
    for start, end in segments:
        outside[start:end] = False
    silent = np.mean(result.loudness_db[outside] == LOUDNESS_FLOOR_DB)
    assert silent == pytest.approx(0.906, abs=0.01)
    assert result.loudness_db[outside].max() < result.floor_db - 2.0
    assert np.median(plain[outside]) > -50.0  # while the hiss itself is loud there


def test_preprocessing_stores_the_bird_contour():
    audio, _ = load_audio(NOISY, SR)
    rec = analyse_audio(audio, NOISY, "Phylloscopus_collybita", "someone")
    assert rec.segments.shape == (10, 2)
    assert rec.loudness_db.max() == pytest.approx(loudness_db(audio, SR, HOP).max(), abs=0.5)


def test_find_segments_takes_an_activity_mask():
    loud = np.zeros(100, np.float32)
    active = np.zeros(100, bool)
    active[20:40] = True
    assert find_segments(loud, 500.0, pad_seconds=0.0, active=active) == [(20, 40)]
    with pytest.raises(ValueError, match="active must match"):
        find_segments(loud, 500.0, active=active[:50])


def test_bad_arguments_are_named():
    audio = _noise_with_tone(1.0, (0.2, 0.4))
    floor = noise_floor(audio)
    with pytest.raises(ValueError, match="mono"):
        bird_activity(np.stack([audio, audio]), SR, floor)
    with pytest.raises(ValueError, match="floor"):
        bird_activity(audio, SR, np.full(10, np.nan))
    with pytest.raises(ValueError, match="confidence"):
        bird_activity(audio, SR, floor, confidence=np.ones(3))


def test_clips_shorter_than_a_window_keep_the_frame_grid():
    for n in (4, 100, 300):
        result = bird_activity(np.full(n, 0.1, np.float32), SR, np.zeros(1025), hop_length=HOP)
        assert result.loudness_db.shape == result.active.shape == (n // HOP + 1,)
        assert np.all(np.isfinite(result.loudness_db))


def test_share_below_counts_the_birds_power_over_the_floor_in_active_frames():
    """A 400 Hz coo over hiss lies wholly below 1 kHz, a 3 kHz whistle not at all; outside the
    active frames the coo does not count, and what does is the hiss's own rare peaks over its
    floor, spread evenly (0.9 of 11.9 kHz: 0.08)."""
    rng = np.random.default_rng(0)
    t = np.arange(4 * SR) / SR
    hiss = 0.01 * rng.standard_normal(t.size)
    burst = (t >= 1.0) & (t < 2.0)
    active = np.zeros(4 * SR // HOP + 1, bool)
    active[SR // HOP : 2 * SR // HOP] = True
    for freq, expected in ((400.0, 1.0), (3000.0, 0.0)):
        audio = (hiss + 0.1 * np.sin(2 * np.pi * freq * t) * burst).astype(np.float32)
        share = share_below(audio, SR, noise_floor(audio), active, 1000.0, HOP)
        assert share == pytest.approx(expected, abs=0.02)
    coo = (hiss + 0.1 * np.sin(2 * np.pi * 400.0 * t) * burst).astype(np.float32)
    elsewhere = np.roll(active, 2 * SR // HOP)
    assert share_below(coo, SR, noise_floor(coo), elsewhere, 1000.0, HOP) < 0.15
    quiet = hiss.astype(np.float32)
    assert share_below(quiet, SR, noise_floor(quiet), active, 1000.0, HOP) < 0.15
    with pytest.raises(ValueError, match="low_hz < split_hz < high_hz"):
        share_below(coo, SR, noise_floor(coo), active, 50.0, HOP)
