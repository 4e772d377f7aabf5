"""Jittered contours: exact maths of each knob, syllable edits, song composition, config."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from _songs import abc_species, note_type

from ddsp_augment.constants import LOUDNESS_FLOOR_DB
from ddsp_augment.sampling.jitter import (
    JitterConfig,
    _linspace_from_zero,
    compose_song,
    edit_syllables,
    jitter_contours,
    shift_pitch,
    split_syllables,
    stretch_time,
)
from ddsp_augment.sampling.syllables import learn_syntax

FRAME_RATE = 500.0
# Every knob off: the identity jitter.
STILL = JitterConfig(
    pitch_cents=0.0,
    tempo=(1.0, 1.0),
    vibrato_cents=(0.0, 0.0),
    vibrato_hz=(0.0, 0.0),
    gain_db=(0.0, 0.0),
    envelope_warp=0.0,
    p_drop=0.0,
    p_repeat=0.0,
    p_reorder=0.0,
)


@dataclasses.dataclass(frozen=True)
class Segment:
    f0_hz: np.ndarray
    loudness_db: np.ndarray
    confidence: np.ndarray
    recording: str


def _phrase(
    n_syllables: int, base_hz: float, rng: np.random.Generator, syllable: int = 40, gap: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Syllables of ``syllable`` frames separated by silent gaps: rising sweeps, each a little
    higher than the last (by 1.7 cents, so each is recognisable but the phrase keeps its pitch)."""
    n = gap + n_syllables * (syllable + gap)
    f0 = np.full(n, base_hz, np.float32)
    loud = np.full(n, LOUDNESS_FLOOR_DB, np.float32)
    conf = np.zeros(n, np.float32)
    for i in range(n_syllables):
        start = gap + i * (syllable + gap)
        f0[start : start + syllable] = base_hz * (1 + 0.001 * i) * np.linspace(1, 1.2, syllable)
        loud[start : start + syllable] = -20 + rng.normal(0, 1, syllable)
        conf[start : start + syllable] = 0.9
    return f0, loud, conf


def _segments(spread_cents: float, n: int = 12, seed: int = 0) -> list[Segment]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = 3000.0 * 2 ** (rng.normal(0, spread_cents) / 1200)
        out.append(Segment(*_phrase(int(rng.integers(2, 6)), base, rng), recording=f"rec{i % 3}"))
    return out


def test_split_syllables_finds_runs_and_ignores_short_dips():
    loud = np.full(100, -100.0)
    loud[10:30] = -10
    loud[20] = -60  # a one-frame dip inside a note: not a gap
    loud[50:70] = -20
    assert split_syllables(loud, 30.0) == [(10, 30), (50, 70)]
    assert split_syllables(np.array([])) == []
    with pytest.raises(ValueError, match="threshold_db"):
        split_syllables(loud, -1.0)


def test_pitch_shift_of_100_cents_is_one_semitone():
    f0 = np.geomspace(1500, 9000, 200).astype(np.float32)
    np.testing.assert_allclose(shift_pitch(f0, 100.0) / f0, 2 ** (1 / 12), rtol=1e-4)
    # Through jitter_contours the shift is constant across the phrase and within ±pitch_cents.
    config = dataclasses.replace(STILL, pitch_cents=100.0)
    out, _, _ = jitter_contours(
        f0, np.zeros(200), np.ones(200), config, np.random.default_rng(1), FRAME_RATE
    )
    cents = 1200 * np.log2(out / f0)
    assert np.ptp(cents) < 1e-2 and abs(cents[0]) <= 100.0


def test_tempo_two_halves_the_duration():
    f0, loud, conf = _phrase(4, 3000.0, np.random.default_rng(0))
    config = dataclasses.replace(STILL, tempo=(2.0, 2.0), tempo_scope="phrase")
    out = jitter_contours(f0, loud, conf, config, np.random.default_rng(0), FRAME_RATE)
    assert all(x.shape[0] == round(f0.shape[0] / 2) for x in out)
    assert stretch_time(np.arange(100.0), 0.5).shape == (200,)
    # A linear ramp stays a ramp with twice the slope.
    np.testing.assert_allclose(np.diff(stretch_time(np.arange(100.0), 2.0)), 2.0, atol=1e-9)


