import json
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from ddsp_augment.cli import build_parser, format_table, main

ROOT = REPO


@pytest.mark.parametrize(
    "argv",
    [
        ["preprocess", "--data_path", "in/", "--output_path", "out/", "--sample_rate", "22050"],
        ["preprocess", "--data-path", "in/", "--output-path", "out/", "--sample-rate", "22050"],
    ],
)
def test_underscore_and_dashed_spellings_parse_alike(argv):
    args = build_parser().parse_args(argv)
    assert (args.data_path, args.output_path, args.sample_rate) == ("in/", "out/", 22050)


@pytest.mark.parametrize(
    "spelling", [("--f_min", "--f_max"), ("--f-min", "--f-max"), ("--fmin", "--fmax")]
)
def test_f0_band_flags_keep_their_earlier_spelling(spelling):
    args = build_parser().parse_args(["preprocess", spelling[0], "1500", spelling[1], "9000"])
    assert (args.f_min, args.f_max) == (1500.0, 9000.0)


def test_defaults_follow_the_plan_layout():
    parser = build_parser()
    assert parser.parse_args(["preprocess"]).data_path == "data/raw/"
    assert parser.parse_args(["preprocess"]).output_path == "data/processed/"
    train = parser.parse_args(["train"])
    assert (train.data_path, train.output_path, train.epochs) == (
        "data/processed/",
        "models/",
        None,
    )
    evaluate = parser.parse_args(["evaluate"])
    assert (evaluate.generated_path, evaluate.output_path) == (
        "results/songs/",
        "results/evaluation/",
    )
    assert evaluate.judge == "none"
    assert parser.parse_args(["evaluate", "--judge", "birdnet"]).judge == "birdnet"


def test_generate_options_cover_jitter_and_scene():
    args = build_parser().parse_args(
        [
            "generate",
            "--model-checkpoint",
            "models/x",
            "--n",
            "2",
            "--pitch-cents",
            "40",
            "--tempo",
            "0.95",
            "1.05",
            "--gap_seconds",
            "0.1",
            "--no-recombine",
            "--syntax",
            "markov",
            "--tempo-scope",
            "phrase",
            "--distance_m",
            "10",
            "30",
            "--reverb",
            "0.8",
            "--wind",
            "--rain",
            "0.5",
            "--snr-db",
            "10",
            "20",
        ]
    )
    assert args.model_checkpoint == "models/x" and args.n == 2 and args.pitch_cents == 40.0
    assert args.tempo == (0.95, 1.05) and args.gap_seconds == (0.1, 0.1)
    assert args.recombine is False and args.syntax == "markov" and args.tempo_scope == "phrase"
    assert (args.distance_m, args.reverb, args.wind, args.rain) == (
        (10.0, 30.0),
        (0.8, 0.8),
        1.0,
        0.5,
    )
    assert args.snr_db == (10.0, 20.0) and args.background is None


def test_a_range_of_three_values_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["generate", "--tempo", "0.9", "1.0", "1.1"])
    assert exit_info.value.code == 2
    assert "expected MIN [MAX]" in capsys.readouterr().err


