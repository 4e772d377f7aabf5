"""Jittered contours: new, plausible songs from a species' real F0/loudness stretches.

Sampling starts from real segments (see `features.contours`) and varies them: pitch
shift, tempo (a time-stretch of the contours, not of audio), vibrato, loudness gain and envelope
warp, syllable edits (reorder, drop, repeat) and recombination of phrases from different
recordings — or, with ``JitterConfig(syntax="markov")``, new phrases sung in the species' own
syllable order (:mod:`~ddsp_augment.sampling.syllables`). :meth:`JitterConfig.from_segments`
scales the ranges to the species' own measured variation, so a sample stays plausible for that
species.

Contours follow the project conventions: F0 in Hz, finite and > 0 in every frame; loudness in dB
with floor :data:`~ddsp_augment.constants.LOUDNESS_FLOOR_DB`; confidence in [0, 1]; all
``[frames]`` float32. Everything is vectorised numpy (no per-frame Python loops) and all
randomness comes from the ``rng`` argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from ..checks import check_range
from ..constants import F0_MIN_HZ, LOUDNESS_FLOOR_DB, SAMPLE_RATE, VOICED_THRESHOLD
from .syllables import (
    _MIN_GAP,
    _MIN_LENGTH,
    SYLLABLE_THRESHOLD_DB,
    SegmentLike,
    SyntaxModel,
    _syllable_bounds,
    learn_syntax,
    split_syllables,
)

__all__ = [
    "ComposedSong",
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
# How far past a random point of a long segment to look for a quiet frame to start an excerpt.
_CUT_SEARCH_S = 0.25
# Knots of the envelope-warp curve per second: slow enough to read as a swell, not a tremolo.
_WARP_KNOTS_PER_S = 4.0


#: How :func:`compose_song` orders syllables: ``"markov"`` walks the species' learned syllable
#: syntax (:func:`~ddsp_augment.sampling.syllables.learn_syntax`), ``"shuffle"`` lays random real
#: stretches end to end and edits their syllables (drop, repeat, reorder).
Syntax = Literal["markov", "shuffle"]
SYNTAXES: tuple[Syntax, ...] = ("markov", "shuffle")
#: What a tempo change stretches: ``"gaps"`` only the silences between syllables (a bird sings
#: its notes at their own length and varies the pauses), ``"phrase"`` every frame alike.
TempoScope = Literal["gaps", "phrase"]
TEMPO_SCOPES: tuple[TempoScope, ...] = ("gaps", "phrase")


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
        p_drop: Probability of dropping each syllable of a phrase (one always survives);
            ``syntax="shuffle"`` only (the Markov chain decides what is sung).
        p_repeat: Probability of singing each syllable twice (``"shuffle"`` only).
        p_reorder: Probability of shuffling a phrase's syllable order (``"shuffle"`` only).
        recombine: Build a song from phrases of any of the species' recordings; False keeps a
            song within one randomly chosen recording.
        gap_seconds: Silence between phrases (and the largest lead-in before the first), s.
            Within [0, 10]. With ``syntax="markov"`` gaps between syllables, and between
            phrases where the recordings show any, are the recorded ones.
        syntax: ``"markov"``: phrases follow the species' learned syllable order (types and
            transitions between them, with recorded gaps); ``"shuffle"``: random real
            stretches laid end to end, syllable-edited (the behaviour before syntax models).
        tempo_scope: What ``tempo`` stretches: ``"gaps"``, the silences between a phrase's
            syllables only (syllables keep their recorded length); ``"phrase"``, the whole
            phrase alike.
    """

    pitch_cents: float = 100.0
    tempo: tuple[float, float] = (0.9, 1.1)
    vibrato_cents: tuple[float, float] = (0.0, 20.0)
    vibrato_hz: tuple[float, float] = (5.0, 30.0)
    gain_db: tuple[float, float] = (-6.0, 6.0)
    envelope_warp: float = 2.0
    p_drop: float = 0.15
    p_repeat: float = 0.15
    # No reordering and tempo on the gaps by default (issue 11): a phrase keeps its syllable
    # order and its notes their length, as a bird sings them. On a validation split (20
    # species, 2 training recordings each) BirdNET recognised the songs more often (top-1
    # +0.05 [+0.02, +0.09], confidence +0.04 [+0.01, +0.07]) and the CNN benchmark's
    # minority recall stayed even (+0.004 [-0.040, +0.049] over 12 validation splits).
    p_reorder: float = 0.0
    recombine: bool = True
    gap_seconds: tuple[float, float] = (0.05, 0.5)
    # "shuffle" stays the default: on held-out recordists it is nearer real songs' syllable
    # transitions than "markov" (benchmarks/syntax.py, README), though "markov" copies the
    # training recordings' syntax more faithfully.
    syntax: Syntax = "shuffle"
    tempo_scope: TempoScope = "gaps"

    def __post_init__(self) -> None:
        if self.syntax not in SYNTAXES:
            raise ValueError(f"syntax must be one of {SYNTAXES}, got {self.syntax!r}")
        if self.tempo_scope not in TEMPO_SCOPES:
            raise ValueError(f"tempo_scope must be one of {TEMPO_SCOPES}, got {self.tempo_scope!r}")
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
            sung = _sung_mask(f0.shape[0], starts, ends)
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
    index = _edited_frames(np.asarray(loudness_db), config, rng)
    if index is None:
        return f0_hz, loudness_db, confidence
    return f0_hz[index], loudness_db[index], confidence[index]


