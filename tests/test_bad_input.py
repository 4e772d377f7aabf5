"""Hostile-but-fair input: either correct audio or a clear error naming the argument (issue 14)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from ddsp_augment.augment.ddsp_synth import DDSPSynth
from ddsp_augment.cli import main
from ddsp_augment.constants import PEAK
from ddsp_augment.io import load_audio, resample, save_audio


@pytest.fixture(scope="module")
def song(tonal_clips):
    audio, rate = load_audio(tonal_clips["Parus_major"][0])
    return audio, rate


@pytest.mark.parametrize("rate", [8000, 16000, 96000])
def test_resynthesis_never_peaks_above_full_scale(song, small_bank_path, rate, one_torch_thread):
    audio, source_rate = song
    # Normalised as a dataset loader would: full-scale peak, the song's own crest factor.
    x = resample(audio, source_rate, rate)
    x = 0.9 * x / np.max(np.abs(x))
    for seed in range(3):
        out = DDSPSynth(small_bank_path, "Parus_major", p=1.0, seed=seed)(x, rate)
        assert out.shape == x.shape and out.dtype == np.float32
        assert np.max(np.abs(out)) <= 0.99, (rate, seed)


def test_a_louder_input_keeps_its_own_peak_as_the_limit(song, small_bank_path):
    audio, rate = song
    x = 1.5 * audio / np.max(np.abs(audio))  # float input beyond full scale is the user's call
    out = DDSPSynth(small_bank_path, "Parus_major", p=1.0, seed=0)(x, rate)
    assert np.max(np.abs(out)) <= 1.5


def test_mix_mode_at_0_db_stays_within_full_scale(song, small_bank_path):
    audio, rate = song
    x = 0.98 * audio / np.max(np.abs(audio))
    synth = DDSPSynth(small_bank_path, mode="mix", min_snr_db=0, max_snr_db=0, p=1.0, seed=0)
    for _ in range(3):
        assert np.max(np.abs(synth(x, rate))) <= 0.99


@pytest.mark.parametrize("mode", ["resynth", "mix"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_nan_or_inf_input_is_refused_in_both_modes(song, small_bank, mode, bad, p):
    audio, rate = song
    x = audio.copy()
    x[1000] = bad
    synth = DDSPSynth(small_bank, "Parus_major", mode=mode, p=p, seed=0)
    with pytest.raises(ValueError, match="samples contain NaN or infinite values"):
        synth(x, rate)


def test_integer_pcm_is_converted_like_soundfile_reads_it(song, small_bank, tmp_path):
    audio, rate = song
    save_audio(tmp_path / "x.wav", audio, rate)
    pcm, _ = __import__("soundfile").read(tmp_path / "x.wav", dtype="int16")
    as_read, _ = load_audio(tmp_path / "x.wav")
    np.testing.assert_array_equal(pcm / np.float32(32768), as_read)
    for mode in ("resynth", "mix"):
        from_int = DDSPSynth(small_bank, "Parus_major", mode=mode, p=1.0, seed=0)(pcm, rate)
        from_float = DDSPSynth(small_bank, "Parus_major", mode=mode, p=1.0, seed=0)(as_read, rate)
        assert from_int.dtype == np.float32
        np.testing.assert_array_equal(from_int, from_float)
        assert np.max(np.abs(from_int)) <= 0.99
    # Not applied: still float in [-1, 1], not the int16 scale.
    skipped = DDSPSynth(small_bank, "Parus_major", p=0.0, seed=0)(pcm, rate)
    np.testing.assert_array_equal(skipped, as_read)
    u8 = DDSPSynth(small_bank, "Parus_major", p=0.0)(np.array([0, 128, 255], np.uint8), rate)
    np.testing.assert_array_equal(u8, np.array([-1.0, 0.0, 127 / 128], np.float32))
    i32 = DDSPSynth(small_bank, "Parus_major", p=0.0)(np.array([-(2**31), 2**30], np.int32), rate)
    np.testing.assert_array_equal(i32, np.array([-1.0, 0.5], np.float32))


@pytest.mark.parametrize(
    ("samples", "rate", "error", "message"),
    [
        (np.zeros(100, np.uint16), 16000, TypeError, "got dtype uint16"),
        (np.zeros(100, bool), 16000, TypeError, "got dtype bool"),
        (np.zeros(100, np.complex64), 16000, TypeError, "got dtype complex64"),
        (np.zeros((2, 2, 100), np.float32), 16000, ValueError, r"got shape \(2, 2, 100\)"),
        (np.zeros(100, np.float32), 44100.5, TypeError, "sample_rate must be an int"),
        (np.zeros(100, np.float32), 0, ValueError, "sample_rate must be > 0"),
    ],
)
def test_unusable_input_is_refused_by_name(small_bank, samples, rate, error, message):
    with pytest.raises(error, match=message):
        DDSPSynth(small_bank, "Parus_major", p=1.0)(samples, rate)


def _draws(synth: DDSPSynth, n: int = 6) -> list[int]:
    x = np.zeros(10, np.float32)
    draws = []
    for _ in range(n):
        synth.randomize_parameters(x, 16000)
        draws.append(synth.parameters.get("synth_seed"))
    return draws


@pytest.mark.parametrize("seed", [0, None])
def test_an_unpickled_copy_does_not_repeat_its_parents_draws(small_bank_path, seed):
    parent = DDSPSynth(small_bank_path, "Parus_major", mode="mix", p=1.0, seed=seed)
    _draws(parent, 2)
    first = pickle.loads(pickle.dumps(parent))
    second = pickle.loads(pickle.dumps(parent))
    ahead = _draws(parent)
    draws = [_draws(first), _draws(second)]
    assert len({*ahead, *draws[0], *draws[1]}) == 18  # no draw repeats anywhere
    if seed is not None:
        # Copies are reproducible: the k-th copy of a transform seeded alike draws alike.
        again = DDSPSynth(small_bank_path, "Parus_major", mode="mix", p=1.0, seed=seed)
        _draws(again, 2)
        copies = [pickle.loads(pickle.dumps(again)) for _ in range(2)]
        assert [_draws(c) for c in copies] == draws
        assert _draws(again) == ahead


def test_sample_arguments_are_checked_by_name(small_bank):
    cases = [
        ({"n": 2.5}, TypeError, "n must be an int, got 2.5"),
        ({"n": 0}, ValueError, "n must be >= 1, got 0"),
        ({"seconds": float("nan")}, ValueError, "seconds must be finite and > 0, got nan"),
        ({"seconds": float("inf")}, ValueError, "seconds must be finite and > 0, got inf"),
        ({"seconds": "3"}, TypeError, "seconds must be a number"),
        ({"seconds": 1e-6}, ValueError, "seconds=1e-06 is shorter than one sample at 32000 Hz"),
        ({"sample_rate": 44100.5}, TypeError, "sample_rate must be an int, got 44100.5"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"seed": 1.5}, TypeError, "seed must be an int >= 0, a SeedSequence, a Generator"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            small_bank.sample("Parus_major", **kwargs)


def test_sample_accepts_a_generator_as_seed(small_bank):
    kwargs = {"n": 2, "seconds": 0.2, "sample_rate": 16000}
    rng = np.random.default_rng(0)
    a = small_bank.sample("Parus_major", seed=rng, **kwargs)
    b = small_bank.sample("Parus_major", seed=rng, **kwargs)
    again = small_bank.sample("Parus_major", seed=np.random.default_rng(0), **kwargs)
    assert a.shape == (2, 3200) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, again)  # a Generator seeded alike gives the same songs
    assert not np.allclose(a, b)  # and it advances: the next call gives new ones


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--seconds", "inf", "seconds must be finite and > 0, got inf"),
        ("--seconds", "nan", "seconds must be finite and > 0, got nan"),
        ("--seconds", "1e-6", "seconds=1e-06 is shorter than one sample at 32000 Hz"),
        ("--seed", "-1", "seed must be >= 0, got -1"),
        ("--n", "0", "n must be >= 1, got 0"),
    ],
)
def test_generate_refuses_bad_numbers_without_a_traceback(
    small_bank_path, tmp_path, capsys, option, value, message
):
    argv = ["generate", "--model_checkpoint", str(small_bank_path), "--output_path", str(tmp_path)]
    assert main([*argv, option, value]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"
    assert not any(tmp_path.iterdir())


def test_train_on_one_short_file_says_so_in_its_table(song, tmp_path, capsys):
    audio, rate = song
    raw = tmp_path / "raw" / "Parus_major"
    save_audio(raw / "short.wav", audio[: rate // 2], rate)  # one 0.5 s file
    processed, models = tmp_path / "processed", tmp_path / "models"
    assert (
        main(["preprocess", "--data_path", str(raw.parent), "--output_path", str(processed)]) == 0
    )
    capsys.readouterr()
    argv = ["train", "--data_path", str(processed), "--output_path", str(models)]
    settings = ["--epochs", "1", "--steps_per_epoch", "1", "--batch_size", "1", "--device", "cpu"]
    assert main([*argv, *settings]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("Parus_major "))
    assert row.split()[:2] == ["Parus_major", "trained*"]
    assert "[Parus_major] warning: only 0.5 s of training audio" in out  # the log says it too
    assert "* Parus_major: only 0.5 s of training audio" in out
    assert "* Parus_major: no held-out validation recording" in out


def test_the_peak_limit_is_the_largest_float32_not_above_0_99():
    # A clip scaled to 0.99 and stored as float32 would read 0.99000001.
    assert float(np.float32(PEAK)) == PEAK <= 0.99
    assert float(np.nextafter(np.float32(PEAK), np.float32(1.0))) > 0.99
