import numpy as np
import pytest

from ddsp_augment.features.contours import ContourBank, Segment, find_segments


def test_find_segments_bridges_short_gaps_and_drops_clicks():
    frame_rate = 500.0
    loud = np.full(1000, -90.0, np.float32)
    loud[100:200] = -20  # syllable
    loud[230:300] = -25  # 60 ms later: same phrase
    loud[600:605] = -10  # 10 ms click
    loud[800:900] = -30
    segments = find_segments(
        loud, frame_rate, min_seconds=0.03, merge_gap_seconds=0.1, pad_seconds=0
    )
    assert segments == [(100, 300), (800, 900)]


def test_find_segments_pads_and_clips_at_edges():
    loud = np.full(100, -90.0, np.float32)
    loud[0:50] = -10
    assert find_segments(loud, 500.0, pad_seconds=0.02) == [(0, 60)]


def test_contour_bank_repr():
    segments = [
        Segment(np.full(n, 3000.0, np.float32), np.zeros(n, np.float32), np.ones(n, np.float32), r)
        for n, r in ((500, "a.wav"), (250, "b.wav"), (250, "a.wav"))
    ]
    assert repr(ContourBank(segments, 32000, 64)) == (
        "ContourBank(3 segments, 2.00 s from 2 recordings, sample_rate=32000, hop_length=64)"
    )


def test_contour_bank_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    segments = [
        Segment(
            rng.uniform(2000, 4000, n).astype(np.float32),
            rng.uniform(-60, -10, n).astype(np.float32),
            rng.uniform(0, 1, n).astype(np.float32),
            f"rec{i}",
        )
        for i, n in enumerate([10, 25, 7])
    ]
    ContourBank(segments, 32000, 64).save(tmp_path / "c.npz")
    loaded = ContourBank.load(tmp_path / "c.npz")
    assert (loaded.sample_rate, loaded.hop_length, len(loaded)) == (32000, 64, 3)
    for a, b in zip(segments, loaded.segments, strict=True):
        np.testing.assert_array_equal(a.f0_hz, b.f0_hz)
        np.testing.assert_array_equal(a.confidence, b.confidence)
        assert a.recording == b.recording


def test_contour_bank_rejects_truncated_file(tmp_path):
    path = tmp_path / "c.npz"
    segment = Segment(*(np.ones(50, np.float32) for _ in range(3)), "r")
    ContourBank([segment], 32000, 64).save(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="c.npz"):
        ContourBank.load(path)


def test_contour_bank_keeps_residuals_in_half_precision(tmp_path):
    rng = np.random.default_rng(1)
    segments = [
        Segment(
            *(rng.uniform(1, 2, n).astype(np.float32) for _ in range(3)),
            f"rec{i}",
            rng.uniform(-120, 0, (n, 257)).astype(np.float32),
        )
        for i, n in enumerate([10, 25])
    ]
    bank = ContourBank(segments, 32000, 64)
    assert bank.has_residual
    bank.save(tmp_path / "c.npz")
    loaded = ContourBank.load(tmp_path / "c.npz")
    assert loaded.has_residual
    for a, b in zip(segments, loaded.segments, strict=True):
        assert b.residual_db.dtype == np.float16
        np.testing.assert_allclose(b.residual_db, a.residual_db, atol=0.07)  # float16 steps
    before = loaded.nbytes
    f0, loud, residual = loaded.concatenated()
    assert f0.shape == loud.shape == (35,) and residual.shape == (35, 257)
    assert np.shares_memory(residual, loaded.segments[1].residual_db)  # loaded: views, no copy
    assert loaded.nbytes == before == 35 * (3 * 4 + 257 * 2)
    # Built in memory, the segments are concatenated once, a copy counted in nbytes.
    bank.concatenated()
    assert bank.nbytes == 35 * (3 * 4 + 257 * 4) + 35 * (2 * 4 + 257 * 4)
    assert bank.concatenated()[2] is bank.concatenated()[2]
    # One segment without a residual (an older model's bank): none is saved or offered.
    partial = ContourBank([segments[0], Segment(*(np.ones(5, np.float32),) * 3, "r")], 32000, 64)
    partial.save(tmp_path / "p.npz")
    assert not ContourBank.load(tmp_path / "p.npz").has_residual
    assert partial.concatenated()[2] is None


def test_residuals_of_the_old_kind_are_left_out_on_load(tmp_path):
    """A file without ``residual_version`` holds residuals measured against the dry harmonics
    (version 1): loaded without them, and marked stale so the bank can say to retrain."""
    from ddsp_augment.features.residual import RESIDUAL_VERSION

    segment = Segment(*(np.ones(5, np.float32),) * 3, "r", np.zeros((5, 257), np.float32))
    ContourBank([segment], 32000, 64).save(tmp_path / "new.npz")
    new = ContourBank.load(tmp_path / "new.npz")
    assert new.has_residual and not new.stale_residual and RESIDUAL_VERSION == 2
    with np.load(tmp_path / "new.npz") as data:
        assert int(data["residual_version"]) == RESIDUAL_VERSION
        arrays = {k: data[k] for k in data.files if k != "residual_version"}
    np.savez(tmp_path / "old.npz", **arrays)
    old = ContourBank.load(tmp_path / "old.npz")
    assert not old.has_residual and old.stale_residual and old.concatenated()[2] is None
    np.testing.assert_array_equal(old.concatenated()[0], new.concatenated()[0])