def _user_error(argv, capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.err.startswith("error: ")
    return captured.err


def test_user_errors_exit_2_with_the_file_named(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert f"error: {missing}: no such folder" in _user_error(
        ["preprocess", "--data_path", str(missing)], capsys
    )
    assert str(missing) in _user_error(["train", "--data-path", str(missing)], capsys)
    assert str(missing) in _user_error(["generate", "--model_checkpoint", str(missing)], capsys)
    pth = tmp_path / "ddsp_model.pth"
    pth.write_bytes(b"\x80\x02 a pickled torch checkpoint")
    assert "not a model directory" in _user_error(
        ["generate", "--model_checkpoint", str(pth)], capsys
    )
    foreign = tmp_path / "models" / "Parus_major"
    foreign.mkdir(parents=True)
    (foreign / "config.json").write_text(json.dumps({"format": "some-other-tool"}))
    err = _user_error(["generate", "--model_checkpoint", str(tmp_path / "models")], capsys)
    assert f"{foreign / 'config.json'}: not a ddsp-augment-species-model config" in err
    sidecar = tmp_path / "song.json"
    sidecar.write_text("{not json")
    assert f"{sidecar}: not valid JSON" in _user_error(
        ["generate", "--from_sidecar", str(sidecar)], capsys
    )


def test_invalid_option_values_are_user_errors(small_bank_path, tmp_path, capsys):
    err = _user_error(
        [
            "generate",
            "--model_checkpoint",
            str(small_bank_path),
            "--output_path",
            str(tmp_path),
            "--pitch_cents",
            "5000",
        ],
        capsys,
    )
    assert "pitch_cents" in err
    assert not any(tmp_path.iterdir())  # nothing written before the error


def test_preprocess_train_generate_regenerate_evaluate(
    tonal_clips, small_bank_path, tmp_path, capsys
):
    raw = tmp_path / "raw" / "Parus_major"
    raw.mkdir(parents=True)
    for path in tonal_clips["Parus_major"][:2]:
        shutil.copy(path, raw / path.name)
    (raw / "broken.wav").write_bytes(b"RIFF not audio")
    processed = tmp_path / "processed"
    assert (
        main(["preprocess", "--data-path", str(raw.parent), "--output_path", str(processed)]) == 0
    )
    out = capsys.readouterr().out
    assert "species" in out and "voiced seconds" in out and "summary.json" in out
    assert "Parus_major      2" in out and "broken.wav" in out

    models = tmp_path / "models"
    argv = [
        "train",
        "--data_path",
        str(processed),
        "--output-path",
        str(models),
        "--epochs",
        "1",
        "--steps_per_epoch",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "trained" in out and (models / "Parus_major" / "config.json").is_file()
    stacked = tmp_path / "stacked"
    assert main([*argv, "--output_path", str(stacked), "--together"]) == 0
    assert "trained" in capsys.readouterr().out
    assert (stacked / "Parus_major" / "config.json").is_file()
    assert len(list((stacked / "checkpoints").glob("stacked-*/state.safetensors"))) == 1

    songs = tmp_path / "songs"
    argv = [
        "generate",
        "--model_checkpoint",
        str(small_bank_path / "Parus_major"),
        "--output-path",
        str(songs),
        "--n",
        "2",
        "--seconds",
        "1",
        "--seed",
        "3",
        "--distance_m",
        "20",
        "--background",
        "measured",
        "--real_path",
        str(raw.parent),
    ]
    assert main(argv) == 0
    assert "Parus_major_3_contact_sheet.png" in capsys.readouterr().out
    sidecar = songs / "Parus_major" / "Parus_major_3_1.json"
    assert json.loads(sidecar.read_text())["scene"]["background"] == "measured"
    assert (
        main(["generate", "--from-sidecar", str(sidecar), "--output_path", str(tmp_path / "again")])
        == 0
    )
    assert "identical" in capsys.readouterr().out
    again = tmp_path / "again" / "Parus_major" / "Parus_major_3_1.wav"
    assert again.read_bytes() == sidecar.with_suffix(".wav").read_bytes()

    report = tmp_path / "evaluation"
    argv = [
        "evaluate",
        "--generated_path",
        str(songs),
        "--real-path",
        str(processed),
        "--output_path",
        str(report),
    ]
    assert main(argv) == 0
    assert "| Parus_major |" in capsys.readouterr().out
    assert (report / "evaluation.json").is_file() and (report / "evaluation.md").is_file()


def test_python_dash_m_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "ddsp_augment", "generate", "--model_checkpoint", "/nonexistent/m"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: /nonexistent/m: no such model directory")


def test_format_table_aligns_columns():
    table = format_table(["species", "files", "seconds"], [["a", 2, 1.5], ["long_name", 10, None]])
    lines = table.splitlines()
    assert lines[0] == "species    files  seconds"
    assert lines[2] == "a              2     1.50"
    assert lines[3] == "long_name     10        -"


def test_generate_through_the_light_gate(tonal_clips, small_bank_path, tmp_path, capsys):
    """``generate --gate light`` fits its judge on --real_path's recordings and redraws songs
    it doubts; each sidecar holds the verdict. Without real recordings of 2 species, or of the
    species generated, it stops before writing anything, saying why."""
    real = tmp_path / "real"
    for species, paths in tonal_clips.items():
        (real / species).mkdir(parents=True)
        for path in paths:
            shutil.copy(path, real / species / path.name)
    songs = tmp_path / "songs"
    argv = ["generate", "--model_checkpoint", str(small_bank_path), "--output_path", str(songs)]
    argv += ["--n", "2", "--seconds", "1", "--gate", "light", "--max_draws", "3"]
    assert main([*argv, "--real_path", str(real)]) == 0
    out = capsys.readouterr().out
    assert "gate (light, min_confidence 0.5): " in out and "songs accepted" in out
    sidecars = sorted(songs.glob("*/*.json"))
    assert len(sidecars) == 4
    for sidecar in sidecars:
        verdict = json.loads(sidecar.read_text())["gate"]
        assert 1 <= verdict["draws"] <= 3
        assert verdict["accepted"] == (verdict["confidence"] >= 0.5)
    assert main(argv) == 2
    assert "--gate light fits its judge on real recordings: give --real_path" in (
        capsys.readouterr().err
    )
    shutil.rmtree(real / "Fringilla_coelebs")
    shutil.rmtree(songs)
    assert main([*argv, "--real_path", str(real)]) == 2
    assert "at least two species" in capsys.readouterr().err
    shutil.copytree(real / "Parus_major", real / "Turdus_merula")
    assert main([*argv, "--real_path", str(real)]) == 2
    assert "no real recordings of Fringilla_coelebs in" in capsys.readouterr().err
    assert not songs.exists()
