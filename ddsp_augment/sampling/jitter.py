"""Jittered contours: new, plausible songs from a species' real F0/loudness stretches.

Sampling starts from real segments (see `features.contours`) and varies them: pitch
shift, tempo (a time-stretch of the contours, not of audio), vibrato, loudness gain and envelope
warp, syllable edits (reorder, drop, repeat) and recombination of phrases from different
recordings. :meth:`JitterConfig.from_segments` scales the ranges to the species' own measured
variation, so a sample stays plausible for that species.

Contours follow the project conventions: F0 in Hz, finite and > 0 in every frame; loudness in dB
with floor :data:`~ddsp_augment.constants.LOUDNESS_FLOOR_DB`; confidence in [0, 1]; all
``[frames]`` float32. Everything is vectorised numpy (no per-frame Python loops) and all
randomness comes from the ``rng`` argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..checks import check_range
from ..constants import F0_MIN_HZ, LOUDNESS_FLOOR_DB, SAMPLE_RATE, VOICED_THRESHOLD

__all__ = [
    "JitterConfig",
    "compose_song",
    "edit_syllables",
    "jitter_contours",
    "shift_pitch",
    "split_syllables",
    "stretch_time",
]

# A safety net, not a musical limit: whatever the shifts, F0 stays finite, > 0 and below the
# model's Nyquist frequency.
_F0_LIMITS_HZ = (F0_MIN_HZ / 4, SAMPLE_RATE / 2)
# Syllables are runs of frames within this many dB of a segment's loudest frame.
SYLLABLE_THRESHOLD_DB = 30.0
# Shortest gap that splits two syllables and shortest syllable, in frames (10 ms at 2 ms).
_MIN_GAP = 5
_MIN_LENGTH = 5
# How far past a random point of a long segment to look for a quiet frame to start an excerpt.
_CUT_SEARCH_S = 0.25
# Knots of the envelope-warp curve per second: slow enough to read as a swell, not a tremolo.
_WARP_KNOTS_PER_S = 4.0


class SegmentLike(Protocol):
    """What the jitter needs of a contour-bank segment (``contours.Segment`` satisfies it)."""

    f0_hz: np.ndarray
    loudness_db: np.ndarray
    confidence: np.ndarray
    recording: str


@dataclass(frozen=True)
class JitterConfig:
    """How far a sampled song may stray from the real ones.

    Ranges are ``(min, max)`` and drawn uniformly, once per phrase (one jittered segment).

    Attributes:
        pitch_cents: Largest pitch shift of a phrase in cents; the shift is drawn uniformly from
            ``[-pitch_cents, pitch_cents]`` (100 cents = one semitone). In [0, 1200].
        tempo: Tempo factor range; 2.0 plays the contours twice as fast (half the frames),
            0.8 stretches them by 25 %. Within [0.25, 4].
        vibrato_cents: Depth of added sinusoidal frequency modulation: its peak deviation in
            cents. Within [0, 600].
        vibrato_hz: Rate of that modulation in Hz. Within [0, 100] (the 2 ms frame grid carries
            up to 250 Hz; birds trill at up to ~60 Hz).
        gain_db: Loudness offset of a phrase in dB. Within [-60, 60].
        envelope_warp: Standard deviation (dB) of a smooth random gain curve added to a
            phrase's loudness (knots every 0.25 s, linearly interpolated): phrases swell and
            fade differently each time. >= 0.
        p_drop: Probability of dropping each syllable of a phrase (one always survives).
        p_repeat: Probability of singing each syllable twice.
        p_reorder: Probability of shuffling a phrase's syllable order.
        recombine: Build a song from phrases of any of the species' recordings; False keeps a
            song within one randomly chosen recording.
        gap_seconds: Silence between phrases (and the largest lead-in before the first), s.
            Within [0, 10].
    """

    pitch_cents: float = 100.0
    tempo: tuple[float, float] = (0.9, 1.1)
    vibrato_cents: tuple[float, float] = (0.0, 20.0)
    vibrato_hz: tuple[float, float] = (5.0, 30.0)
    gain_db: tuple[float, float] = (-6.0, 6.0)
    envelope_warp: float = 2.0
    p_drop: float = 0.15
    p_repeat: float = 0.15
    p_reorder: float = 0.3
    recombine: bool = True
    gap_seconds: tuple[float, float] = (0.05, 0.5)

    def __post_init__(self) -> None:
        if not 0 <= self.pitch_cents <= 1200:
            raise ValueError(f"pitch_cents must be in [0, 1200], got {self.pitch_cents}")
        check_range("tempo", self.tempo, 0.25, 4.0)
        check_range("vibrato_cents", self.vibrato_cents, 0.0, 600.0)
        check_range("vibrato_hz", self.vibrato_hz, 0.0, 100.0)
        check_range("gain_db", self.gain_db, -60.0, 60.0)
        check_range("gap_seconds", self.gap_seconds, 0.0, 10.0)
        if not 0 <= self.envelope_warp <= 60:
            raise ValueError(f"envelope_warp must be in [0, 60] dB, got {self.envelope_warp}")
        for name in ("p_drop", "p_repeat", "p_reorder"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(
                    f"{name} must be a probability in [0, 1], got {getattr(self, name)}"
                )

    @classmethod
    def from_segments(cls, segments: Sequence[SegmentLike]) -> JitterConfig:
        """Defaults scaled to a species' own variation, measured on its contour-bank segments.

        Spreads are robust standard deviations (1.4826 × median absolute deviation), so a
        rare song type or a mistracked segment does not widen the range for every song.

        - ``pitch_cents``: the spread (cents) of the segments' median F0 over their
          confidently voiced syllable frames — how much songs of this species differ in pitch
          across phrases, birds and recordings — clipped to [25, 200] cents.
        - ``tempo``: ``(exp(-s), exp(s))`` with ``s`` the spread of the log of each segment's
          median syllable duration (how much tempo differs between songs), clipped to
          [0.05, 0.2].
        - ``gain_db``: ± the spread of the segments' peak loudness, clipped to [3, 10] dB.

        With fewer than two segments that have syllables, the class defaults are kept.
        """
        if len(segments) == 0:
            raise ValueError("from_segments needs at least one segment")
        medians, durations, peaks = [], [], []
        for segment in segments:
            f0 = np.asarray(segment.f0_hz, np.float64)
            loud = np.asarray(segment.loudness_db)
            starts, ends = _syllable_bounds(loud, SYLLABLE_THRESHOLD_DB, _MIN_GAP, _MIN_LENGTH)
            if starts.size == 0:
                continue
            # The tracker reports a (confident-looking) guess in the gaps too: only syllable
            # frames say what pitch the bird sang.
            edges = np.zeros(f0.shape[0] + 1, np.int64)
            edges[starts], edges[ends] = 1, -1
            sung = np.cumsum(edges[:-1]) > 0
            voiced = sung & (np.asarray(segment.confidence) >= VOICED_THRESHOLD)
            medians.append(np.median(f0[voiced] if voiced.sum() >= 3 else f0[sung]))
            durations.append(np.median(ends - starts))
            peaks.append(float(loud.max()))
        defaults = cls()
        pitch, tempo, gain = defaults.pitch_cents, defaults.tempo, defaults.gain_db
        if len(medians) > 1:
            pitch = float(np.clip(_robust_std(1200.0 * np.log2(medians)), 25.0, 200.0))
            spread = float(np.clip(_robust_std(np.log(durations)), 0.05, 0.2))
            tempo = (float(np.exp(-spread)), float(np.exp(spread)))
            spread = float(np.clip(_robust_std(peaks), 3.0, 10.0))
            gain = (-spread, spread)
        return cls(pitch_cents=pitch, tempo=tempo, gain_db=gain)


def _robust_std(values: Sequence[float]) -> float:
    """1.4826 × the median absolute deviation: the standard deviation for normal data,
    unmoved by a few outliers."""
    values = np.asarray(values, np.float64)
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _syllable_bounds(
    loudness_db: np.ndarray, threshold_db: float, min_gap: int, min_length: int
) -> tuple[np.ndarray, np.ndarray]:
    if threshold_db < 0 or min_gap < 1 or min_length < 1:
        raise ValueError(
            f"need threshold_db >= 0, min_gap >= 1, min_length >= 1; "
            f"got {threshold_db}, {min_gap}, {min_length}"
        )
    if loudness_db.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    peak = float(loudness_db.max())
    # 10th percentile (np.partition: a tenth of np.percentile's cost on a phrase).
    background = float(np.partition(loudness_db, loudness_db.size // 10)[loudness_db.size // 10])
    level = max(peak - threshold_db, (peak + background) / 2)
    edges = np.diff((loudness_db >= level).astype(np.int8), prepend=0, append=0)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    # Keep a boundary only where the gap before the next syllable is long enough.
    split = starts[1:] - ends[:-1] >= min_gap
    starts = np.concatenate([starts[:1], starts[1:][split]])
    ends = np.concatenate([ends[:-1][split], ends[-1:]])
    long_enough = ends - starts >= min_length
    return starts[long_enough], ends[long_enough]


def split_syllables(
    loudness_db: np.ndarray,
    threshold_db: float = SYLLABLE_THRESHOLD_DB,
    min_gap: int = _MIN_GAP,
    min_length: int = _MIN_LENGTH,
) -> list[tuple[int, int]]:
    """Syllables of a segment ``[frames]`` → ``[(start, end), ...]`` (end exclusive).

    A syllable frame is within ``threshold_db`` of the segment's loudest frame and above the
    midpoint (in dB) between that peak and the segment's background (its 10th-percentile
    loudness): in noisy recordings the background itself sits within ``threshold_db`` of the
    peak. Dips shorter than ``min_gap`` frames (amplitude flicker inside a note) do not split
    a syllable; runs shorter than ``min_length`` frames (clicks, noise) are not syllables and
    count as gap. Defaults: 5 frames, 10 ms on the 2 ms grid.
    """
    starts, ends = _syllable_bounds(np.asarray(loudness_db), threshold_db, min_gap, min_length)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def edit_syllables(
    f0_hz: np.ndarray,
    loudness_db: np.ndarray,
    confidence: np.ndarray,
    config: JitterConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop, repeat and reorder a phrase's syllables ``[frames]`` ×3 → ``[new_frames]`` ×3.

    Each syllable travels with the gap that follows it, so the rhythm between syllables is
    the species' own; the lead-in before the first syllable stays in front. Frames are copied,
    never altered: the result is a rearrangement of the input's frames.
    """
    n = f0_hz.shape[0]
    starts, _ = _syllable_bounds(
        np.asarray(loudness_db), SYLLABLE_THRESHOLD_DB, _MIN_GAP, _MIN_LENGTH
    )
    if starts.size < 2:
        return f0_hz, loudness_db, confidence
    ends = np.append(starts[1:], n)  # a syllable plus its following gap
    k = starts.shape[0]
    kept = np.flatnonzero(rng.random(k) >= config.p_drop)
    if kept.size == 0:
        kept = rng.integers(k, size=1)
    order = np.repeat(kept, np.where(rng.random(kept.size) < config.p_repeat, 2, 1))
    if rng.random() < config.p_reorder:
        order = rng.permutation(order)
    pieces_start = np.concatenate([[0], starts[order]])
    pieces_len = np.concatenate([[starts[0]], (ends - starts)[order]])
    # Frame indices of the concatenated pieces without a Python loop: each output frame is its
    # piece's start plus its offset within the piece.
    offsets = np.cumsum(pieces_len) - pieces_len
    index = np.repeat(pieces_start - offsets, pieces_len) + np.arange(pieces_len.sum())
    return f0_hz[index], loudness_db[index], confidence[index]


