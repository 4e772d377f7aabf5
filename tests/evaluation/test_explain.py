"""`explain`: each panel of a species page draws the data it claims.

Pages are built from the session's tiny models (``small_bank_path``), then the matplotlib Axes
are inspected: line data against the contours and ``history.csv``, images against spectrograms
and decoder outputs recomputed here, markers at the right epochs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
from conftest import BANK_SPECIES, TEST_DATA
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ddsp_augment.cli import main
from ddsp_augment.constants import LOUDNESS_FLOOR_DB
from ddsp_augment.dsp.functional import remove_above_nyquist
from ddsp_augment.evaluation.explain import (
    HISTORY_CURVES,
    NEUTRAL_JITTER,
    NO_RESIDUAL,
    ControlsView,
    draw_page,
    explain_models,
    explain_species,
    noise_view,
    pick_phrase,
    read_history,
    reverb_view,
    shared_spectrograms,
    training_excerpt,
)
from ddsp_augment.features.activity import bird_activity
from ddsp_augment.features.background import noise_floor, render_noise_floor
from ddsp_augment.features.contours import ContourBank, Segment
from ddsp_augment.features.loudness import loudness_db
from ddsp_augment.features.pitch import estimate_f0
from ddsp_augment.features.residual import measure_residual
from ddsp_augment.sampling.bank import SpeciesBank
from ddsp_augment.sampling.generate import real_clips
from ddsp_augment.sampling.jitter import jitter_contours, split_syllables

SPECIES = "Parus_major"
SECONDS = 2.0
SR = 32000
HOP = 64


def _axes(fig: Figure, gid: str) -> Axes:
    found = [ax for ax in fig.axes if ax.get_gid() == gid]
    assert len(found) == 1, f"expected one Axes with gid {gid!r}, got {len(found)}"
    return found[0]


def _line(ax: Axes, label: str):
    found = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(found) == 1, f"{label!r} not in {[line.get_label() for line in ax.get_lines()]}"
    return found[0]


@pytest.fixture(scope="module")
def bank(small_bank_path):
    return SpeciesBank.load(small_bank_path)


@pytest.fixture(scope="module")
def clip():
    return real_clips(TEST_DATA, SPECIES, SR, SECONDS, 1)[0]


@pytest.fixture(scope="module")
def real_page(bank, clip):
    page = explain_species(bank, SPECIES, clip, seconds=SECONDS, seed=0)
    return page, draw_page(page)


@pytest.fixture(scope="module")
def training_page(bank):
    page = explain_species(bank, SPECIES, None, seconds=SECONDS, seed=0)
    return page, draw_page(page)


def test_shared_spectrograms_keep_level_differences():
    rng = np.random.default_rng(0)
    loud = rng.standard_normal(SR // 2).astype(np.float32)
    (a, b), top_hz = shared_spectrograms([loud, 0.1 * loud], SR)
    assert top_hz == 16000.0
    assert a.shape == (257, 126) and a.max() == 0.0
    # One scale: a tenth of the amplitude sits 20 dB lower in every bin above the floor.
    above = a > -60
    np.testing.assert_allclose(b[above], a[above] - 20.0, atol=1e-3)
    with pytest.raises(ValueError, match="empty clip"):
        shared_spectrograms([loud, np.zeros(0)], SR)


def test_spectrogram_images_are_the_four_clips_on_one_scale(bank, clip, real_page):
    page, fig = real_page
    name, audio = clip
    resynthesis = bank.resynthesize(SPECIES, audio, SR, 0, jitter=NEUTRAL_JITTER)
    songs = bank.sample(SPECIES, n=2, seconds=SECONDS, sample_rate=SR, seed=0)
    expected, _ = shared_spectrograms([audio, resynthesis, songs[0], songs[1]], SR)
    labels = [
        f"real: {name}",
        "its resynthesis\nnoise: the clip's own recorded residual",
        "generated song 1\nnoise: recorded residual",
        "generated song 2\nnoise: recorded residual",
    ]
    for index, (label, db) in enumerate(zip(labels, expected, strict=True)):
        ax = _axes(fig, f"spectrogram:{index}")
        assert ax.get_title() == label
        np.testing.assert_array_equal(ax.images[0].get_array(), db)
        assert ax.images[0].get_clim() == (-80.0, 0.0)
    assert max(float(db.max()) for db in expected) == 0.0


def test_real_clip_sets_the_length_and_is_placed_in_the_training_split(bank, clip, small_bank_path):
    name, audio = clip
    page = explain_species(bank, SPECIES, (name, audio[:SR]), seconds=SECONDS, seed=0)
    assert page.seconds == 1.0 and page.contours.f0_hz.size == SR // HOP + 1
    ax = _axes(draw_page(page), "spectrogram:3")
    assert ax.images[0].get_extent() == [0.0, 1.0, 0.0, 16.0]
    data = json.loads((small_bank_path / SPECIES / "config.json").read_text())["training_data"]
    stem = name.rsplit(".", 1)[0]
    expected = (
        "a training recording"
        if stem in data["recordings"]
        else "held out for validation"
        if stem in data["validation_recordings"]
        else "not seen in training"
    )
    assert page.contours.source == f"real clip {name} ({expected})"
    with pytest.raises(ValueError, match="real_clip 'x': expected non-empty"):
        explain_species(bank, SPECIES, ("x", np.zeros((2, 10), np.float32)))


def test_contour_panels_draw_the_clips_contours_and_floor(clip, real_page):
    page, fig = real_page
    audio = clip[1]
    f0, confidence = estimate_f0(audio, SR, hop_length=HOP)
    # The bird above the clip's background, as resynthesis (and training) measure it.
    loud = bird_activity(audio, SR, noise_floor(audio), confidence, HOP).loudness_db
    assert (loud == LOUDNESS_FLOOR_DB).any() and not np.array_equal(
        loud, loudness_db(audio, SR, hop_length=HOP)
    )
    ax = _axes(fig, "f0")
    np.testing.assert_allclose(_line(ax, "F0").get_ydata(), f0 / 1000, rtol=1e-6)
    np.testing.assert_allclose(_line(ax, "F0").get_xdata(), np.arange(f0.size) / 500.0)
    voiced = _line(ax, "F0 where confidence ≥ 0.5").get_ydata()
    np.testing.assert_array_equal(np.isnan(voiced), confidence < 0.5)
    np.testing.assert_allclose(
        _line(_axes(fig, "confidence"), "voicing confidence").get_ydata(), confidence
    )
    ax = _axes(fig, "loudness")
    np.testing.assert_allclose(_line(ax, "loudness").get_ydata(), loud, rtol=1e-6)
    noise = render_noise_floor(noise_floor(audio), 2 * SR, np.random.default_rng(0))
    floor_db = float(np.median(loudness_db(noise, SR, HOP)))
    np.testing.assert_allclose(_line(ax, "background floor").get_ydata(), [floor_db] * 2)
    assert -80 < floor_db < float(loud.max()) - 10  # a recording the bird rises above
    assert f"real clip {clip[0]}" in _axes(fig, "f0").get_title() and page.contours.from_real


def test_decoder_panels_draw_the_decoder_outputs(bank, real_page):
    page, fig = real_page
    model = bank.entry(SPECIES).model
    c = page.contours
    t = lambda a: torch.as_tensor(a)[None]  # noqa: E731
    with torch.no_grad():
        controls = model.decoder(t(c.f0_hz), t(c.loudness_db), t(c.confidence))
        distribution = remove_above_nyquist(controls.harmonic_distribution, controls.f0_hz, SR)
    distribution = distribution[0].numpy().T
    harmonic_db = np.maximum(20 * np.log10(np.maximum(distribution, 1e-12)), -60)
    image = _axes(fig, "harmonics").images[0].get_array()
    np.testing.assert_allclose(image, harmonic_db, atol=1e-4)
    # Partials at or above Nyquist are not rendered, so they are drawn at the floor.
    above = np.arange(1, image.shape[0] + 1)[:, None] * c.f0_hz[None, :] >= SR / 2
    assert above.any() and np.all(image[above] == -60)
    amplitude = _line(_axes(fig, "amplitude"), "harmonic amplitude").get_ydata()
    expected = np.maximum(20 * np.log10(controls.amplitude[0].numpy()), LOUDNESS_FLOOR_DB)
    np.testing.assert_allclose(amplitude, expected, atol=1e-4)
    noise = _axes(fig, "noise").images[0].get_array()
    assert noise.shape == (65, c.f0_hz.size)
    expected = np.maximum(20 * np.log10(controls.noise_magnitudes[0].numpy().T), -100)
    np.testing.assert_allclose(noise, expected, atol=1e-4)


def test_noise_panels_put_the_decoders_noise_beside_the_clips_recorded_residual(
    bank, clip, real_page
):
    page, fig = real_page
    name, audio = clip
    c = page.contours
    model = bank.entry(SPECIES).model
    harmonic = model.harmonic_part(c.f0_hz, c.loudness_db, c.confidence, audio.size)
    residual = measure_residual(audio, harmonic, HOP).T
    sung = c.loudness_db > LOUDNESS_FLOOR_DB
    assert 0 < sung.sum() < sung.size  # the clip has both song and silence
    decoder = _axes(fig, "noise")
    drawn = _axes(fig, "residual")
    image = drawn.images[0].get_array()
    assert image.shape == (257, c.f0_hz.size)
    # As resynthesis renders it: the measured residual where the bird sings, nothing elsewhere.
    np.testing.assert_allclose(image[:, sung], residual[:, sung], atol=1e-4)
    assert np.all(image[:, ~sung] == -120.0)
    # One colour scale for both, 80 dB deep under the louder of the two.
    top = max(float(residual[:, sung].max()), float(decoder.images[0].get_array().max()))
    assert decoder.images[0].get_clim() == drawn.images[0].get_clim() == (top - 80, top)
    extent = [0.0, c.f0_hz.size / 500.0, 0.0, 16.0]  # frames of 2 ms, up to Nyquist
    assert drawn.images[0].get_extent() == decoder.images[0].get_extent() == extent
    assert 'noise="recorded"' in drawn.get_title() and f"measured on {name}" in drawn.get_title()
    assert 'noise="model"' in decoder.get_title()
    # The spectra: power means over the sung frames, on the same dB scale.
    spectrum = _axes(fig, "noise_spectrum")
    line = _line(spectrum, "recorded residual")
    want = 10 * np.log10(np.mean(10 ** (residual[:, sung] / 10), axis=1))
    np.testing.assert_allclose(line.get_ydata(), want, atol=1e-3)
    np.testing.assert_allclose(line.get_xdata()[[0, 1, -1]], [0.0, 0.0625, 16.0])
    decoder_line = _line(spectrum, "decoder's noise")
    assert decoder_line.get_xdata().size == 65 and decoder_line.get_xdata()[-1] == 16.0
    # Both spectra in view, however far the decoder's noise sits under the residual.
    assert spectrum.get_ylim()[0] < float(decoder_line.get_ydata().min())
    assert spectrum.get_ylim()[1] == pytest.approx(top + 5)
    assert f"{int(sung.sum())} sung frames" in spectrum.get_title()
    assert page.noise.missing is None


def test_noise_view_averages_power_over_sung_frames_and_checks_shapes():
    decoder = np.array([[-20.0, -40.0, -60.0], [-30.0, -30.0, -30.0]], np.float32)  # 2 bands
    controls = ControlsView(
        np.zeros((4, 3), np.float32), np.zeros(3, np.float32), decoder, 500.0, 16000.0
    )
    residual = np.array([[-10.0, -13.0], [-50.0, -53.0], [0.0, 0.0]], np.float32)  # [frames, 2]
    loud = np.array([-30.0, -40.0, LOUDNESS_FLOOR_DB], np.float32)  # the last frame is silent
    view = noise_view(controls, loud, residual, "test")
    np.testing.assert_array_equal(view.residual_db, [[-10, -50, -120], [-13, -53, -120]])
    assert view.top_db == -10.0 and view.sung_frames == 2  # the silent frame's 0 dB is gone
    # Power means over the two sung frames, in dB.
    np.testing.assert_allclose(
        view.decoder_spectrum_db, 10 * np.log10([(1e-2 + 1e-4) / 2, 1e-3]), rtol=1e-6
    )
    np.testing.assert_allclose(
        view.residual_spectrum_db, 10 * np.log10([(1e-1 + 1e-5) / 2, (10**-1.3 + 10**-5.3) / 2])
    )
    # No sung frame: every frame is averaged; no residual: nothing to draw, but no failure.
    silent = noise_view(controls, np.full(3, LOUDNESS_FLOOR_DB, np.float32), None, "x", "why")
    assert silent.residual_db is None and silent.residual_spectrum_db is None
    assert silent.sung_frames == 0 and silent.top_db == -20.0 and silent.missing == "why"
    np.testing.assert_allclose(silent.decoder_spectrum_db[1], -30.0, rtol=1e-6)
    with pytest.raises(ValueError, match="loudness must be"):
        noise_view(controls, loud[:2], residual, "test")
    with pytest.raises(ValueError, match="residual_db must be"):
        noise_view(controls, loud, residual[:, :, None], "test")


def test_reverb_decay_of_a_known_room():
    rng = np.random.default_rng(0)
    rt60 = 0.3
    t = np.arange(int(0.6 * SR)) / SR
    ir = rng.standard_normal(t.size) * 10 ** (-3 * t / rt60)  # amplitude −60 dB per RT60
    ir *= 0.1 / np.sqrt(np.sum(ir**2))  # energy 0.01: −20 dB re the dry impulse
    view = reverb_view(ir, SR)
    assert view.rt60_s == pytest.approx(rt60, rel=0.03)
    assert view.edt_s == pytest.approx(rt60, rel=0.1)
    assert view.wet_db == pytest.approx(-20.0, abs=1e-6)
    assert abs(view.edc_db[0]) < 1e-6 and np.all(np.diff(view.edc_db) <= 1e-6)
    # A flat IR's remaining energy falls linearly: 100 taps reach only −20 dB, so no T20.
    flat = reverb_view(np.ones(100), SR)
    assert np.isnan(flat.rt60_s) and flat.edc_db[-1] == pytest.approx(-20.0)
    assert flat.wet_db == pytest.approx(20.0)
    with pytest.raises(ValueError, match="all zeros"):
        reverb_view(np.zeros(10), SR)


def test_reverb_panels_draw_the_learned_impulse_response(bank, real_page):
    page, fig = real_page
    ir = bank.entry(SPECIES).model.reverb.ir.detach().numpy()
    line = _line(_axes(fig, "reverb_ir"), "impulse response")
    np.testing.assert_array_equal(line.get_ydata(), ir)
    np.testing.assert_allclose(line.get_xdata()[1], 1000 / SR)
    edc = _line(_axes(fig, "reverb_edc"), "energy decay curve").get_ydata()
    np.testing.assert_allclose(edc, reverb_view(ir, SR).edc_db)


def test_training_curves_are_history_csv_with_chosen_epoch(small_bank_path, real_page):
    page, fig = real_page
    with open(small_bank_path / SPECIES / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = json.loads((small_bank_path / SPECIES / "config.json").read_text())["metrics"]
    for name in HISTORY_CURVES:
        ax = _axes(fig, f"curve:{name}")
        line = _line(ax, name)
        np.testing.assert_array_equal(line.get_xdata(), [float(r["epoch"]) for r in rows])
        np.testing.assert_array_equal(line.get_ydata(), [float(r[name]) for r in rows])
        marker = _line(ax, "chosen epoch")
        assert list(marker.get_xdata()) == [chosen["epoch"]] * 2
    assert len(rows) == 2 and page.curves.restart_epochs.size == 0


def test_collapse_restarts_are_marked(tmp_path, real_page):
    page, _ = real_page
    history = tmp_path / "history.csv"
    rows = [
        # epoch, loss, val, f0, loud, lr, collapsed
        (1, 3.0, 2.9, 0.4, 9.0, 2e-3, 0),
        (2, 2.8, 3.5, "nan", 20.0, 2e-3, 1),
        (3, 2.5, 2.6, 0.5, 8.0, 6e-4, 0),
        (4, 2.4, 4.0, "", 25.0, 6e-4, 1),
        (5, 2.2, 2.4, 0.6, 7.0, 1.8e-4, 0),
    ]
    header = "epoch,loss,val_spectral_distance,f0_within_50_cents,loudness_mae_db,lr,collapsed"
    history.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    curves = read_history(history, chosen_epoch=5)
    np.testing.assert_array_equal(curves.restart_epochs, [2, 4])
    f0 = curves.curves["f0_within_50_cents"]
    assert np.isnan(f0[1]) and np.isnan(f0[3]) and f0[4] == 0.6
    fig = draw_page(dataclasses.replace(page, curves=curves))
    ax = _axes(fig, "curve:val_spectral_distance")
    restarts = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert sorted(line.get_xdata()[0] for line in restarts) == [2, 4]
    assert list(_line(ax, "chosen epoch").get_xdata()) == [5, 5]
    with pytest.raises(ValueError, match="expected a history with columns"):
        history.write_text("epoch,loss\n1,2.0\n")
        read_history(history)


def test_jitter_panels_apply_each_range_to_one_phrase(bank, real_page):
    page, fig = real_page
    config = bank.jitter_config(SPECIES)
    f0, loud, _ = pick_phrase(bank.entry(SPECIES).contours)
    assert f0.size == 500  # a full second of the 2 ms grid
    ax = _axes(fig, "jitter:pitch")
    np.testing.assert_allclose(_line(ax, "training phrase").get_ydata(), f0 / 1000)
    for cents in (-config.pitch_cents, config.pitch_cents):
        drawn = _line(ax, f"{cents:+.0f} cents").get_ydata()
        np.testing.assert_allclose(drawn, f0 / 1000 * 2 ** (cents / 1200), rtol=1e-5)
    ax = _axes(fig, "jitter:tempo")
    # Tempo stretches the gaps between syllables (the default tempo_scope); notes keep their
    # length.
    assert config.tempo_scope == "gaps"
    sung = sum(end - start for start, end in split_syllables(loud))
    for tempo in config.tempo:
        want = round(sung + (f0.size - sung) / tempo)
        assert _line(ax, f"×{tempo:.2f}").get_ydata().size == want
    ax = _axes(fig, "jitter:gain")
    sounding = loud > LOUDNESS_FLOOR_DB
    for gain in config.gain_db:
        drawn = _line(ax, f"{gain:+.1f} dB").get_ydata()
        want = np.maximum(loud + gain, LOUDNESS_FLOOR_DB)  # the gain stops at the floor
        np.testing.assert_allclose(drawn[sounding], want[sounding], atol=1e-4)
    ax = _axes(fig, "jitter:vibrato")
    depth = config.vibrato_cents[1]
    for rate in config.vibrato_hz:
        drawn = _line(ax, f"±{depth:.0f} cents at {rate:.0f} Hz").get_ydata()
        cents = 1200 * np.log2(drawn / (f0 / 1000))
        assert np.abs(cents).max() == pytest.approx(depth, abs=0.5)


def test_without_real_recording_training_contours_stand_in(bank, training_page):
    page, fig = training_page
    note = _axes(fig, "spectrogram:0")
    assert not note.images and "no real recording given" in note.texts[0].get_text()
    title = _axes(fig, "spectrogram:1").get_title()
    assert title == "resynthesis of training contours\nnoise: their recorded residual"
    f0, loud, conf, recording, residual = training_excerpt(
        bank.entry(SPECIES).contours, SR * 2 // HOP + 1
    )
    ax = _axes(fig, "f0")
    assert f"training contours of {recording}" in ax.get_title()
    assert "no real recording given" in ax.get_title()
    np.testing.assert_allclose(_line(ax, "F0").get_ydata(), f0 / 1000, rtol=1e-6)
    np.testing.assert_allclose(_line(_axes(fig, "loudness"), "loudness").get_ydata(), loud)
    assert not page.contours.from_real
    # The residual stored with the model for those frames, silent in the gaps between segments.
    drawn = _axes(fig, "residual")
    sung = loud > LOUDNESS_FLOOR_DB
    np.testing.assert_array_equal(drawn.images[0].get_array()[:, sung], residual.T[:, sung])
    assert np.all(drawn.images[0].get_array()[:, ~sung] == -120.0)
    assert f"stored with the model for {recording}" in drawn.get_title()
    # The three clips that exist share one scale.
    assert max(float(db.max()) for _, db in page.spectrograms if db is not None) == 0.0


def test_training_excerpt_lays_the_most_voiced_recording_end_to_end():
    def segment(n, voiced, recording, f0=3000.0):
        conf = np.r_[np.ones(voiced), np.zeros(n - voiced)].astype(np.float32)
        return Segment(np.full(n, f0, np.float32), np.full(n, -30, np.float32), conf, recording)

    b_segments = [segment(30, 10, "b"), segment(20, 20, "b", 4000.0)]
    # "b" has 10 + 20 voiced frames; "a" has 30 (a tie: the later name wins) or 31.
    f0, loud, conf, recording, residual = training_excerpt(
        ContourBank([segment(40, 30, "a"), *b_segments], SR, HOP), 120
    )
    assert recording == "b" and f0.shape == loud.shape == conf.shape == (120,)
    assert residual is None  # these segments carry none
    # 30 frames, a 0.1 s gap (50 frames at 500 Hz), 20 frames, then silence to the end.
    np.testing.assert_array_equal(np.flatnonzero(loud == -30), np.r_[0:30, 80:100])
    np.testing.assert_array_equal(f0[30:80], 3000.0)  # the gap holds the previous F0
    np.testing.assert_array_equal(f0[80:120], 4000.0)
    assert conf[:10].sum() == 10 and conf[80:100].sum() == 20 and conf.sum() == 30
    _, _, _, recording, _ = training_excerpt(
        ContourBank([segment(40, 31, "a"), *b_segments], SR, HOP), 10
    )
    assert recording == "a"
    # With residuals, each segment's rows are laid out as its contours, empty in the gaps.
    with_residual = [
        dataclasses.replace(s, residual_db=np.full((len(s), 3), -10.0 * (i + 1), np.float32))
        for i, s in enumerate(b_segments)
    ]
    *_, residual = training_excerpt(ContourBank(with_residual, SR, HOP), 120)
    assert residual.shape == (120, 3) and residual.dtype == np.float32
    np.testing.assert_array_equal(residual[:30], -10.0)
    np.testing.assert_array_equal(residual[80:100], -20.0)
    np.testing.assert_array_equal(residual[np.r_[30:80, 100:120]], -120.0)


def test_a_model_without_residual_explains_with_the_decoders_noise(bank, clip):
    """Model directories saved before recorded residuals (``has_residual`` False) still get a
    page: the residual panel says why it is empty and the songs use the decoder's noise."""
    entry = bank.entry(SPECIES)
    segments = [dataclasses.replace(s, residual_db=None) for s in entry.contours.segments]
    contours = ContourBank(segments, entry.contours.sample_rate, entry.contours.hop_length)
    old = SpeciesBank({SPECIES: dataclasses.replace(entry, contours=contours)})
    assert not contours.has_residual
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: the page asks for model noise
        page = explain_species(old, SPECIES, None, seconds=1.0, seed=0)
    fig = draw_page(page)
    ax = _axes(fig, "residual")
    note = " ".join(ax.texts[0].get_text().split())  # as read, lines wrapped to fit
    assert not ax.images and NO_RESIDUAL in note and "decoder's noise" in note
    assert NO_RESIDUAL.startswith("no recorded residual in this model (trained before")
    assert [line.get_label() for line in _axes(fig, "noise_spectrum").get_lines()] == [
        "decoder's noise"
    ]
    # The clips drawn: the training contours rendered with the decoder's noise, and songs
    # sampled with noise="model".
    f0, loud, conf, _, residual = training_excerpt(contours, SR // HOP + 1)
    assert residual is None
    model = entry.model
    resynthesis = model.synthesize(f0, loud, conf, SR, np.random.default_rng(0))
    songs = old.sample(SPECIES, n=2, seconds=1.0, sample_rate=SR, seed=0, noise="model")
    expected, _ = shared_spectrograms([resynthesis, *songs], SR)
    for index, db in enumerate(expected, start=1):
        np.testing.assert_array_equal(_axes(fig, f"spectrogram:{index}").images[0].get_array(), db)
    for index in (2, 3):
        title = _axes(fig, f"spectrogram:{index}").get_title()
        assert title.endswith("noise: the decoder's (no recorded residual)")
    resynthesis = _axes(fig, "spectrogram:1").get_title()
    assert resynthesis.endswith("noise: the decoder's")
    # A real clip's residual is measured on the clip itself, so it is drawn, with the note.
    page = explain_species(old, SPECIES, (clip[0], clip[1][:SR]), seconds=1.0, seed=0)
    assert page.noise.residual_db is not None and page.noise.missing == NO_RESIDUAL
    assert NO_RESIDUAL in " ".join(_axes(draw_page(page), "residual").get_title().split())


def test_cli_writes_pages_and_index_without_real_path(small_bank_path, tmp_path, capsys):
    out = tmp_path / "explain"
    code = main(
        [
            "explain",
            "--model_checkpoint",
            str(small_bank_path),
            "--output_path",
            str(out),
            "--seconds",
            "1",
            "--dpi",
            "20",
        ]
    )
    assert code == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["Fringilla_coelebs.png", "Parus_major.png"]
    for png in pngs:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = (out / "index.html").read_text()
    assert index.count('<a href="') == 2 and 'href="Parus_major.png"' in index
    assert "training contours stand in" in index and "http" not in index
    assert "Parus_major" in capsys.readouterr().out


def test_species_missing_from_real_path_falls_back_and_says_why(small_bank_path, tmp_path):
    pages = explain_models(
        small_bank_path,
        tmp_path,
        real_path=TEST_DATA,
        seconds=1.0,
        species=[BANK_SPECIES[1]],
        dpi=20,
    )
    assert list(pages) == ["Fringilla_coelebs"] and pages["Fringilla_coelebs"].is_file()
    index = (tmp_path / "index.html").read_text()
    assert f"no readable recording in {TEST_DATA / 'Fringilla_coelebs'}" in index
    assert "contours shown: training contours of" in index


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--model_checkpoint", "no such model directory"), ("--real_path", "no such folder")],
)
def test_cli_missing_folder_is_a_clear_error(small_bank_path, tmp_path, capsys, flag, message):
    missing = tmp_path / "missing"
    argv = ["explain", "--model_checkpoint", str(small_bank_path), "--output_path", str(tmp_path)]
    argv += [flag, str(missing)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}") and message in err
    assert not list(tmp_path.glob("*.png"))


def test_neutral_jitter_changes_nothing():
    """The resynthesis panel uses NEUTRAL_JITTER: the contours go through unchanged."""
    rng = np.random.default_rng(0)
    f0 = rng.uniform(2000, 6000, 300).astype(np.float32)
    loud = rng.uniform(-60, -20, 300).astype(np.float32)
    conf = rng.uniform(0, 1, 300).astype(np.float32)
    out = jitter_contours(f0, loud, conf, NEUTRAL_JITTER, rng, 500.0)
    np.testing.assert_allclose(out[0], f0, rtol=1e-6)
    np.testing.assert_array_equal(out[1], loud)
    np.testing.assert_array_equal(out[2], conf)