@pytest.mark.parametrize("tempo", [0.5, 0.8, 1.25, 2.0])
def test_tempo_on_gaps_keeps_every_syllable_and_stretches_only_the_silences(tempo):
    f0, loud, conf = _phrase(4, 3000.0, np.random.default_rng(0), syllable=40, gap=20)
    config = dataclasses.replace(STILL, tempo=(tempo, tempo), tempo_scope="gaps")
    out_f0, out_loud, out_conf = jitter_contours(
        f0, loud, conf, config, np.random.default_rng(0), FRAME_RATE
    )
    # 4 syllables of 40 frames as recorded; the 5 gaps of 20 frames become 20 / tempo.
    assert out_f0.shape[0] == round(4 * 40 + 5 * 20 / tempo)
    bounds = split_syllables(out_loud)
    assert [b - a for a, b in bounds] == [40] * 4
    for (a, b), (c, d) in zip(bounds, split_syllables(loud), strict=True):
        # Each syllable's sweep is the recorded one, up to the sub-frame offset of the gaps'
        # new length (at most half a frame of a 20 % sweep over 40 frames: < 0.3 %).
        np.testing.assert_allclose(out_f0[a:b], f0[c:d], rtol=3e-3)
        np.testing.assert_allclose(out_conf[a:b], conf[c:d], atol=0.05)
    # Gaps stay silent (but for the frame at each edge, which interpolates into the note).
    silent = np.ones(out_f0.shape[0], bool)
    for a, b in bounds:
        silent[max(0, a - 1) : b + 1] = False
    assert np.all(out_loud[silent] <= LOUDNESS_FLOOR_DB + 1e-3)
    # All frames sung, nothing to stretch: the phrase comes back unchanged.
    held = np.full(50, -20.0, np.float32)
    same = jitter_contours(
        np.full(50, 3000.0), held, np.ones(50), config, np.random.default_rng(0), FRAME_RATE
    )
    np.testing.assert_array_equal(same[1], held)


def test_vibrato_shows_as_a_spectral_peak_with_the_requested_depth():
    n = 1000  # 2 s: 30 Hz falls exactly on a DFT bin
    config = dataclasses.replace(STILL, vibrato_cents=(20.0, 20.0), vibrato_hz=(30.0, 30.0))
    f0, _, _ = jitter_contours(
        np.full(n, 3000.0), np.zeros(n), np.ones(n), config, np.random.default_rng(2), FRAME_RATE
    )
    cents = 1200 * np.log2(f0 / 3000.0)
    amplitude = 2 * np.abs(np.fft.rfft(cents)) / n
    freqs = np.fft.rfftfreq(n, 1 / FRAME_RATE)
    assert freqs[np.argmax(amplitude)] == pytest.approx(30.0)
    assert amplitude.max() == pytest.approx(20.0, rel=0.01)


def test_gain_and_warp_leave_silence_silent():
    f0, loud, conf = _phrase(3, 3000.0, np.random.default_rng(0))
    config = dataclasses.replace(STILL, gain_db=(6.0, 6.0))
    _, out, _ = jitter_contours(f0, loud, conf, config, np.random.default_rng(0), FRAME_RATE)
    silent = loud <= LOUDNESS_FLOOR_DB
    np.testing.assert_array_equal(out[silent], LOUDNESS_FLOOR_DB)
    np.testing.assert_allclose(out[~silent], loud[~silent] + 6.0, atol=1e-5)
    warped = dataclasses.replace(STILL, envelope_warp=3.0)
    _, out, _ = jitter_contours(f0, loud, conf, warped, np.random.default_rng(0), FRAME_RATE)
    assert np.std(out[~silent] - loud[~silent]) > 0.5


def _syllable_multiset(f0: np.ndarray, loud: np.ndarray) -> Counter:
    return Counter(tuple(np.round(f0[a:b], 3)) for a, b in split_syllables(loud))


