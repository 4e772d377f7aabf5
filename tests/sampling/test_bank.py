import numpy as np
import pytest
import torch

from ddsp_augment.features.background import noise_floor
from ddsp_augment.model.storage import ModelFileError
from ddsp_augment.sampling import scene as scene_module
from ddsp_augment.sampling.bank import SpeciesBank
from ddsp_augment.sampling.scene import SceneConfig


def test_load_lists_species_and_rejects_bad_paths(small_bank, small_bank_path, tmp_path):
    assert small_bank.species == sorted(p.name for p in small_bank_path.iterdir())
    assert small_bank.path == small_bank_path
    one = SpeciesBank.load(small_bank_path / small_bank.species[0])
    assert one.species == small_bank.species[:1]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        SpeciesBank.load(tmp_path / "nowhere")
    (tmp_path / "ddsp_model.pth").write_bytes(b"\x80\x04not a directory")
    with pytest.raises(ModelFileError, match="ddsp_model.pth"):
        SpeciesBank.load(tmp_path / "ddsp_model.pth")
    with pytest.raises(ModelFileError, match="Corvus"):
        SpeciesBank.load(small_bank_path, species=["Corvus_corax"])


@pytest.mark.parametrize("rate", [32000, 22050, 48000])
def test_sample_shape_rate_peak_and_determinism(small_bank, rate):
    species = small_bank.species[0]
    a = small_bank.sample(species, n=3, seconds=1.5, sample_rate=rate, seed=7)
    b = small_bank.sample(species, n=3, seconds=1.5, sample_rate=rate, seed=7)
    c = small_bank.sample(species, n=3, seconds=1.5, sample_rate=rate, seed=8)
    assert a.shape == (3, int(round(1.5 * rate))) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a).max() <= 0.99 and np.isfinite(a).all()
    assert all(np.std(clip) > 0 for clip in a)  # every clip holds sound
    assert not np.array_equal(a[0], a[1])  # clips of one call differ


def test_markov_syntax_samples_from_the_cached_species_model(small_bank):
    species = small_bank.species[0]
    model = small_bank.syntax_model(species)
    assert small_bank.syntax_model(species) is model and model.n_types >= 1
    a = small_bank.sample(species, n=2, seconds=1.0, seed=7, syntax="markov")
    b = small_bank.sample(species, n=2, seconds=1.0, seed=7, syntax="markov")
    shuffled = small_bank.sample(species, n=2, seconds=1.0, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, shuffled)
    assert np.isfinite(a).all() and all(np.std(clip) > 0 for clip in a)


