import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TEST_DATA

from ddsp_augment.training.preprocess import load_processed, preprocess_folder

TIT = TEST_DATA / "Parus_major"


@pytest.fixture()
def raw(tmp_path):
    root = tmp_path / "raw"
    (root / "Parus_major").mkdir(parents=True)
    for f in sorted(TIT.glob("*.wav"))[:2]:
        shutil.copy(f, root / "Parus_major" / f.name)
    (root / "Parus_major" / "broken.wav").write_bytes(b"RIFF this is not audio")
    sf.write(root / "Parus_major" / "silent.wav", np.zeros(32000, np.float32), 32000)
    (root / "manifest.csv").write_text(
        "path,recordist\nParus_major/"
        + sorted((root / "Parus_major").glob("2021*"))[0].name
        + ",Ann\n"
    )
    return root


def test_preprocess_folder_skips_bad_files_and_summarises(raw, tmp_path):
    out = tmp_path / "processed"
    with pytest.warns(UserWarning, match="skipped 2 of 4"):
        summary = preprocess_folder(raw, out, progress=False)
    tit = summary["Parus_major"]
    assert tit["files"] == 2
    assert {Path(s["file"]).name for s in tit["skipped"]} == {"broken.wav", "silent.wav"}
    assert all(Path(s["file"]).name in s["reason"] for s in tit["skipped"])
    assert 0 < tit["voiced_seconds"] <= tit["seconds"]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["species"]["Parus_major"]["files"] == 2

    recordings = [load_processed(p) for p in sorted((out / "Parus_major").glob("*.npz"))]
    assert [r.recordist for r in recordings][0] == "Ann"
    for rec in recordings:
        assert rec.sample_rate == 32000
        assert rec.f0_hz.shape == rec.loudness_db.shape == (rec.audio.shape[0] // 64 + 1,)
        assert rec.segments.shape[1] == 2 and rec.background.shape == (1025,)
        # great tit song sits at 3-8 kHz: the voiced frames must say so
        voiced = rec.confidence > 0.5
        assert 2500 < np.median(rec.f0_hz[voiced]) < 9000


def test_rerun_reuses_up_to_date_outputs(raw, tmp_path):
    out = tmp_path / "processed"
    with pytest.warns(UserWarning):
        preprocess_folder(raw, out, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "Parus_major").glob("*.npz")}
    with pytest.warns(UserWarning):
        preprocess_folder(raw, out, progress=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_missing_folder_and_corrupt_output_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        preprocess_folder(tmp_path / "nowhere", tmp_path / "out", progress=False)
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="x.npz"):
        load_processed(bad)


def test_a_sound_held_through_the_recording_is_not_taken_for_background():
    """A tone over the whole clip is part of the measured floor; it is judged by level instead."""
    import numpy as np

    from ddsp_augment.training.preprocess import analyse_audio

    t = np.arange(32000) / 32000
    noise = 0.01 * np.random.default_rng(0).standard_normal(t.size)
    audio = (0.3 * np.sin(2 * np.pi * 3000 * t) + noise).astype(np.float32)
    rec = analyse_audio(audio, "tone.wav", "A", "r")
    assert rec.segments.tolist() == [[0, 501]]