def test_reordering_keeps_the_syllables_and_their_gaps():
    f0, loud, conf = _phrase(6, 3000.0, np.random.default_rng(0))
    config = dataclasses.replace(STILL, p_reorder=1.0)
    rng = np.random.default_rng(5)
    orders = set()
    for _ in range(5):
        e_f0, e_loud, e_conf = edit_syllables(f0, loud, conf, config, rng)
        assert e_f0.shape == f0.shape
        assert _syllable_multiset(e_f0, e_loud) == _syllable_multiset(f0, loud)
        assert sorted(e_loud.tolist()) == sorted(loud.tolist())  # gaps came along
        orders.add(tuple(e_f0[[start for start, _ in split_syllables(e_loud)]].round(2)))
    assert len(orders) > 1


def test_drop_and_repeat_only_use_real_syllables():
    f0, loud, conf = _phrase(6, 3000.0, np.random.default_rng(0))
    original = _syllable_multiset(f0, loud)
    config = dataclasses.replace(STILL, p_drop=0.5, p_repeat=0.5)
    rng = np.random.default_rng(3)
    lengths = set()
    for _ in range(20):
        e_f0, e_loud, _ = edit_syllables(f0, loud, conf, config, rng)
        edited = _syllable_multiset(e_f0, e_loud)
        assert edited and set(edited) <= set(original)
        lengths.add(e_f0.shape[0])
    assert len(lengths) > 3
    everything = dataclasses.replace(STILL, p_drop=1.0)
    e_f0, e_loud, _ = edit_syllables(f0, loud, conf, everything, rng)
    assert len(split_syllables(e_loud)) == 1  # at least one syllable survives


@pytest.mark.parametrize("syntax", ["markov", "shuffle"])
@pytest.mark.parametrize("recombine", [True, False])
def test_compose_song_is_valid_and_deterministic(recombine, syntax):
    segments = _segments(80.0)
    config = dataclasses.replace(
        JitterConfig.from_segments(segments), recombine=recombine, syntax=syntax
    )
    for n_frames in (1, 7, 1501, 5000):
        a = compose_song(segments, n_frames, config, np.random.default_rng(42), FRAME_RATE)
        b = compose_song(segments, n_frames, config, np.random.default_rng(42), FRAME_RATE)
        for x, y in zip(a[:3], b[:3], strict=True):
            np.testing.assert_array_equal(x, y)
            assert x.shape == (n_frames,) and x.dtype == np.float32 and np.isfinite(x).all()
        np.testing.assert_array_equal(a.source, b.source)
        f0, loud, conf, _ = a
        assert (f0 > 0).all() and (loud >= LOUDNESS_FLOOR_DB).all()
        assert ((conf >= 0) & (conf <= 1)).all()
    c = compose_song(segments, 1501, config, np.random.default_rng(43), FRAME_RATE)
    assert not np.array_equal(a[1][:1501], c[1])


@pytest.mark.parametrize("syntax", ["markov", "shuffle"])
def test_compose_song_silence_and_start_offsets(syntax):
    segments = _segments(50.0)
    model = learn_syntax(segments, FRAME_RATE)
    starts = set()
    for seed in range(20):
        _, loud, conf, _ = compose_song(
            segments,
            1501,
            JitterConfig(syntax=syntax),
            np.random.default_rng(seed),
            FRAME_RATE,
            model,
        )
        starts.add(int(np.argmax(loud > LOUDNESS_FLOOR_DB)))
        np.testing.assert_array_equal(conf[loud <= LOUDNESS_FLOOR_DB], 0.0)
    assert len(starts) > 5


@pytest.mark.parametrize("syntax", ["markov", "shuffle"])
def test_a_short_clip_still_holds_a_song(syntax):
    """The lead-in takes at most half the clip: 0.2 s songs (shorter than the longest lead-in,
    0.5 s) are never silent, and still start at different frames."""
    segments = _segments(50.0)
    n_frames = int(0.2 * FRAME_RATE)
    starts = []
    for seed in range(50):
        song = compose_song(
            segments, n_frames, JitterConfig(syntax=syntax), np.random.default_rng(seed), FRAME_RATE
        )
        starts.append(int(np.argmax(song.loudness_db > LOUDNESS_FLOOR_DB)))
        assert (song.loudness_db > LOUDNESS_FLOOR_DB).any(), seed
    assert len(set(starts)) > 10


