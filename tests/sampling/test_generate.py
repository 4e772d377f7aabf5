import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from ddsp_augment.io import AudioError, PathError
from ddsp_augment.model.storage import ModelFileError, find_model_dirs
from ddsp_augment.sampling.generate import (
    SidecarError,
    generate_songs,
    read_sidecar,
    regenerate,
)
from ddsp_augment.sampling.scene import SceneConfig

SIDECAR_KEYS = {
    "species",
    "seed",
    "index",
    "seconds",
    "sample_rate",
    "backend",
    "noise",
    "jitter",
    "scene",
    "model",
    "versions",
    "wav_sha256",
}


@pytest.fixture(scope="module")
def songs(small_bank_path, tonal_clips, tmp_path_factory):
    """Two 1 s songs per bank species, with real clips for the contact sheets."""
    real = tmp_path_factory.mktemp("real")
    for species, paths in tonal_clips.items():
        (real / species).mkdir()
        for path in paths:
            shutil.copy(path, real / species / path.name)
    out = tmp_path_factory.mktemp("songs")
    written = generate_songs(
        small_bank_path,
        out,
        n=2,
        seconds=1.0,
        seed=7,
        sample_rate=22050,
        jitter={"pitch_cents": 30.0, "tempo": (1.0, 1.0)},
        real_path=real,
        progress=False,
    )
    return out, written


def test_generate_writes_wav_png_and_sidecar_per_song(songs, small_bank_path):
    out, written = songs
    assert sorted(written) == ["Fringilla_coelebs", "Parus_major"]
    for species, wavs in written.items():
        assert [w.name for w in wavs] == [f"{species}_7_0.wav", f"{species}_7_1.wav"]
        for wav in wavs:
            audio, rate = sf.read(wav)
            assert rate == 22050 and audio.shape == (22050,) and np.abs(audio).max() > 0
            assert wav.with_suffix(".png").stat().st_size > 1000
            sidecar = json.loads(wav.with_suffix(".json").read_text())
            assert SIDECAR_KEYS <= set(sidecar)
            assert sidecar["jitter"]["pitch_cents"] == 30.0
            assert sidecar["jitter"]["tempo"] == [1.0, 1.0]
            assert sidecar["model"]["directory"] == str((small_bank_path / species).resolve())
            assert len(sidecar["model"]["sha256"]["weights.safetensors"]) == 64
        assert (out / species / f"{species}_7_contact_sheet.png").stat().st_size > 1000
    songs_a = [sf.read(w)[0] for w in written["Parus_major"]]
    assert not np.array_equal(songs_a[0], songs_a[1])


def test_regenerating_from_a_sidecar_is_bit_identical(songs, tmp_path):
    out, written = songs
    original = written["Fringilla_coelebs"][1]
    wav, identical = regenerate(original.with_suffix(".json"), tmp_path)
    assert identical
    assert wav == tmp_path / "Fringilla_coelebs" / original.name
    assert wav.read_bytes() == original.read_bytes()


def test_syntax_round_trips_and_old_sidecars_read_as_shuffle(small_bank_path, tmp_path):
    written = generate_songs(
        small_bank_path / "Parus_major",
        tmp_path / "a",
        n=1,
        seconds=0.5,
        jitter={"syntax": "markov"},
        progress=False,
    )
    sidecar = written["Parus_major"][0].with_suffix(".json")
    request, payload = read_sidecar(sidecar)
    assert request.jitter.syntax == "markov"
    wav, identical = regenerate(sidecar, tmp_path / "b")
    assert identical and wav.read_bytes() == written["Parus_major"][0].read_bytes()
    # A sidecar written before syntax models has no "syntax": its songs were shuffled.
    del payload["jitter"]["syntax"]
    sidecar.write_text(json.dumps(payload))
    assert read_sidecar(sidecar)[0].jitter.syntax == "shuffle"


def test_noise_round_trips_and_old_sidecars_read_as_decoder_noise(small_bank_path, tmp_path):
    written = generate_songs(
        small_bank_path / "Parus_major", tmp_path / "a", n=1, seconds=0.5, noise="model",
        progress=False,
    )  # fmt: skip
    sidecar = written["Parus_major"][0].with_suffix(".json")
    request, payload = read_sidecar(sidecar)
    assert request.noise == payload["noise"] == "model"
    wav, identical = regenerate(sidecar, tmp_path / "b")
    assert identical
    default = generate_songs(small_bank_path / "Parus_major", tmp_path / "c", n=1, seconds=0.5,
                             progress=False)  # fmt: skip
    assert read_sidecar(default["Parus_major"][0].with_suffix(".json"))[0].noise == "recorded"
    assert default["Parus_major"][0].read_bytes() != wav.read_bytes()
    # A sidecar written before recorded residuals has no "noise": the decoder's noise sang.
    del payload["noise"]
    sidecar.write_text(json.dumps(payload))
    assert read_sidecar(sidecar)[0].noise == "model"
    with pytest.raises(ValueError, match="noise"):
        generate_songs(small_bank_path, tmp_path / "d", n=1, noise="white", progress=False)


