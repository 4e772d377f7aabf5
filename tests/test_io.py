"""Audio I/O: every kind of bad file is named, good files load, writes are atomic."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import XC_GERMANY

from ddsp_augment.io import (
    AudioError,
    atomic_write,
    load_audio,
    load_folder,
    resample,
    save_audio,
    scan_folder,
)


def _tone(freq: float, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(audio: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.argmax(spectrum) * sr / audio.size)


def test_roundtrip_wav_flac_ogg(tmp_path: Path) -> None:
    tone = _tone(2000.0, 32000)
    for ext in ("wav", "flac", "ogg"):
        path = tmp_path / f"tone.{ext}"
        sf.write(path, tone, 32000)
        audio, sr = load_audio(path)
        assert sr == 32000 and audio.dtype == np.float32 and audio.ndim == 1
        assert abs(audio.size - tone.size) <= 0.05 * tone.size  # ogg may pad
        assert abs(_peak_hz(audio, sr) - 2000.0) < 5.0


def test_stereo_mixdown_and_channels(tmp_path: Path) -> None:
    left, right = _tone(1000.0, 16000, amp=0.6), _tone(1000.0, 16000, amp=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    mono, _ = load_audio(path)
    np.testing.assert_allclose(mono, 0.5 * (left + right), atol=1e-6)
    both, _ = load_audio(path, mono=False)
    assert both.shape == (2, left.size)
    np.testing.assert_allclose(both[1], right, atol=1e-6)


def test_resample_44k1_to_32k_keeps_frequency(tmp_path: Path) -> None:
    path = tmp_path / "tone44.wav"
    sf.write(path, _tone(3000.0, 44100, seconds=2.0), 44100)
    audio, sr = load_audio(path, sample_rate=32000)
    assert sr == 32000
    assert abs(audio.size - 64000) <= 1
    assert abs(_peak_hz(audio, sr) - 3000.0) < 1.0
    # Level survives resampling (soxr passband is flat).
    rms = np.sqrt(np.mean(audio[1000:-1000] ** 2))
    assert abs(rms - 0.5 / np.sqrt(2)) < 0.01
    stereo = resample(np.stack([audio, audio]), 32000, 16000)
    assert stereo.shape == (2, 32000) and stereo.dtype == np.float32


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert info.value.path == path and "not found" in info.value.reason
    assert str(info.value).startswith(str(path))
    assert isinstance(info.value, ValueError)


def test_text_file_renamed_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not a recording\n" * 20)
    with pytest.raises(AudioError, match="notes.wav: unreadable or not audio"):
        load_audio(path)


def test_truncated_header(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    sf.write(good, _tone(1000.0, 32000), 32000, subtype="PCM_16")
    path = tmp_path / "truncated.wav"
    path.write_bytes(good.read_bytes()[:20])  # cut inside the 'fmt ' chunk
    with pytest.raises(AudioError, match="truncated.wav: unreadable"):
        load_audio(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 32000)
    with pytest.raises(AudioError, match="empty.wav: empty"):
        load_audio(path)
    zero_bytes = tmp_path / "zero.flac"
    zero_bytes.write_bytes(b"")
    with pytest.raises(AudioError, match="zero.flac"):
        load_audio(zero_bytes)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(tmp_path: Path, bad: float) -> None:
    audio = _tone(1000.0, 16000)
    audio[100] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="bad.wav: contains NaN or infinite"):
        load_audio(path)


def test_digital_silence(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent.wav: all samples are zero"):
        load_audio(path)


def test_clipped_warns_but_loads(tmp_path: Path) -> None:
    path = tmp_path / "hot.wav"
    sf.write(path, np.clip(3 * _tone(500.0, 16000), -1, 1), 16000, subtype="PCM_16")
    with pytest.warns(UserWarning, match="hot.wav: clipped"):
        audio, _ = load_audio(path)
    assert audio.size == 16000
    # A clean sine just below full scale is not clipping.
    clean = tmp_path / "clean.wav"
    sf.write(clean, _tone(500.0, 16000, amp=0.995), 16000, subtype="PCM_16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(clean)


def test_mp3_from_bundled_data() -> None:
    files = sorted(XC_GERMANY.glob("*/*.mp3"))
    audio, sr = load_audio(files[0], sample_rate=32000)
    assert sr == 32000 and audio.dtype == np.float32
    assert audio.size > sr and np.all(np.isfinite(audio)) and np.abs(audio).max() > 0


def test_save_audio_atomic_pcm16(tmp_path: Path) -> None:
    path = tmp_path / "out" / "song.wav"
    audio = _tone(1000.0, 32000)
    audio[:10] = 1.7  # beyond full scale: clipped, not wrapped
    save_audio(path, audio, 32000)
    info = sf.info(path)
    assert info.subtype == "PCM_16" and info.samplerate == 32000
    back, _ = sf.read(path, dtype="float32")
    assert np.all(back[:10] > 0.99)
    np.testing.assert_allclose(back[10:], audio[10:], atol=1e-4)
    assert [p.name for p in path.parent.iterdir()] == ["song.wav"]  # no temp left behind
    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "nan.wav", np.full(10, np.nan, np.float32), 32000)


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    atomic_write(path, lambda tmp: tmp.write_text("old"))
    assert path.read_text() == "old"
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)

    def crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, crash)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]
    # The temporary file carries the target's suffix, so np.savez writes where it is told.
    arrays = tmp_path / "arrays.npz"
    atomic_write(arrays, lambda tmp: np.savez(tmp, x=np.arange(3)))
    with np.load(arrays) as loaded:
        np.testing.assert_array_equal(loaded["x"], np.arange(3))


def _species_tree(root: Path) -> None:
    for species, names in {"b_species": ["2.wav", "1.flac"], "a_species": ["x.wav"]}.items():
        (root / species).mkdir(parents=True)
        for name in names:
            sf.write(root / species / name, _tone(2000.0, 16000, 0.2), 16000)
    (root / "a_species" / "readme.txt").write_text("not audio")
    (root / "b_species" / "broken.wav").write_text("not audio either")
    (root / "loose.wav").write_bytes(b"")  # not inside a species folder


def test_scan_folder_sorted(tmp_path: Path) -> None:
    _species_tree(tmp_path)
    found = [(p.relative_to(tmp_path).as_posix(), s) for p, s in scan_folder(tmp_path)]
    assert found == [
        ("a_species/x.wav", "a_species"),
        ("b_species/1.flac", "b_species"),
        ("b_species/2.wav", "b_species"),
        ("b_species/broken.wav", "b_species"),
    ]
    with pytest.raises(FileNotFoundError):
        scan_folder(tmp_path / "missing")


def test_load_folder_skips_and_reports(tmp_path: Path) -> None:
    _species_tree(tmp_path)
    with pytest.warns(UserWarning, match=r"skipped 1 unusable file\(s\): broken.wav"):
        loaded, skipped = load_folder(tmp_path, 32000)
    assert [(p.name, s) for p, s, _ in loaded] == [
        ("x.wav", "a_species"),
        ("1.flac", "b_species"),
        ("2.wav", "b_species"),
    ]
    assert all(a.size == 6400 for _, _, a in loaded)  # 0.2 s resampled to 32 kHz
    assert [(p.name, "unreadable" in r) for p, r in skipped] == [("broken.wav", True)]
    with pytest.raises(AudioError, match="broken.wav"):
        load_folder(tmp_path, 32000, on_error="raise")