def test_numba_and_torch_backends_render_the_same_song(small_bank):
    species = small_bank.species[0]
    fast = small_bank.sample(species, n=1, seconds=1.0, seed=3, backend="numba")[0]
    slow = small_bank.sample(species, n=1, seconds=1.0, seed=3, backend="torch")[0]
    assert np.max(np.abs(fast - slow)) <= 1e-3 * max(np.abs(slow).max(), 1e-6)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_batched_torch_renders_the_numba_songs_with_their_scenes(small_bank, device):
    # Tolerance: float32 rounding of two implementations (sums in other orders, sin vs a
    # recurrence), well under 1e-3 of the peak; the scene's draws are identical.
    species = small_bank.species[1]
    scene = SceneConfig(distance_m=(1.0, 5.0), rt60_s=(0.2, 0.5), p_wind=0.5, p_rain=0.5)
    kwargs = dict(n=5, seconds=1.0, sample_rate=22050, seed=11, scene=scene)
    fast = small_bank.sample(species, backend="numba", **kwargs)
    batched = small_bank.sample(species, backend="torch", device=device, **kwargs)
    assert batched.shape == (5, 22050) and batched.dtype == np.float32
    for clip, reference in zip(batched, fast, strict=True):
        assert np.abs(clip - reference).max() <= 1e-3 * np.abs(reference).max()
    # clip i of a call is the same whatever the batch it is rendered in
    first = small_bank.sample(species, backend="torch", device=device, **{**kwargs, "n": 2})
    np.testing.assert_allclose(first, batched[:2], rtol=0, atol=1e-6)
    # the scene is mixed as one batch on the device: the per-clip numpy mix is never called
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scene_module, "_mix_scene", lambda *a: pytest.fail("numpy scene mix"))
        again = small_bank.sample(species, backend="torch", device=device, **kwargs)
    np.testing.assert_array_equal(again, batched)
    with pytest.raises(ValueError, match="backend"):
        small_bank.sample(species, backend="cuda")
    small_bank.entry(species).model.to("cpu")  # the shared bank's model followed the device


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_device_draws_are_seeded_per_clip_and_sound_like_the_host_draws(small_bank, device):
    """draws="device": the same contours, the bulk noise from each clip's torch generator:
    identical for a seed whatever the batch, and within 0.5 dB of the host draws' level (2 dB
    per clip) and 1.5 dB of their band spectrum (16 bands over 8 clips, where the bird sings)
    for the clean bird."""
    species = small_bank.species[0]
    kwargs = dict(seconds=1.0, seed=21, backend="torch", device=device)
    scene = SceneConfig(background="measured", p_wind=0.5, p_rain=0.5)
    device = small_bank.sample(species, n=4, draws="device", scene=scene, **kwargs)
    np.testing.assert_array_equal(
        small_bank.sample(species, n=4, draws="device", scene=scene, **kwargs), device
    )
    first = small_bank.sample(species, n=2, draws="device", scene=scene, **kwargs)
    np.testing.assert_array_equal(first, device[:2])
    assert device.shape == (4, 32000) and np.isfinite(device).all()
    assert np.abs(device).max() <= 0.99 and all(np.std(clip) > 0 for clip in device)
    other = small_bank.sample(species, n=4, draws="device", scene=scene, **{**kwargs, "seed": 22})
    assert not np.array_equal(other, device)
    host = small_bank.sample(species, n=8, draws="host", **kwargs)
    bird = small_bank.sample(species, n=8, draws="device", **kwargs)
    assert not np.array_equal(host, bird)
    levels = 10 * np.log10(np.mean(bird**2, axis=1) / np.mean(host**2, axis=1))
    # Per clip, one noise draw against another: a clip that is mostly recorded residual over a
    # few syllables (added after the reverb, which no longer spreads it) swings by over 1 dB.
    assert np.abs(levels).max() <= 2.0 and abs(float(np.mean(levels))) <= 0.5

    def bands(audio: np.ndarray) -> np.ndarray:
        power = np.abs(np.fft.rfft(audio, axis=-1)) ** 2
        return 10 * np.log10(power.mean(0)[1:].reshape(16, -1).mean(-1))

    # Where the bird sings (bands within 30 dB of its loudest): a near-empty band's level over
    # 8 clips of recorded residual swings by dB from draw to draw, and a band that is mostly
    # residual (9-11 kHz here) by over 1 dB.
    sung = bands(host) > bands(host).max() - 30
    assert np.abs(bands(bird) - bands(host))[sung].max() <= 1.5
    with pytest.raises(ValueError, match="draws"):
        small_bank.sample(species, draws="device")  # numba draws on the host
    with pytest.raises(ValueError, match="draws"):
        small_bank.sample(species, backend="torch", draws="gpu")
    small_bank.entry(species).model.to("cpu")  # the shared bank's model followed the device


