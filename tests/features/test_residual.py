import numpy as np
import pytest
import torch

from ddsp_augment.dsp.functional import griffin_lim_noise
from ddsp_augment.dsp.numba_kernels import filtered_noise, pool_frames
from ddsp_augment.dsp.spectral import magnitude_spectrogram
from ddsp_augment.features.residual import (
    RESIDUAL_BANDS,
    RESIDUAL_FLOOR_DB,
    RESIDUAL_PHASE_ITERS,
    RESIDUAL_POOL,
    measure_residual,
    song_residual,
)
from ddsp_augment.model.decoder import DecoderConfig
from ddsp_augment.model.species_model import SpeciesModel

RATE, HOP = 32000, 64


def _griffin_lim(magnitudes: np.ndarray, noise: np.ndarray, hop: int) -> np.ndarray:
    return griffin_lim_noise(
        torch.from_numpy(magnitudes)[None], torch.from_numpy(noise)[None], hop, RESIDUAL_PHASE_ITERS
    )[0].numpy()


def _render(magnitudes: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The residual rendered as generation renders it: pooled, at RESIDUAL_POOL hops, with a
    Griffin-Lim phase."""
    return _griffin_lim(pool_frames(magnitudes, RESIDUAL_POOL), noise, HOP * RESIDUAL_POOL)


def _band_db(residual_db: np.ndarray, low_hz: float, high_hz: float) -> float:
    """Mean power (dB) of the residual's bands between two frequencies, over the middle frames."""
    hz = np.arange(residual_db.shape[1]) * RATE / (2 * (residual_db.shape[1] - 1))
    rows = residual_db[150:-150, (hz >= low_hz) & (hz <= high_hz)]
    return float(10 * np.log10(np.mean(10 ** (rows / 10))))


def test_residual_is_the_noise_the_harmonics_leave():
    # A 2 kHz tone (the "harmonic part") over a call of band noise at 5-6 kHz: the residual
    # holds the band at its level and nothing at the tone (frames 150-350: the call).
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 2000 * t)).astype(np.float32)
    spectrum = np.fft.rfft(rng.standard_normal(RATE))
    hz = np.fft.rfftfreq(RATE, 1 / RATE)
    spectrum[(hz < 5000) | (hz > 6000)] = 0
    band = np.fft.irfft(spectrum, RATE).astype(np.float32)
    band *= 0.05 / band.std()
    # A call, not a background: half the clip (a steady sound is part of the noise floor).
    band[: RATE // 4] = band[-RATE // 4 :] = tone[: RATE // 4] = tone[-RATE // 4 :] = 0.0
    residual = measure_residual(tone + band, tone, HOP)
    assert residual.shape == (RATE // HOP + 1, RESIDUAL_BANDS) and residual.dtype == np.float32
    in_band = _band_db(residual, 5100, 5900)
    assert _band_db(residual, 1900, 2100) < in_band - 30  # the tone is the harmonic part's
    assert _band_db(residual, 9000, 15000) < in_band - 30
    # Rendered as filtered noise, the residual gives the band back at its level (±1.5 dB).
    gains = 10 ** (residual / 20)
    noise = _render(gains, rng.standard_normal(RATE).astype(np.float32))
    kept = magnitude_spectrogram(noise, 512, HOP)[:, 150:-150]
    original = magnitude_spectrogram(band, 512, HOP)[:, 150:-150]
    rows = slice(int(5100 / 62.5), int(5900 / 62.5))
    level = lambda m: 10 * np.log10(np.mean(m[rows] ** 2))  # noqa: E731
    assert abs(level(kept) - level(original)) < 1.5
    # Without the harmonic part subtracted, the tone stays in the residual.
    assert _band_db(measure_residual(tone + band, np.zeros_like(tone), HOP), 1900, 2100) > in_band


def _song_residual(frames: int, rng: np.random.Generator) -> np.ndarray:
    """Residual gains ``[frames, 257]`` like a composed song's: syllables of 40-160 ms, each a
    band of noise (2-10 kHz, 0.3-2 kHz wide) whose level jumps by up to ±6 dB from frame to
    frame and from bin to bin (a measured noise spectrum's scatter), gaps of silence."""
    db = np.full((frames, RESIDUAL_BANDS), RESIDUAL_FLOOR_DB, np.float32)
    hz = np.arange(RESIDUAL_BANDS) * 62.5
    start = 10
    while start < frames - 20:
        stop = min(start + int(rng.integers(20, 80)), frames - 10)
        shape = -20 - 40 * ((hz - rng.uniform(2000, 10000)) / rng.uniform(300, 2000)) ** 2
        scatter = rng.uniform(-6, 6, (stop - start, 1)) + rng.uniform(-6, 6, (stop - start, 257))
        db[start:stop] = np.maximum(shape + scatter, RESIDUAL_FLOOR_DB)
        start = stop + int(rng.integers(10, 40))
    return (10 ** (db / 20)).astype(np.float32)


def test_rendering_keeps_the_residuals_level_per_band_and_per_8ms():
    """Generation renders the residual pooled to 4 ms hops with a Griffin-Lim phase. Its total
    energy is within 0.5 dB of the target (the frames' mean power), per 1 kHz band its
    long-term level within 1.5 dB; and per 1 kHz x 8 ms cell it is the target's within a
    median 1 dB, where white noise filtered every 2 ms (the decoder's way) scatters by more
    than 1.5 dB around it: the phase is consistent with the magnitudes, so the rendering
    keeps them."""
    rng = np.random.default_rng(0)
    frames = 1001  # 2 s
    gains = _song_residual(frames, rng)
    # White noise through gain g reads g² times the window's energy per bin.
    window_energy = np.sum(np.hanning(513)[:-1] ** 2)
    target = window_energy * gains.T**2

    def bands_db(power: np.ndarray) -> np.ndarray:
        """Power [bins, ...] in 16 bands of 1 kHz, dB (silent cells at -300 dB)."""
        return 10 * np.log10(power[:256].reshape(16, 16, *power.shape[1:]).sum(axis=1) + 1e-30)

    def cells_db(power: np.ndarray) -> np.ndarray:
        """... in 8 ms runs of 2 ms frames."""
        runs = frames // 4
        return bands_db(power[:, : runs * 4].reshape(power.shape[0], runs, 4).sum(-1))

    wanted, cells = bands_db(target.mean(1)), cells_db(target)
    loud = cells > cells.max() - 30
    for _ in range(2):  # noise draws
        noise = rng.standard_normal((frames - 1) * HOP).astype(np.float32)
        rendered = magnitude_spectrogram(_render(gains, noise), 512, HOP, power=2.0)[:, :frames]
        direct = magnitude_spectrogram(filtered_noise(gains, noise, HOP), 512, HOP, power=2.0)
        got = bands_db(rendered.mean(1))
        total_db = lambda levels: 10 * np.log10(np.sum(10 ** (levels / 10)))  # noqa: E731
        assert abs(total_db(got) - total_db(wanted)) < 0.5
        sounding = wanted > wanted.max() - 40
        assert np.abs(got - wanted)[sounding].max() < 1.5
        assert np.median(np.abs(cells_db(rendered) - cells)[loud]) < 1.0
        assert np.median(np.abs(cells_db(direct[:, :frames]) - cells)[loud]) > 1.5


def test_residual_of_silence_is_the_floor_and_bad_shapes_are_named():
    silence = np.zeros(8000, np.float32)
    np.testing.assert_array_equal(measure_residual(silence, silence, HOP), RESIDUAL_FLOOR_DB)
    # Shorter than half a window: no background to subtract, the click is kept.
    click = np.zeros(100, np.float32)
    click[50] = 1.0
    assert measure_residual(click, np.zeros_like(click), HOP).max() > -40
    with pytest.raises(ValueError, match="one shape"):
        measure_residual(silence, silence[:-1], HOP)
    with pytest.raises(ValueError, match="n_bands"):
        measure_residual(silence, silence, HOP, n_bands=1)


def _one_frame(residual_db, row, gain_db, ratio):
    """One song frame under ``song_residual``: a run of RESIDUAL_POOL equal frames pools to the
    frame itself."""
    sung = np.ones(RESIDUAL_POOL, bool)
    rows = np.full(RESIDUAL_POOL, row)
    gain, ratio = np.full(RESIDUAL_POOL, gain_db), np.full(RESIDUAL_POOL, ratio)
    out = song_residual(residual_db, sung, rows, gain, ratio)
    assert out.shape == (1, residual_db.shape[1]) and out.dtype == np.float32
    return out[0]


def test_song_residual_moves_the_residual_with_pitch_and_level():
    residual = np.full((3, 257), RESIDUAL_FLOOR_DB, np.float32)
    residual[:, 40] = -20.0  # one band at 2.5 kHz
    same = _one_frame(residual, 0, 0.0, 1.0)
    assert np.argmax(same) == 40 and same[40] == pytest.approx(0.1, rel=1e-5)
    assert _one_frame(residual, 1, 6.0, 1.0)[40] == pytest.approx(0.1 * 10 ** (6 / 20), rel=1e-5)
    assert np.argmax(_one_frame(residual, 2, 0.0, 1.5)) == 60  # 1.5 × the pitch: 3.75 kHz
    # Stretched down, the top of the spectrum is empty rather than a copy of the last band.
    assert _one_frame(np.zeros((1, 257), np.float32), 0, 0.0, 0.5)[200] == pytest.approx(
        10 ** (RESIDUAL_FLOOR_DB / 20)
    )
    # Level changes are limited: a near-silent source frame is not blown up.
    assert _one_frame(residual, 0, 80.0, 1.0)[40] == pytest.approx(10 ** (0 / 20), rel=1e-5)
    with pytest.raises(ValueError, match="gain_db"):
        song_residual(residual, np.ones(3, bool), np.zeros(3, int), np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="rows must index"):
        song_residual(residual, np.ones(1, bool), np.array([3]), np.zeros(1), np.ones(1))


def test_song_residual_pools_sung_frames_with_silence_between():
    """Frames that no bird sings pool as zeros: the same as building the whole song's frames
    and pooling them, without building them."""
    rng = np.random.default_rng(1)
    residual = rng.uniform(-80, -20, (50, 257)).astype(np.float32)
    sung = rng.random(37) < 0.6
    rows = rng.integers(0, 50, int(sung.sum()))
    gain = rng.normal(0, 4, rows.size)
    ratio = rng.uniform(0.8, 1.25, rows.size)
    full = np.zeros((37, 257), np.float32)
    full[sung] = 10 ** ((residual[rows] + np.clip(gain, -60, 20)[:, None]) / 20)  # at ratio 1
    flat = song_residual(residual, sung, rows, gain, np.ones(rows.size))
    np.testing.assert_allclose(flat, pool_frames(full, RESIDUAL_POOL), rtol=1e-5)
    assert flat.shape == (-(-37 // RESIDUAL_POOL), 257)
    assert not song_residual(residual, np.zeros(37, bool), rows[:0], gain[:0], ratio[:0]).any()


def test_residual_of_the_models_own_song_is_the_noise_added_after_its_reverb():
    """A recording made by a model itself, ``reverb(harmonic) + noise`` (how ``noise=
    "recorded"`` renders), with a reverb adding 12 dB to the harmonics (learned ones add
    8-14): measured against the harmonic part as heard (``harmonic_part``, through the
    reverb), the residual is the known noise band's level within 0.5 dB, under -70 dB on the
    partials (75 dB under the two loudest), and exactly the floor for the harmonic output
    alone. Against the dry
    harmonics (the old measure) the partials stayed in the residual within 10 dB."""
    torch.manual_seed(0)
    model = SpeciesModel(DecoderConfig(hidden=16, n_layers=2))
    with torch.no_grad():
        model.reverb.ir.mul_(10.0)
    frames = 501
    n = (frames - 1) * HOP
    f0 = np.full(frames, 2000.0, np.float32)
    loud = np.full(frames, -120.0, np.float32)
    loud[125:375] = -20.0  # a 0.5 s note in 1 s
    conf = np.ones(frames, np.float32)
    magnitudes = np.zeros((-(-frames // RESIDUAL_POOL), RESIDUAL_BANDS), np.float32)
    under_the_note = slice(132 // RESIDUAL_POOL, 368 // RESIDUAL_POOL)
    magnitudes[under_the_note, 96:112] = 10 ** (-50 / 20)  # -50 dB at 6-7 kHz
    noise_hop = HOP * RESIDUAL_POOL
    rng = np.random.default_rng(1)
    song = model.synthesize(f0, loud, conf, n, rng, "numba", magnitudes, noise_hop)
    heard = model.harmonic_part(f0, loud, conf, n)
    dry = model._numpy_parts(f0, loud, conf, n, with_noise=False)[0]
    assert 10 * np.log10(np.sum(heard**2) / np.sum(dry**2)) > 10.0
    # The recorded noise is added after the reverb, untouched by it.
    white = np.random.default_rng(1).standard_normal(n, dtype=np.float32)
    np.testing.assert_allclose(song - heard, _griffin_lim(magnitudes, white, noise_hop), atol=1e-6)
    residual = measure_residual(song, heard, HOP)
    assert abs(_band_db(residual, 6100, 6900) - -50.0) < 0.5
    partials = [31, 32, 33, 63, 64, 65, 127, 128, 129]  # 2, 4 and 8 kHz, 62.5 Hz bins
    heard_db = 10 * np.log10(
        np.mean(magnitude_spectrogram(heard, 512, HOP, power=2.0)[:, 150:-150], axis=1)
        / np.sum(np.hanning(513)[:-1] ** 2)
    )
    level = lambda r: 10 * np.log10(np.mean(10 ** (r[150:-150, partials] / 10), axis=0))  # noqa: E731
    assert np.all(level(residual) < -70)  # the partials: -23 to +7 dB
    assert np.all(level(residual)[[1, 4]] < heard_db[[32, 64]] - 75)
    old = measure_residual(song, dry, HOP)
    assert np.all(level(old)[[1, 4]] > heard_db[[32, 64]] - 10)
    np.testing.assert_array_equal(measure_residual(heard, heard, HOP), RESIDUAL_FLOOR_DB)