def stretch_time(contour: np.ndarray, tempo: float) -> np.ndarray:
    """Play ``contour [frames]`` ``tempo`` times as fast → ``[max(1, round(frames / tempo))]``.

    Linear interpolation between frame centres (interpolate log-F0, not Hz, for pitch).
    """
    positions = _stretch_positions(contour.shape[0], tempo)
    if positions is None:
        return contour
    return np.interp(positions, np.arange(contour.shape[0]), contour).astype(contour.dtype)


def _stretch_positions(n: int, tempo: float) -> np.ndarray | None:
    """Where each output frame of :func:`stretch_time` samples the input (None: unchanged)."""
    if tempo <= 0:
        raise ValueError(f"tempo must be > 0, got {tempo}")
    length = max(1, int(round(n / tempo)))
    if length == n:
        return None
    # Frame centres map onto frame centres, so the duration scales by exactly n / length.
    return np.clip((np.arange(length) + 0.5) * (n / length) - 0.5, 0.0, n - 1)


def shift_pitch(f0_hz: np.ndarray, cents: float | np.ndarray) -> np.ndarray:
    """``f0_hz × 2^(cents / 1200)`` (``cents`` scalar or per frame), kept in a safe Hz range."""
    shifted = np.asarray(f0_hz, np.float64) * np.exp2(np.asarray(cents, np.float64) / 1200.0)
    return np.clip(shifted, *_F0_LIMITS_HZ).astype(np.float32)