@pytest.mark.parametrize("syntax", ["markov", "shuffle"])
def test_compose_song_without_recombine_stays_in_one_recording(syntax):
    rng = np.random.default_rng(0)
    segments = [
        Segment(*_phrase(3, base, rng), recording=name)
        for base, name in ((2000.0, "low"), (8000.0, "high"))
        for _ in range(3)
    ]
    config = dataclasses.replace(STILL, recombine=False, syntax=syntax)
    for seed in range(10):
        f0, loud, _, _ = compose_song(
            segments, 3000, config, np.random.default_rng(seed), FRAME_RATE
        )
        voiced = f0[loud > LOUDNESS_FLOOR_DB]
        assert voiced.max() < 4000 or voiced.min() > 4000


def _phrases(loud: np.ndarray, f0: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """A composed song's phrases: runs of ``(type, start, end)`` syllables split at silences
    longer than the species' syllable gaps (60 frames, 0.12 s)."""
    phrases: list[list[tuple[int, int, int]]] = []
    previous_end = None
    for start, end in split_syllables(loud):
        if previous_end is None or start - previous_end > 60:
            phrases.append([])
        phrases[-1].append((note_type(f0[start:end]), start, end))
        previous_end = end
    return phrases


def test_markov_songs_sing_the_species_order():
    segments = abc_species()
    model = learn_syntax(segments, FRAME_RATE)
    config = dataclasses.replace(
        JitterConfig.from_segments(segments), syntax="markov", gap_seconds=(0.2, 0.3)
    )
    bigrams: Counter = Counter()
    for seed in range(10):
        f0, loud, _, _ = compose_song(
            segments, 3000, config, np.random.default_rng(seed), FRAME_RATE, model
        )
        for phrase in _phrases(loud, f0)[:-1]:  # the last one may be cut by the clip's end
            types = [t for t, _, _ in phrase]
            bigrams.update(zip(["start", *types], [*types, "end"], strict=True))
    # A=0, B=1, C=2: only start→A→B→C→end, nothing else, and dozens of complete phrases.
    assert set(bigrams) == {("start", 0), (0, 1), (1, 2), (2, "end")}
    assert len(set(bigrams.values())) == 1 and bigrams[(0, 1)] >= 30
    # Same seed, same song; learning the model inside gives the same song too.
    a = compose_song(segments, 3000, config, np.random.default_rng(3), FRAME_RATE, model)
    b = compose_song(segments, 3000, config, np.random.default_rng(3), FRAME_RATE)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_markov_gaps_are_recorded_gaps():
    segments = abc_species()
    model = learn_syntax(segments, FRAME_RATE)
    # Tempo 1 and no gain: syllables are copied frame for frame, so gaps can be read back.
    config = dataclasses.replace(STILL, syntax="markov", gap_seconds=(0.2, 0.3))
    recorded = set(model.gaps.tolist())
    for seed in range(5):
        f0, loud, _, _ = compose_song(
            segments, 3000, config, np.random.default_rng(seed), FRAME_RATE, model
        )
        for phrase in _phrases(loud, f0):
            gaps = {b[1] - a[2] for a, b in zip(phrase[:-1], phrase[1:], strict=True)}
            assert gaps <= recorded
        # Between phrases: gap_seconds, 100 to 150 frames.
        heads = [phrase[0][1] for phrase in _phrases(loud, f0)[1:]]
        tails = [phrase[-1][2] for phrase in _phrases(loud, f0)[:-1]]
        pauses = np.subtract(heads, tails)
        assert pauses.size > 0 and ((pauses >= 100) & (pauses <= 151)).all()


def test_from_segments_follows_the_species_spread():
    narrow = JitterConfig.from_segments(_segments(10.0))
    wide = JitterConfig.from_segments(_segments(150.0))
    assert narrow.pitch_cents == 25.0  # floor of the plausible range
    assert wide.pitch_cents > 100.0
    assert wide.pitch_cents <= 200.0
    lo, hi = wide.tempo
    assert lo < 1.0 < hi and hi == pytest.approx(1 / lo)
    single = JitterConfig.from_segments(_segments(150.0, n=1))
    assert single.pitch_cents == JitterConfig().pitch_cents
    with pytest.raises(ValueError, match="at least one segment"):
        JitterConfig.from_segments([])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"pitch_cents": -1.0}, "pitch_cents"),
        ({"tempo": (1.2, 0.8)}, "tempo"),
        ({"tempo": (0.0, 1.0)}, "tempo"),
        ({"vibrato_hz": (5.0, 300.0)}, "vibrato_hz"),
        ({"gain_db": (-6.0,)}, "gain_db"),
        ({"envelope_warp": -1.0}, "envelope_warp"),
        ({"p_drop": 1.5}, "p_drop"),
        ({"gap_seconds": (0.5, 0.1)}, "gap_seconds"),
        ({"tempo_scope": "syllables"}, "tempo_scope"),
    ],
)
def test_config_validation_names_the_knob(overrides, message):
    with pytest.raises(ValueError, match=message):
        JitterConfig(**overrides)