def test_scene_round_trips_through_the_sidecar(small_bank_path, tmp_path):
    scene = SceneConfig(distance_m=(20.0, 40.0), rt60_s=(0.5, 1.0), background="measured")
    written = generate_songs(
        small_bank_path / "Parus_major",
        tmp_path / "a",
        n=1,
        seconds=0.5,
        scene=scene,
        progress=False,
    )
    sidecar = written["Parus_major"][0].with_suffix(".json")
    request, _ = read_sidecar(sidecar)
    assert request.scene == scene
    wav, identical = regenerate(sidecar, tmp_path / "b")
    assert identical and wav.read_bytes() == written["Parus_major"][0].read_bytes()


def test_regenerate_refuses_changed_model_files(songs, small_bank_path, tmp_path):
    out, written = songs
    moved = tmp_path / "models" / "Parus_major"
    shutil.copytree(small_bank_path / "Parus_major", moved)
    with np.load(moved / "backgrounds.npz") as data:
        backgrounds = data["backgrounds"] * 2
    np.savez(moved / "backgrounds.npz", backgrounds=backgrounds)
    with pytest.raises(SidecarError, match="backgrounds.npz"):
        regenerate(written["Parus_major"][0].with_suffix(".json"), tmp_path, model_path=moved)


def test_bad_sidecars_and_model_paths_are_named(tmp_path, small_bank_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(SidecarError, match="x.json"):
        read_sidecar(bad)
    with pytest.raises(SidecarError, match="no such sidecar"):
        read_sidecar(tmp_path / "missing.json")
    pth = tmp_path / "ddsp_model.pth"
    pth.write_bytes(b"\x80\x02pickle")
    with pytest.raises(ModelFileError, match="not a model directory"):
        find_model_dirs(pth)
    with pytest.raises(ModelFileError, match="no model for species"):
        find_model_dirs(small_bank_path, ["Turdus_merula"])


def test_file_errors_share_one_base(tmp_path):
    """AudioError, ModelFileError and SidecarError are PathErrors: path, reason, message."""
    for error_type in (AudioError, ModelFileError, SidecarError):
        error = error_type(tmp_path / "x.bin", "broken")
        assert isinstance(error, PathError) and isinstance(error, ValueError)
        assert (error.path, error.reason) == (tmp_path / "x.bin", "broken")
        assert str(error) == f"{tmp_path / 'x.bin'}: broken"


def test_a_gated_song_is_the_first_accepted_draw_and_regenerates_without_the_judge(
    small_bank_path, tmp_path
):
    """Song 0's draws are judged 0.1, 0.2, 0.9: draw 2 is kept and its sidecar says so; song 1
    is never accepted in its 3 draws (0.4, 0.3, 0.2), so its best, draw 0, is kept, marked so.
    Ungated songs are draw 0: the same audio as before the gate existed."""
    from ddsp_augment.sampling.gate import GateStats

    verdicts = iter([0.1, 0.2, 0.9, 0.4, 0.3, 0.2])
    stats = GateStats()
    out = tmp_path / "gated"
    written = generate_songs(
        small_bank_path,
        out,
        n=2,
        seconds=0.5,
        seed=3,
        species=["Parus_major"],
        progress=False,
        gate=(lambda audio, rate, species: next(verdicts), 0.5),
        max_draws=3,
        gate_stats=stats,
    )
    assert (stats.items, stats.draws, stats.accepted) == (2, 6, 1)
    first, second = (json.loads(w.with_suffix(".json").read_text()) for w in written["Parus_major"])
    assert (first["draw"], first["gate"]["accepted"], first["gate"]["confidence"]) == (2, True, 0.9)
    assert (second["draw"], second["gate"]["accepted"], second["gate"]["draws"]) == (0, False, 3)
    plain = generate_songs(
        small_bank_path,
        tmp_path / "plain",
        n=2,
        seconds=0.5,
        seed=3,
        species=["Parus_major"],
        progress=False,
    )["Parus_major"]
    np.testing.assert_array_equal(sf.read(plain[1])[0], sf.read(written["Parus_major"][1])[0])
    assert not np.array_equal(sf.read(plain[0])[0], sf.read(written["Parus_major"][0])[0])
    wav, identical = regenerate(written["Parus_major"][0].with_suffix(".json"))
    assert identical and read_sidecar(wav.with_suffix(".json"))[0].draw == 2
    with pytest.raises(ValueError, match="max_draws must be an int >= 1"):
        generate_songs(small_bank_path, out, gate=(lambda *a: 1.0, 0.5), max_draws=0)
