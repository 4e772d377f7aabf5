import numpy as np
import pytest
import soundfile as sf

from ddsp_augment.augment.wav_cache import SongCache

RATE = 16000


@pytest.fixture()
def song():
    return np.random.default_rng(0).uniform(-0.9, 0.9, 800).astype(np.float32)


def test_round_trip_is_bit_exact_and_settings_keep_files_apart(tmp_path, song):
    cache = SongCache(tmp_path / "songs", "settings A")
    assert cache.get("0-0-5", 800, RATE) is None  # absent: no directory yet
    cache.put("0-0-5", song, RATE)
    np.testing.assert_array_equal(cache.get("0-0-5", 800, RATE), song)
    other = SongCache(tmp_path / "songs", "settings B")
    assert other.path("0-0-5") != cache.path("0-0-5")
    assert other.get("0-0-5", 800, RATE) is None
    assert (
        cache.path("0-0-5").name.startswith("0-0-5-") and len(list(cache.directory.iterdir())) == 1
    )


@pytest.mark.parametrize(
    "damage",
    [
        lambda path, song: sf.write(str(path), song[:799], RATE, subtype="FLOAT"),  # truncated
        lambda path, song: sf.write(str(path), np.stack([song, song], 1), RATE, subtype="FLOAT"),
        lambda path, song: sf.write(str(path), song, 2 * RATE, subtype="FLOAT"),  # other rate
        lambda path, song: sf.write(str(path), np.full(800, np.nan, "f4"), RATE, subtype="FLOAT"),
        lambda path, song: path.write_bytes(b"RIFF\x00\x00"),  # not audio
        lambda path, song: path.write_bytes(path.read_bytes()[:100]),  # cut inside the header
    ],
    ids=["truncated", "stereo", "rate", "nan", "garbage", "cut-header"],
)
def test_damaged_files_read_as_missing_and_are_replaced(tmp_path, song, damage):
    cache = SongCache(tmp_path, "settings")
    cache.put("k", song, RATE)
    damage(cache.path("k"), song)
    assert cache.get("k", 800, RATE) is None
    cache.put("k", song, RATE)
    np.testing.assert_array_equal(cache.get("k", 800, RATE), song)