def test_bad_arguments_are_rejected():
    segments = _segments(50.0)
    with pytest.raises(ValueError, match="at least one segment"):
        compose_song([], 10, JitterConfig(), np.random.default_rng(0), FRAME_RATE)
    with pytest.raises(ValueError, match="n_frames"):
        compose_song(segments, 0, JitterConfig(), np.random.default_rng(0), FRAME_RATE)
    with pytest.raises(ValueError, match="equally long"):
        jitter_contours(
            np.ones(3), np.ones(4), np.ones(3), STILL, np.random.default_rng(0), FRAME_RATE
        )


@pytest.mark.parametrize("stop, length", [(1, 1), (1, 2), (3, 7), (7, 1500), (12, 3001)])
def test_envelope_ramp_is_numpys_linspace_bit_for_bit(stop, length):
    # The jitter's fast ramp must not move a sampled song (tests/test_regression.py pins them).
    np.testing.assert_array_equal(_linspace_from_zero(stop, length), np.linspace(0, stop, length))


@pytest.mark.parametrize("syntax", ["markov", "shuffle"])
@pytest.mark.parametrize("recombine", [True, False])
def test_compose_song_source_points_at_the_frames_it_sings(syntax, recombine):
    # Without pitch, tempo or level jitter each sung frame is a copy of its source frame; a
    # tempo change lands between source frames, whose F0 brackets the sung one.
    segments = _segments(50.0)
    f0_bank = np.concatenate([s.f0_hz for s in segments])
    loud_bank = np.concatenate([s.loudness_db for s in segments])
    owner = np.concatenate([[s.recording] * len(s.f0_hz) for s in segments])
    still = dataclasses.replace(STILL, syntax=syntax, recombine=recombine)
    for seed in range(5):
        song = compose_song(segments, 3000, still, np.random.default_rng(seed), FRAME_RATE)
        sung = ~np.isnan(song.source)
        assert song.source.dtype == np.float64 and 0.3 < sung.mean() < 1.0
        rows = song.source[sung].astype(np.int64)
        np.testing.assert_array_equal(rows, song.source[sung])  # tempo 1: whole frames
        np.testing.assert_allclose(song.f0_hz[sung], f0_bank[rows], rtol=1e-6)
        if syntax == "shuffle":  # markov levels syllables to their phrase: gains differ
            np.testing.assert_allclose(song.loudness_db[sung], loud_bank[rows], atol=1e-4)
        assert (song.loudness_db[~sung] == LOUDNESS_FLOOR_DB).all()
        if not recombine:
            assert len(set(owner[rows])) == 1
    fast = dataclasses.replace(still, tempo=(1.5, 1.5))
    song = compose_song(segments, 3000, fast, np.random.default_rng(0), FRAME_RATE)
    sung = ~np.isnan(song.source)
    low, high = np.floor(song.source[sung]).astype(int), np.ceil(song.source[sung]).astype(int)
    bracket = np.stack([f0_bank[low], f0_bank[high]])
    assert (song.f0_hz[sung] >= bracket.min(0) * (1 - 1e-5)).all()
    assert (song.f0_hz[sung] <= bracket.max(0) * (1 + 1e-5)).all()