def test_scene_adds_the_measured_background(small_bank):
    """The default scene adds noise with one training recording's floor, at its recorded level."""
    species = small_bank.species[0]
    # A bird 40 dB down keeps both clips below the 0.99 peak limit: no rescaling, so the scene
    # minus the clean song is exactly the added background.
    quiet = {"seconds": 2.0, "seed": 1, "gain_db": (-40.0, -40.0)}
    clean = small_bank.sample(species, **quiet)[0]
    scene = small_bank.sample(species, scene=SceneConfig(), **quiet)[0]
    assert np.abs(scene).max() < 0.99
    added = noise_floor(scene - clean)
    band = slice(50, 900)  # 0.8-14 kHz, away from DC and Nyquist
    floors = small_bank.entry(species).backgrounds
    errors_db = [20 * np.log10(added[band] / f[band]) for f in floors]
    best = min(errors_db, key=lambda e: abs(np.median(e)))
    assert abs(np.median(best)) < 1.0  # the level of a measured floor (median over bands)
    assert np.median(np.abs(best)) < 2.0  # and its shape: each band within ~2 dB


def test_resynthesis_keeps_length_and_level(small_bank, tonal_clips):
    from ddsp_augment.io import load_audio

    species = small_bank.species[0]
    audio, rate = load_audio(tonal_clips[species][0])
    song = small_bank.resynthesize(species, audio, rate, seed=0)
    assert song.shape == audio.shape
    assert np.sqrt(np.mean(song**2)) == pytest.approx(np.sqrt(np.mean(audio**2)), rel=0.05)
    np.testing.assert_array_equal(song, small_bank.resynthesize(species, audio, rate, seed=0))


def test_resynthesis_analyses_the_clip_in_the_models_band(small_bank, tonal_clips, monkeypatch):
    """A model of recordings preprocessed with --f_min 500 tracks a clip's F0 and measures its
    bird between 500 Hz and 12 kHz too (``config.json``'s ``training_data.band``)."""
    from ddsp_augment.io import load_audio
    from ddsp_augment.sampling import bank as bank_module

    species = small_bank.species[0]
    small_bank.entry(species).info["training_data"]["band"] = [500.0, 12000.0]
    bands = []
    for name in ("estimate_f0", "bird_activity"):
        real = getattr(bank_module, name)
        first = 3 if name == "estimate_f0" else 5  # where f_min, f_max sit in each signature

        def spy(*args, _real=real, _first=first):
            bands.append(args[_first : _first + 2])
            return _real(*args)

        monkeypatch.setattr(bank_module, name, spy)
    audio, rate = load_audio(tonal_clips[species][0])
    small_bank.resynthesize(species, audio, rate, seed=0)
    assert bands == [(500.0, 12000.0), (500.0, 12000.0)]


def test_resynthesis_with_the_clips_own_residual_is_nearer_the_clip(small_bank, tonal_clips):
    """Without jitter, the recorded residual re-renders what the briefly trained model's
    harmonics miss, so the re-sung clip is nearer the original (multi-scale spectral distance
    over the original's active frames) than with the model's noise branch."""
    from ddsp_augment.evaluation.metrics import spectral_distance
    from ddsp_augment.io import load_audio
    from ddsp_augment.sampling.jitter import JitterConfig

    still = JitterConfig(pitch_cents=0.0, vibrato_cents=(0.0, 0.0), gain_db=(0.0, 0.0))
    for species in small_bank.species:
        audio, rate = load_audio(tonal_clips[species][0])
        distance = {
            noise: spectral_distance(
                audio,
                small_bank.resynthesize(species, audio, rate, seed=0, jitter=still, noise=noise),
                rate,
            )
            for noise in ("recorded", "model")
        }
        assert distance["recorded"] < distance["model"] - 0.1, distance
    with pytest.raises(ValueError, match="noise"):
        small_bank.resynthesize(species, audio, rate, noise="none")