def _edited_frames(
    loudness_db: np.ndarray, config: JitterConfig, rng: np.random.Generator
) -> np.ndarray | None:
    """The input frame each output frame of :func:`edit_syllables` copies (None: unchanged)."""
    n = loudness_db.shape[0]
    starts, _ = _syllable_bounds(loudness_db, SYLLABLE_THRESHOLD_DB, _MIN_GAP, _MIN_LENGTH)
    if starts.size < 2:
        return None
    ends = np.append(starts[1:], n)  # a syllable plus its following gap
    k = starts.shape[0]
    kept = (rng.random(k) >= config.p_drop).nonzero()[0]
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
    return np.repeat(pieces_start - offsets, pieces_len) + np.arange(pieces_len.sum())


def stretch_time(contour: np.ndarray, tempo: float) -> np.ndarray:
    """Play ``contour [frames]`` ``tempo`` times as fast → ``[max(1, round(frames / tempo))]``.

    Linear interpolation between frame centres (interpolate log-F0, not Hz, for pitch).
    """
    positions = _stretch_positions(contour.shape[0], tempo)
    if positions is None:
        return contour
    return np.interp(positions, np.arange(contour.shape[0]), contour).astype(contour.dtype)


def _stretch_positions(n: int, tempo: float, sung: np.ndarray | None = None) -> np.ndarray | None:
    """Where each output frame of :func:`stretch_time` samples the input (None: unchanged).

    With ``sung [n]`` (bool), only the frames not sung are stretched: sung frames keep one
    output frame each, the others last ``1 / tempo``.
    """
    if tempo <= 0:
        raise ValueError(f"tempo must be > 0, got {tempo}")
    if sung is None:
        length = max(1, int(round(n / tempo)))
        if length == n:
            return None
        # Frame centres map onto frame centres, so the duration scales by exactly n / length.
        return ((np.arange(length) + 0.5) * (n / length) - 0.5).clip(0.0, n - 1)
    # Input frame i spans [edges[i], edges[i + 1]) of the output; output frame centres are
    # mapped back through that piecewise-linear time line.
    edges = np.concatenate([[0.0], np.cumsum(np.where(sung, 1.0, 1.0 / tempo))])
    length = max(1, int(round(edges[-1])))
    if length == n:
        return None
    centres = (np.arange(length) + 0.5) * (edges[-1] / length)
    return (np.interp(centres, edges, np.arange(n + 1.0)) - 0.5).clip(0.0, n - 1)