def jitter_contours(
    f0_hz: np.ndarray,
    loudness_db: np.ndarray,
    confidence: np.ndarray,
    config: JitterConfig,
    rng: np.random.Generator,
    frame_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tempo, pitch, vibrato, gain and envelope jitter of one phrase ``[frames]`` ×3.

    Returns ``(f0, loudness, confidence)``, each ``[max(1, round(frames / tempo))]`` float32.
    Silent frames (at the loudness floor) stay silent and have zero confidence; otherwise
    confidence is only time-stretched.
    ``frame_rate`` is the control rate in Hz (500 for the 2 ms grid).
    """
    n = f0_hz.shape[0]
    if n == 0 or loudness_db.shape[0] != n or confidence.shape[0] != n:
        raise ValueError(
            f"contours must be non-empty and equally long, got {n}, "
            f"{loudness_db.shape[0]}, {confidence.shape[0]}"
        )
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
    # Pitch is interpolated in log frequency: a glide between two notes stays a glide in cents.
    log_f0 = np.log2(np.asarray(f0_hz, np.float64))
    loud = np.asarray(loudness_db, np.float32)
    conf = np.asarray(confidence, np.float32)
    positions = _stretch_positions(n, rng.uniform(*config.tempo))
    if positions is not None:
        frames = np.arange(n)
        log_f0 = np.interp(positions, frames, log_f0)
        loud = np.interp(positions, frames, loud)
        conf = np.interp(positions, frames, conf)
    length = log_f0.shape[0]

    t = np.arange(length) / frame_rate
    depth = rng.uniform(*config.vibrato_cents)
    rate = rng.uniform(*config.vibrato_hz)
    cents = rng.uniform(-config.pitch_cents, config.pitch_cents) + depth * np.sin(
        2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)
    )
    f0 = np.clip(np.exp2(log_f0 + cents / 1200.0), *_F0_LIMITS_HZ).astype(np.float32)

    knots = int(length / frame_rate * _WARP_KNOTS_PER_S) + 2
    warp = np.interp(
        np.linspace(0, knots - 1, length),
        np.arange(knots),
        rng.normal(0, config.envelope_warp, knots),
    )
    gain = rng.uniform(*config.gain_db) + warp
    silent = loud <= LOUDNESS_FLOOR_DB
    loud = np.where(silent, LOUDNESS_FLOOR_DB, np.maximum(loud + gain, LOUDNESS_FLOOR_DB))
    # Frames the gain pushed to the floor are silence now: nothing there to be voiced.
    conf = np.where(loud <= LOUDNESS_FLOOR_DB, 0.0, conf)
    return f0, loud.astype(np.float32), conf.astype(np.float32)


def compose_song(
    segments: Sequence[SegmentLike],
    n_frames: int,
    config: JitterConfig,
    rng: np.random.Generator,
    frame_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A new song ``(f0, loudness, confidence)``, each ``[n_frames]`` float32, from real segments.

    Phrases — randomly chosen segments (from any recording when ``config.recombine``, else all
    from one random recording; an excerpt starting at a quiet frame when a segment is longer
    than the room left), syllable-edited and jittered — are laid end to end with silent
    gaps drawn from ``config.gap_seconds``, after a random lead-in of up to the longest gap so
    songs do not all start at frame 0, until ``n_frames`` are filled (the last phrase is cut).
    Silent frames have the loudness floor, zero confidence and an F0 interpolated (in log
    frequency) between the neighbouring phrases, so F0 stays finite and > 0 everywhere.
    """
    if len(segments) == 0:
        raise ValueError("compose_song needs at least one segment")
    if n_frames < 1 or frame_rate <= 0:
        raise ValueError(f"need n_frames >= 1 and frame_rate > 0, got {n_frames}, {frame_rate}")
    pool = list(segments)
    if not config.recombine:
        recording = pool[rng.integers(len(pool))].recording
        pool = [s for s in pool if s.recording == recording]
    log_f0 = np.full(n_frames, np.nan)
    loud = np.full(n_frames, LOUDNESS_FLOOR_DB, np.float32)
    conf = np.zeros(n_frames, np.float32)
    position = int(rng.integers(0, int(config.gap_seconds[1] * frame_rate) + 1))
    search = max(1, int(_CUT_SEARCH_S * frame_rate))
    while position < n_frames:
        segment = pool[rng.integers(len(pool))]
        contours = [
            np.asarray(segment.f0_hz),
            np.asarray(segment.loudness_db),
            np.asarray(segment.confidence),
        ]
        # Only what can still fit is edited and jittered (this keeps a 3 s song well under a
        # millisecond). A longer segment gives an excerpt that starts at the quietest frame
        # near a random point, so long recordings do not always open the song the same way.
        room = int(np.ceil((n_frames - position) * config.tempo[1])) + 1
        if contours[0].shape[0] > room:
            begin = int(rng.integers(contours[0].shape[0] - room + 1))
            begin += int(np.argmin(contours[1][begin : begin + search]))
            contours = [c[begin : begin + room] for c in contours]
        phrase = edit_syllables(*contours, config, rng)
        p_f0, p_loud, p_conf = jitter_contours(*phrase, config, rng, frame_rate)
        end = min(n_frames, position + p_f0.shape[0])
        log_f0[position:end] = np.log2(p_f0[: end - position])
        loud[position:end] = p_loud[: end - position]
        conf[position:end] = p_conf[: end - position]
        position = end + int(rng.uniform(*config.gap_seconds) * frame_rate)
    known = np.flatnonzero(~np.isnan(log_f0))
    if known.size == 0:  # the lead-in covered the whole (very short) clip
        f0 = np.full(n_frames, np.median(np.asarray(pool[0].f0_hz)), np.float32)
    else:
        f0 = np.exp2(np.interp(np.arange(n_frames), known, log_f0[known])).astype(np.float32)
    return f0, loud, conf