def test_unknown_species_and_bad_arguments(small_bank):
    with pytest.raises(KeyError, match="no model for species"):
        small_bank.sample("Dodo", n=1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        small_bank.sample(small_bank.species[0], n=0)


def test_nbytes_counts_weights_backgrounds_and_contours(small_bank_path):
    bank = SpeciesBank.load(small_bank_path)
    expected = 0
    for species in bank.species:
        entry = bank.entry(species)
        cfg = entry.model.config
        c, k, n_out = cfg.hidden, cfg.kernel_size, 1 + cfg.n_harmonics + cfg.n_noise_bands
        weights = (
            4 * c  # input conv 3 -> c, with bias
            + cfg.n_layers * (c * k + c + c * c + c)  # depthwise + pointwise, with biases
            + c * n_out
            + n_out  # output conv
            + int(cfg.reverb_seconds * cfg.sample_rate)  # reverb IR
        )
        frames = sum(len(s) for s in entry.contours.segments)
        # F0, loudness and confidence (float32), the recorded residual (257 bands, float16)
        expected += 4 * weights + 4 * entry.backgrounds.size + (3 * 4 + 257 * 2) * frames
    assert bank.nbytes == expected
    # Sampling with the residual indexes the loaded arrays the segments are views of: no copy.
    bank.sample(bank.species[0], seconds=0.1, seed=0)
    assert bank.nbytes == expected


def test_repr_names_species_and_path(small_bank, small_bank_path):
    assert repr(small_bank) == (
        f"SpeciesBank(species={small_bank.species}, path={str(small_bank_path)!r})"
    )
    bank = repr(small_bank.entry("Parus_major").contours)
    assert bank.startswith("ContourBank(") and "sample_rate=32000, hop_length=64)" in bank


def _with_residual(bank: SpeciesBank, species: str, residual_of) -> SpeciesBank:
    """An in-memory bank of ``species`` whose segments carry ``residual_of(segment)``."""
    import dataclasses

    from ddsp_augment.features.contours import ContourBank

    entry = bank.entry(species)
    contours = entry.contours
    segments = [dataclasses.replace(s, residual_db=residual_of(s)) for s in contours.segments]
    bank_contours = ContourBank(segments, contours.sample_rate, contours.hop_length)
    return SpeciesBank({species: dataclasses.replace(entry, contours=bank_contours)})


def test_recorded_noise_follows_the_residual_of_the_frames_sung(small_bank):
    """A residual that holds one band (14 kHz, above the test species' harmonics) puts that
    band under the sung frames, where it was measured (no pitch jitter); a residual of silence
    leaves the harmonics alone."""
    from ddsp_augment.features.residual import RESIDUAL_BANDS, RESIDUAL_FLOOR_DB
    from ddsp_augment.sampling.jitter import JitterConfig

    species = small_bank.species[0]
    assert small_bank.entry(species).contours.has_residual  # measured when training saved

    def band_at_14k(segment):
        residual = np.full((len(segment), RESIDUAL_BANDS), RESIDUAL_FLOOR_DB, np.float32)
        residual[:, 224] = -10.0
        return residual

    still = JitterConfig(pitch_cents=0.0, vibrato_cents=(0.0, 0.0), gain_db=(0.0, 0.0))
    banded = _with_residual(small_bank, species, band_at_14k)
    silent = _with_residual(
        small_bank, species, lambda s: np.full((len(s), 257), RESIDUAL_FLOOR_DB, np.float32)
    )
    kwargs = dict(n=4, seconds=1.0, seed=3, jitter=still)

    def band_db(audio: np.ndarray, low: float, high: float) -> float:
        power = np.abs(np.fft.rfft(audio, axis=-1)) ** 2
        hz = np.fft.rfftfreq(audio.shape[-1], 1 / 32000)
        return 10 * np.log10(power[:, (hz >= low) & (hz < high)].mean())

    with_band = banded.sample(species, **kwargs)
    without = silent.sample(species, **kwargs)
    assert band_db(with_band, 13950, 14050) > band_db(without, 13950, 14050) + 10
    assert band_db(with_band, 13950, 14050) > band_db(with_band, 13000, 13500) + 10
    # A silent residual: the songs are the model's harmonics (and reverb) alone, so both noise
    # sources share every sample the noise branch does not touch: the same contours.
    model_noise = silent.sample(species, noise="model", **kwargs)
    assert not np.array_equal(without, model_noise)
    assert np.corrcoef(without.ravel(), model_noise.ravel())[0, 1] > 0.5
    with pytest.raises(ValueError, match="noise"):
        silent.sample(species, noise="recordings")


@pytest.mark.parametrize("tempo", [0.93, 1.03])
def test_recorded_noise_stays_in_its_band_when_a_jumpy_track_is_time_stretched(small_bank, tempo):
    """A tempo change puts song frames between source frames; the residual there moves by the
    jitter's pitch shift (none here), not by the track's jump between its neighbours: an F0
    that alternates an octave frame to frame (as noisy calls are tracked) keeps a residual
    band at 10 kHz in place (compared with the nearest frame's F0, most frames read a shift
    of up to an octave and the band moved to 5-7 or 14-20 kHz)."""
    import dataclasses

    from ddsp_augment.features.contours import ContourBank
    from ddsp_augment.features.residual import RESIDUAL_BANDS, RESIDUAL_FLOOR_DB
    from ddsp_augment.sampling.jitter import JitterConfig

    species = small_bank.species[0]
    entry = small_bank.entry(species)

    def jumpy(segment):
        f0 = np.where(np.arange(len(segment)) % 2 == 0, 1500.0, 3000.0).astype(np.float32)
        residual = np.full((len(segment), RESIDUAL_BANDS), RESIDUAL_FLOOR_DB, np.float32)
        residual[:, 160] = -10.0  # 10 kHz
        return dataclasses.replace(segment, f0_hz=f0, residual_db=residual)

    contours = entry.contours
    bank = SpeciesBank(
        {
            species: dataclasses.replace(
                entry,
                contours=ContourBank(
                    [jumpy(s) for s in contours.segments],
                    contours.sample_rate,
                    contours.hop_length,
                ),
            )
        }
    )
    still = JitterConfig(
        pitch_cents=0.0,
        tempo=(tempo, tempo),
        vibrato_cents=(0.0, 0.0),
        gain_db=(0.0, 0.0),
        envelope_warp=0.0,
        p_drop=0.0,
        p_repeat=0.0,
        p_reorder=0.0,
    )
    rng = np.random.default_rng(0)
    song = bank._contours(species, still, rng, 64000)
    assert np.nanmax(np.abs(song.source - np.rint(song.source))) > 0.4  # between frames
    power = (bank._recorded_noise(species, song).astype(np.float64) ** 2).sum(0)
    assert power[159:162].sum() > 0.99 * power.sum()


def test_a_model_without_residuals_falls_back_to_its_noise_branch(small_bank):
    species = small_bank.species[0]
    old = _with_residual(small_bank, species, lambda s: None)
    with pytest.warns(UserWarning, match="no recorded residuals"):
        songs = old.sample(species, n=2, seconds=0.5, seed=1)
    np.testing.assert_array_equal(
        songs, old.sample(species, n=2, seconds=0.5, seed=1, noise="model")
    )


def test_a_model_with_residuals_measured_before_the_reverb_falls_back_and_says_retrain(
    small_bank, tmp_path
):
    """Residuals saved before ``RESIDUAL_VERSION`` 2 (no version field) were measured against
    the dry harmonics: the decoder's noise is used instead, with a warning to retrain."""
    import dataclasses

    from ddsp_augment.features.contours import ContourBank

    species = small_bank.species[0]
    entry = small_bank.entry(species)
    entry.contours.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "residual_version"}
    np.savez(tmp_path / "old.npz", **arrays)
    stale = ContourBank.load(tmp_path / "old.npz")
    old = SpeciesBank({species: dataclasses.replace(entry, contours=stale)})
    with pytest.warns(UserWarning, match="measured before the reverb.*retrain it"):
        songs = old.sample(species, n=2, seconds=0.5, seed=1)
    np.testing.assert_array_equal(
        songs, small_bank.sample(species, n=2, seconds=0.5, seed=1, noise="model")
    )
