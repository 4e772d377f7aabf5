import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TEST_DATA

from ddsp_augment.training.preprocess import (
    PreprocessSettings,
    load_processed,
    preprocess_folder,
)

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


def test_the_analysis_band_is_stored_and_a_changed_band_analyses_again(raw, tmp_path):
    """--f_min/--f_max decide where F0 is tracked and the bird measured: the file keeps them
    (whatever measures the bird again uses them), and another band is not served stale."""
    out = tmp_path / "processed"
    with pytest.warns(UserWarning):
        preprocess_folder(raw, out, progress=False)
    files = sorted((out / "Parus_major").glob("*.npz"))
    assert {load_processed(p).band for p in files} == {(1000.0, 12000.0)}
    stamps = {p: p.stat().st_mtime_ns for p in files}
    with pytest.warns(UserWarning):
        preprocess_folder(raw, out, PreprocessSettings(f_min=500.0), progress=False)
    assert all(p.stat().st_mtime_ns != stamps[p] for p in files)
    assert {load_processed(p).band for p in files} == {(500.0, 12000.0)}
    path = files[0]
    with np.load(path) as data:
        old = {k: data[k] for k in data.files if k != "band"}
    np.savez(path, **old)  # as written before the band was stored: the defaults
    assert load_processed(path).band == (1000.0, 12000.0)


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


class _HighPitchScreen:
    """A stand-in for BirdNET: hears "Other bird" in a stretch whose loudest bin is over 4.5 kHz."""

    def __init__(self, name: str = "pitch>4.5k") -> None:
        self.name = name
        self.calls = 0

    def __call__(self, audio, sample_rate, species, location):
        self.calls += 1
        spectrum = np.abs(np.fft.rfft(audio))
        peak_hz = np.argmax(spectrum) * sample_rate / audio.size
        return "Other bird" if peak_hz > 4500 else None


class _NorthernScreen(_HighPitchScreen):
    """The "other bird" lives only north of the equator: elsewhere its song is the species' own."""

    def __init__(self) -> None:
        super().__init__("pitch>4.5k, north")
        self.locations = set()

    def __call__(self, audio, sample_rate, species, location):
        self.locations.add(location)
        heard = super().__call__(audio, sample_rate, species, location)
        return heard if location is None or location[0] > 0 else None


def _bursts(pitches_hz: list[float], seconds: float = 0.4, gap: float = 0.6) -> np.ndarray:
    """Tone bursts at ``pitches_hz`` in turn, ``gap`` s apart, over a faint noise floor."""
    sr = 32000
    rng = np.random.default_rng(0)
    parts = [np.zeros(int(gap * sr))]
    for hz in pitches_hz:
        t = np.arange(int(seconds * sr)) / sr
        parts += [0.3 * np.sin(2 * np.pi * hz * t) * np.hanning(t.size), np.zeros(int(gap * sr))]
    audio = np.concatenate(parts)
    return (audio + 0.003 * rng.standard_normal(audio.size)).astype(np.float32)


def test_a_screen_leaves_out_the_stretches_of_another_species():
    from ddsp_augment.training.preprocess import analyse_audio

    audio = _bursts([3000, 6000, 3000])  # bursts start at 0.6, 1.6 and 2.6 s
    plain = analyse_audio(audio, "mix.wav", "A", "r")
    screened = analyse_audio(audio, "mix.wav", "A", "r", screen=_HighPitchScreen())
    assert len(plain.segments) == 3 and plain.screened == ()
    assert screened.segments.tolist() == plain.segments[[0, 2]].tolist()
    [(start, end, heard)] = screened.screened
    assert heard == "Other bird" and [start, end] == plain.segments[1].tolist()
    # The left-out stretch is the 6 kHz burst (1.6-2.0 s, padded by 20 ms)
    assert 1.5 < start * 64 / 32000 < 1.6 and 2.0 < end * 64 / 32000 < 2.1


def test_a_recording_of_only_another_species_is_skipped_with_the_reason(tmp_path):
    root = tmp_path / "raw" / "A"
    root.mkdir(parents=True)
    sf.write(root / "own.wav", _bursts([3000, 6000]), 32000)
    sf.write(root / "other.wav", _bursts([6000, 7000]), 32000)
    with pytest.warns(UserWarning) as caught:
        summary = preprocess_folder(
            tmp_path / "raw", tmp_path / "out", progress=False, screen=_HighPitchScreen()
        )
    messages = " ".join(str(w.message) for w in caught)
    assert "skipped 1 of 2" in messages and "left out 1 stretches (0.4 s)" in messages
    [skipped] = summary["A"]["skipped"]
    assert skipped["file"].endswith("other.wav")
    assert skipped["reason"].endswith(
        "every active stretch is heard as another species: Other bird"
    )
    [left_out] = summary["A"]["screened"]
    assert left_out["file"].endswith("own.wav") and left_out["heard"] == "Other bird"
    assert left_out["end_s"] - left_out["start_s"] == pytest.approx(0.42, abs=0.03)
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["species"]["A"]["screened"] == summary["A"]["screened"]