def _sung_mask(n: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``[n]`` bool: the frames inside the syllables ``[starts, ends)`` (disjoint, in order)."""
    edges = np.zeros(n + 1, np.int64)
    edges[starts], edges[ends] = 1, -1
    return np.cumsum(edges[:-1]) > 0


def _sung_frames(loudness_db: np.ndarray) -> np.ndarray:
    """``[frames]`` bool: the frames inside a syllable of a phrase (see
    :func:`~ddsp_augment.sampling.syllables.split_syllables`)."""
    starts, ends = _syllable_bounds(loudness_db, SYLLABLE_THRESHOLD_DB, _MIN_GAP, _MIN_LENGTH)
    return _sung_mask(loudness_db.shape[0], starts, ends)


def shift_pitch(f0_hz: np.ndarray, cents: float | np.ndarray) -> np.ndarray:
    """``f0_hz × 2^(cents / 1200)`` (``cents`` scalar or per frame), kept in a safe Hz range."""
    shifted = np.asarray(f0_hz, np.float64) * np.exp2(np.asarray(cents, np.float64) / 1200.0)
    return np.clip(shifted, *_F0_LIMITS_HZ).astype(np.float32)


def _linspace_from_zero(stop: int, length: int) -> np.ndarray:
    """``np.linspace(0, stop, length)`` bit for bit (its own steps: the ramp times
    ``stop / (length - 1)``, the last value exactly ``stop``) at a third of its cost: it runs
    for every phrase sampled."""
    ramp = np.arange(length, dtype=np.float64)
    if length > 1:
        ramp *= stop / (length - 1)
        ramp[-1] = stop
    return ramp


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
    f0, loud, conf, _ = _jitter_phrase(
        f0_hz, loudness_db, confidence, None, config, rng, frame_rate
    )
    return f0, loud, conf


def _jitter_phrase(
    f0_hz: np.ndarray,
    loudness_db: np.ndarray,
    confidence: np.ndarray,
    source: np.ndarray | None,
    config: JitterConfig,
    rng: np.random.Generator,
    frame_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`jitter_contours`, with ``source [frames]`` (where each frame came from, see
    :class:`ComposedSong`) time-stretched along (None stays None)."""
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
    sung = _sung_frames(loud) if config.tempo_scope == "gaps" else None
    positions = _stretch_positions(n, rng.uniform(*config.tempo), sung)
    if positions is not None:
        frames = np.arange(n)
        log_f0 = np.interp(positions, frames, log_f0)
        loud = np.interp(positions, frames, loud)
        conf = np.interp(positions, frames, conf)
        if source is not None:
            source = np.interp(positions, frames, source)
    length = log_f0.shape[0]

    t = np.arange(length) / frame_rate
    depth = rng.uniform(*config.vibrato_cents)
    rate = rng.uniform(*config.vibrato_hz)
    cents = rng.uniform(-config.pitch_cents, config.pitch_cents) + depth * np.sin(
        2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)
    )
    f0 = np.exp2(log_f0 + cents / 1200.0).clip(*_F0_LIMITS_HZ).astype(np.float32)

    knots = int(length / frame_rate * _WARP_KNOTS_PER_S) + 2
    warp = np.interp(
        _linspace_from_zero(knots - 1, length),
        np.arange(knots),
        rng.normal(0, config.envelope_warp, knots),
    )
    gain = rng.uniform(*config.gain_db) + warp
    silent = loud <= LOUDNESS_FLOOR_DB
    loud = np.where(silent, LOUDNESS_FLOOR_DB, np.maximum(loud + gain, LOUDNESS_FLOOR_DB))
    # Frames the gain pushed to the floor are silence now: nothing there to be voiced.
    conf = np.where(loud <= LOUDNESS_FLOOR_DB, 0.0, conf)
    return f0, loud.astype(np.float32), conf.astype(np.float32), source


class ComposedSong(NamedTuple):
    """A song from :func:`compose_song`, each field ``[n_frames]``.

    ``source`` says where each frame came from: its position (fractional after a tempo
    change) in the composer's segments laid end to end (segment ``i``'s frame ``j`` is
    ``sum(len(segments[:i])) + j``), NaN in the silence between phrases. With it, anything
    measured per frame of the real recordings (the residual spectra of
    :mod:`~ddsp_augment.features.residual`) can follow the new song.
    """

    f0_hz: np.ndarray  # float32
    loudness_db: np.ndarray  # float32
    confidence: np.ndarray  # float32
    source: np.ndarray  # float64


