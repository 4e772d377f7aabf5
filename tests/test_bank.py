import numpy as np
import pytest

from ddsp_augment.model.storage import ModelFileError
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
    with pytest.raises(KeyError, match="Corvus"):
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


def test_numba_and_torch_backends_render_the_same_song(small_bank):
    species = small_bank.species[0]
    fast = small_bank.sample(species, n=1, seconds=1.0, seed=3, backend="numba")[0]
    slow = small_bank.sample(species, n=1, seconds=1.0, seed=3, backend="torch")[0]
    assert np.max(np.abs(fast - slow)) <= 1e-3 * max(np.abs(slow).max(), 1e-6)


def test_scene_adds_the_measured_background(small_bank):
    species = small_bank.species[0]
    clean = small_bank.sample(species, n=1, seconds=2.0, seed=1)[0]
    scene = small_bank.sample(species, n=1, seconds=2.0, seed=1, scene=SceneConfig())[0]
    # the background fills the silent gaps between phrases
    quiet = np.abs(clean) < 1e-6
    assert quiet.any() and np.std(scene[quiet]) > 0


def test_resynthesis_keeps_length_and_level(small_bank, tonal_clips):
    from ddsp_augment.io import load_audio

    species = small_bank.species[0]
    audio, rate = load_audio(tonal_clips[species][0])
    song = small_bank.resynthesize(species, audio, rate, seed=0)
    assert song.shape == audio.shape
    assert np.sqrt(np.mean(song**2)) == pytest.approx(np.sqrt(np.mean(audio**2)), rel=0.05)
    np.testing.assert_array_equal(song, small_bank.resynthesize(species, audio, rate, seed=0))


def test_unknown_species_and_bad_arguments(small_bank):
    with pytest.raises(KeyError, match="no model for species"):
        small_bank.sample("Dodo", n=1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        small_bank.sample(small_bank.species[0], n=0)
    assert small_bank.nbytes > 0