def test_screened_files_round_trip_and_a_changed_screen_redoes_them(tmp_path):
    root = tmp_path / "raw" / "A"
    root.mkdir(parents=True)
    sf.write(root / "own.wav", _bursts([3000, 6000]), 32000)
    out = tmp_path / "out"
    screen = _HighPitchScreen()
    with pytest.warns(UserWarning, match="left out 1"):
        preprocess_folder(tmp_path / "raw", out, progress=False, screen=screen)
    rec = load_processed(out / "A" / "own.npz")
    assert len(rec.segments) == 1 and [s.heard for s in rec.screened] == ["Other bird"]
    stamp = (out / "A" / "own.npz").stat().st_mtime_ns

    with pytest.warns(UserWarning, match="left out 1"):  # the same screen: cached, still listed
        preprocess_folder(tmp_path / "raw", out, progress=False, screen=screen)
    assert (out / "A" / "own.npz").stat().st_mtime_ns == stamp and screen.calls == 2

    preprocess_folder(tmp_path / "raw", out, progress=False)  # no screen: analysed again
    rec = load_processed(out / "A" / "own.npz")
    assert len(rec.segments) == 2 and rec.screened == ()
    with pytest.warns(UserWarning, match="left out 1"):
        preprocess_folder(tmp_path / "raw", out, progress=False, screen=_HighPitchScreen("v2"))
    assert len(load_processed(out / "A" / "own.npz").segments) == 1


def test_files_written_before_screens_load_and_count_as_unscreened(tmp_path):
    root = tmp_path / "raw" / "A"
    root.mkdir(parents=True)
    sf.write(root / "own.wav", _bursts([3000, 6000]), 32000)
    out = tmp_path / "out"
    preprocess_folder(tmp_path / "raw", out, progress=False)
    path = out / "A" / "own.npz"
    with np.load(path) as data:
        old = {k: data[k] for k in data.files if not k.startswith("screen")}
    np.savez(path, **old)  # as written before screening existed
    stamp = path.stat().st_mtime_ns
    rec = load_processed(path)
    assert rec.screened == () and len(rec.segments) == 2
    preprocess_folder(tmp_path / "raw", out, progress=False)  # no screen: still up to date
    assert path.stat().st_mtime_ns == stamp


def test_locations_are_read_from_the_manifest(tmp_path):
    from ddsp_augment.io import PathError
    from ddsp_augment.training.preprocess import read_locations

    manifest = tmp_path / "manifest.csv"
    assert read_locations(tmp_path) == {}  # no manifest
    manifest.write_text("path,recordist\nA/a.wav,r\n")
    assert read_locations(tmp_path) == {}  # no location columns
    # BirdCLEF's train_metadata.csv names; xeno-canto leaves some sites blank.
    manifest.write_text("path,latitude,longitude\nA/a.wav,51.5,-0.25\nA/b.wav,,\n")
    assert read_locations(tmp_path) == {"A/a.wav": (51.5, -0.25)}
    manifest.write_text("path,lat,lng\nA/a.wav,51.5,10\nA/b.wav,north,10\n")
    with pytest.raises(PathError, match=r"manifest.csv: line 3 \(A/b.wav\): .* 'north', '10'"):
        read_locations(tmp_path)
    manifest.write_text("path,lat,lon\nA/a.wav,95,10\n")
    with pytest.raises(PathError, match="line 2 .* not a latitude in"):
        read_locations(tmp_path)


def test_birdclef_metadata_serves_as_the_manifest(tmp_path):
    """BirdCLEF's train_metadata.csv names (filename, author, latitude, longitude), in any case,
    saved by a spreadsheet (a byte-order mark first), read as ours."""
    from ddsp_augment.training.preprocess import read_locations, read_manifest

    (tmp_path / "manifest.csv").write_text(
        "\ufeffprimary_label,FileName,Author,Latitude,Longitude\n"
        "A,A/XC1.ogg,Ann,51.5,10.25\nA,A/XC2.ogg,Bo\n",
        encoding="utf-8",
    )
    assert read_manifest(tmp_path) == {"A/XC1.ogg": "Ann", "A/XC2.ogg": "Bo"}
    assert read_locations(tmp_path) == {"A/XC1.ogg": (51.5, 10.25)}


def test_each_recording_is_screened_where_the_manifest_says_it_was_made(tmp_path):
    """The screen hears where each recording was made; moving one re-analyses that one only."""
    raw = tmp_path / "raw"
    (raw / "A").mkdir(parents=True)
    for name in ("north.wav", "south.wav"):
        sf.write(raw / "A" / name, _bursts([3000, 6000]), 32000)
    manifest = "path,recordist,lat,lng\nA/north.wav,r1,51.5,10.25\nA/south.wav,r2,{},18.4\n"
    (raw / "manifest.csv").write_text(manifest.format(-33.9))
    out, screen = tmp_path / "out", _NorthernScreen()
    with pytest.warns(UserWarning, match="left out 1"):
        preprocess_folder(raw, out, progress=False, screen=screen)
    assert screen.locations == {(51.5, 10.25), (-33.9, 18.4)}
    assert len(load_processed(out / "A" / "north.npz").screened) == 1
    assert len(load_processed(out / "A" / "south.npz").segments) == 2  # kept: its own song there

    stamp = (out / "A" / "north.npz").stat().st_mtime_ns
    (raw / "manifest.csv").write_text(manifest.format(33.9))
    with pytest.warns(UserWarning, match="left out 2"):
        preprocess_folder(raw, out, progress=False, screen=screen)
    assert (out / "A" / "north.npz").stat().st_mtime_ns == stamp
    assert len(load_processed(out / "A" / "south.npz").screened) == 1