def compose_song(
    segments: Sequence[SegmentLike],
    n_frames: int,
    config: JitterConfig,
    rng: np.random.Generator,
    frame_rate: float,
    syntax: SyntaxModel | None = None,
) -> ComposedSong:
    """A new song (:class:`ComposedSong`, contours ``[n_frames]`` float32) from real segments.

    Phrases are laid end to end with silent gaps drawn from ``config.gap_seconds`` (in
    ``"markov"``, from the species' recorded pauses between phrases when it has any), after a
    random lead-in of up to the longest gap (at most half the clip) so songs do not all start
    at frame 0, until ``n_frames`` are filled (the last phrase is cut); each phrase is jittered
    as a whole (:func:`jitter_contours`). How a phrase is built depends on ``config.syntax``:

    - ``"markov"``: a walk of the species' syllable chain ``syntax`` (learned from ``segments``
      by :func:`~ddsp_augment.sampling.syllables.learn_syntax` when None: pass the model to
      sample many songs without relearning it). From the phrase-start state each next syllable
      type is drawn from the learned transitions until the phrase-end state; each type is sung
      as one of its real syllables, followed by a gap drawn from the recorded gaps between
      syllables. New songs, in the species' order.
    - ``"shuffle"``: a randomly chosen segment (an excerpt starting at a quiet frame when it is
      longer than the room left), syllable-edited (drop, repeat, reorder).

    Without ``config.recombine`` all material comes from one randomly chosen recording (in
    ``"markov"``, where that recording has a syllable of the type drawn). Silent frames have the
    loudness floor, zero confidence and an F0 interpolated (in log frequency) between their
    neighbours, so F0 stays finite and > 0 everywhere.
    """
    if len(segments) == 0:
        raise ValueError("compose_song needs at least one segment")
    if n_frames < 1 or frame_rate <= 0:
        raise ValueError(f"need n_frames >= 1 and frame_rate > 0, got {n_frames}, {frame_rate}")
    offsets = np.cumsum([0] + [len(s.f0_hz) for s in segments])
    pool = np.arange(len(segments))
    recording = None
    if not config.recombine:
        recording = segments[rng.integers(len(pool))].recording
        pool = np.array([i for i in pool if segments[i].recording == recording])
    owners = np.array([s.recording for s in segments])
    if config.syntax == "markov":
        syntax = syntax or learn_syntax(segments, frame_rate)
        cumulative = _transition_table(syntax, owners, recording)
    else:
        syntax = None  # the shuffle draws nothing from a syntax model
    log_f0 = np.full(n_frames, np.nan)
    loud = np.full(n_frames, LOUDNESS_FLOOR_DB, np.float32)
    conf = np.zeros(n_frames, np.float32)
    source = np.full(n_frames, np.nan)
    # Half the clip at most: a short clip (BatchDDSPSynth mixes 0.5 s ones) must still hold a
    # song; a silent one would be mixed in at its SNR as an amplified hum, or not at all.
    lead_in = min(int(config.gap_seconds[1] * frame_rate), n_frames // 2)
    position = int(rng.integers(0, lead_in + 1))
    search = max(1, int(_CUT_SEARCH_S * frame_rate))
    while position < n_frames:
        # Only what can still fit is built and jittered (this keeps a 3 s song well under a
        # millisecond).
        room = int(np.ceil((n_frames - position) * config.tempo[1])) + 1
        if syntax is not None:
            phrase = _markov_phrase(
                segments, offsets, owners, syntax, cumulative, room, recording, rng
            )
        else:
            phrase = _shuffled_phrase(segments, offsets, pool, room, search, config, rng)
        p_f0, p_loud, p_conf, p_source = _jitter_phrase(*phrase, config, rng, frame_rate)
        end = min(n_frames, position + p_f0.shape[0])
        log_f0[position:end] = np.log2(p_f0[: end - position])
        loud[position:end] = p_loud[: end - position]
        conf[position:end] = p_conf[: end - position]
        source[position:end] = p_source[: end - position]
        if syntax is not None and syntax.phrase_gaps.size:
            position = end + int(syntax.phrase_gaps[rng.integers(syntax.phrase_gaps.size)])
        else:
            position = end + int(rng.uniform(*config.gap_seconds) * frame_rate)
    known = np.flatnonzero(~np.isnan(log_f0))
    if known.size == 0:  # no phrase frame written (only an empty phrase would leave none)
        f0 = np.full(n_frames, np.median(np.asarray(segments[pool[0]].f0_hz)), np.float32)
    else:
        f0 = np.exp2(np.interp(np.arange(n_frames), known, log_f0[known])).astype(np.float32)
    return ComposedSong(f0, loud, conf, source)


#: A phrase before its jitter: ``(f0, loudness, confidence, source)``, each ``[frames]``.
_Phrase = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _shuffled_phrase(
    segments: Sequence[SegmentLike],
    offsets: np.ndarray,
    pool: np.ndarray,
    room: int,
    search: int,
    config: JitterConfig,
    rng: np.random.Generator,
) -> _Phrase:
    """A random segment of ``pool`` (indices into ``segments``), syllable-edited:
    ``syntax="shuffle"``'s phrase."""
    index = int(pool[rng.integers(len(pool))])
    segment = segments[index]
    loud = np.asarray(segment.loudness_db)
    frames = np.arange(loud.shape[0])
    # A longer segment than the room left gives an excerpt that starts at the quietest frame
    # near a random point, so long recordings do not always open the song the same way.
    if frames.shape[0] > room:
        begin = int(rng.integers(frames.shape[0] - room + 1))
        begin += int(np.argmin(loud[begin : begin + search]))
        frames = frames[begin : begin + room]
    edited = _edited_frames(loud[frames], config, rng)
    if edited is not None:
        frames = frames[edited]
    return (
        np.asarray(segment.f0_hz)[frames],
        loud[frames],
        np.asarray(segment.confidence)[frames],
        (offsets[index] + frames).astype(np.float64),
    )


def _transition_table(syntax: SyntaxModel, owners: np.ndarray, recording: str | None) -> np.ndarray:
    """Cumulative transition rows ``[k + 1, k + 1]`` for a walk; with a ``recording``, only
    into types that recording sang (a row left with no such type keeps all its types)."""
    transitions = syntax.transitions
    if recording is not None:
        sung = [(owners[rows[:, 0]] == recording).any() for rows in syntax.syllables]
        kept = transitions * np.append(sung, True)[None]
        total = kept.sum(1, keepdims=True)
        transitions = np.where(total > 0, kept / np.where(total > 0, total, 1.0), transitions)
    return np.cumsum(transitions, axis=1)


def _markov_phrase(
    segments: Sequence[SegmentLike],
    offsets: np.ndarray,
    owners: np.ndarray,
    syntax: SyntaxModel,
    cumulative: np.ndarray,
    room: int,
    recording: str | None,
    rng: np.random.Generator,
) -> _Phrase:
    """One walk of the chain ``cumulative`` (:func:`_transition_table`) from phrase start to
    phrase end (or ``room`` frames), each type sung as a real syllable of ``segments`` (of
    ``recording`` where it has one)."""
    boundary = syntax.n_types
    f0s, louds, confs, sources = [], [], [], []
    state, length, level = boundary, 0, None
    while length < room:
        row = cumulative[state]
        state = min(boundary, int(np.searchsorted(row, rng.random() * row[-1], side="right")))
        if state == boundary:
            break
        rows = syntax.syllables[state]
        if recording is not None and (owners[rows[:, 0]] == recording).any():
            rows = rows[owners[rows[:, 0]] == recording]
        index, start, end = (int(v) for v in rows[rng.integers(rows.shape[0])])
        gap = int(syntax.gaps[rng.integers(syntax.gaps.size)]) if syntax.gaps.size else 0
        segment = segments[index]
        # Each syllable keeps its level relative to its own phrase's peak, on the level of the
        # phrase the first syllable came from: syllables from recordings made at different
        # distances and gains do not jump in loudness within one phrase.
        peak = float(np.max(segment.loudness_db))
        level = peak if level is None else level
        loud = np.maximum(
            np.asarray(segment.loudness_db[start:end]) + (level - peak), LOUDNESS_FLOOR_DB
        )
        f0s += [np.log2(np.asarray(segment.f0_hz[start:end], np.float64)), np.full(gap, np.nan)]
        louds += [loud, np.full(gap, LOUDNESS_FLOOR_DB)]
        confs += [np.asarray(segment.confidence[start:end]), np.zeros(gap)]
        sources += [offsets[index] + np.arange(start, end, dtype=np.float64), np.full(gap, np.nan)]
        length += end - start + gap
    # The gap after the last syllable is the silence between phrases, drawn by the caller.
    log_f0 = np.concatenate(f0s[:-1])
    known = np.flatnonzero(~np.isnan(log_f0))
    log_f0 = np.interp(np.arange(log_f0.shape[0]), known, log_f0[known])
    return (
        np.exp2(log_f0).astype(np.float32),
        np.concatenate(louds[:-1]).astype(np.float32),
        np.concatenate(confs[:-1]).astype(np.float32),
        np.concatenate(sources[:-1]),
    )
