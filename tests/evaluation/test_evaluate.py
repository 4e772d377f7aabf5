import json
import math
import shutil

import pytest

from ddsp_augment.evaluation.evaluate import evaluate, split_halves
from ddsp_augment.sampling.generate import generate_songs
from ddsp_augment.training.preprocess import preprocess_folder

SPECIES = "Parus_major"
PAIRED = (
    "f0_wasserstein_cents",
    "loudness_wasserstein_db",
    "log_mel_distance",
    "frechet_distance",
    "diversity",
    "nearest_real_distance",
)


@pytest.fixture(scope="module")
def real_raw(tonal_clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    for species, paths in tonal_clips.items():
        (root / species).mkdir()
        for path in paths:
            shutil.copy(path, root / species / path.name)
    return root


@pytest.fixture(scope="module")
def generated(small_bank_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    generate_songs(
        small_bank_path, out, n=3, seconds=1.5, seed=1, species=[SPECIES], progress=False
    )
    return out


def test_split_halves_keeps_recordists_together():
    held, rest, unit = split_halves(["a", "a", "b", "c", "c", "d"], seed=0)
    assert unit == "recordist" and len(held) <= 3 and held and rest
    groups = ["a", "a", "b", "c", "c", "d"]
    assert not {groups[i] for i in held} & {groups[i] for i in rest}
    held, rest, unit = split_halves(["x", "y", "z", "w", "v"], seed=0)
    assert unit == "recording" and len(held) == 2 and len(rest) == 3
    assert split_halves(["a", "a", "a"], seed=0)[2] == "recording"
    held, rest, _ = split_halves(["only"], seed=0)
    assert held == [] and rest == [0]


def test_evaluate_reports_synthetic_next_to_real_reference(
    generated, real_raw, small_bank_path, tmp_path
):
    report = evaluate(generated, real_raw, tmp_path, model_path=small_bank_path, progress=False)
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert list(report["species"]) == [SPECIES] and report["unmatched"] == []
    for species, result in report["species"].items():
        assert result["n_synthetic"] == 3 and result["n_real"] == 3
        assert len(result["split"]["held_out"]) == 1 and len(result["split"]["rest"]) == 2
        cells = []
        for key in PAIRED:
            synthetic, reference = result[key]["synthetic"], result[key]["reference"]
            assert math.isfinite(synthetic) and math.isfinite(reference), (species, key)
            assert synthetic >= 0 and reference >= 0, (species, key)
            cells.append(f"{synthetic:.3g} ({reference:.3g})")
        # Three different songs are spread out, and none is a copy of a real clip.
        assert result["diversity"]["synthetic"] > 0 and result["diversity"]["reference"] > 0
        assert result["copies"] == {**result["copies"], "flag": False, "files": []}
        resynth = result["resynthesis"]
        scores = list(resynth["by_recording"].values())
        assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
        assert resynth["f0_within_50_cents"] == pytest.approx(sum(scores) / 3, abs=1e-4)  # rounded
        assert (tmp_path / f"{species}_distributions.png").stat().st_size > 1000
    # The table row: species, 3 real (1 held out), 3 synthetic, then each report value.
    table = (tmp_path / "evaluation.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| Parus_major |"))
    assert row.startswith("| Parus_major | 3 (1) | 3 | " + " | ".join(cells) + " | 0 |")


def test_real_clips_passed_off_as_synthetic_are_flagged_as_copies(real_raw, tmp_path):
    processed = tmp_path / "processed"
    preprocess_folder(real_raw, processed, species=["Parus_major"], progress=False)
    report = evaluate(
        real_raw, processed, tmp_path / "eval", species=["Parus_major"], progress=False
    )
    copies = report["species"]["Parus_major"]["copies"]
    assert copies["flag"] is True and copies["fraction"] == 1.0
    assert report["species"]["Parus_major"]["nearest_real_distance"]["synthetic"] == 0.0
    assert "resynthesis" not in report["species"]["Parus_major"]


def test_evaluate_names_missing_inputs(generated, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        evaluate(generated, tmp_path / "nope", tmp_path / "out")
    (tmp_path / "other" / "Turdus_merula").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no real recordings"):
        evaluate(generated, tmp_path / "other", tmp_path / "out")


def test_evaluate_names_an_unknown_judge(generated, real_raw, tmp_path):
    with pytest.raises(ValueError, match="judge must be"):
        evaluate(generated, real_raw, tmp_path / "out", judge="owl")
