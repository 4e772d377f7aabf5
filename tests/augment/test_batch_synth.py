"""BatchDDSPSynth: DDSP songs of minority classes added to whole batches (torch-audiomentations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("torch_audiomentations", reason="the [gpu-augment] extra is not installed")
from torch_audiomentations import Compose, PolarityInversion  # noqa: E402

from ddsp_augment.augment.batch_synth import BatchDDSPSynth  # noqa: E402

SR = 16000
CLASSES = ["Corvus_corax", "Fringilla_coelebs", "Parus_major"]  # the first has no model


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Six 0.5 s stereo examples: classes 0, 1, 2, 0, 2, 1 (one-hot whole-clip targets)."""
    generator = torch.Generator().manual_seed(seed)
    samples = 0.1 * torch.randn(6, 2, SR // 2, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 2, 1])
    targets = torch.nn.functional.one_hot(labels, 3).float()[:, None, None, :].expand(-1, 2, 1, -1)
    return samples, targets.contiguous()


def _db(x: torch.Tensor) -> float:
    return 10 * float(torch.log10(x.double().square().mean()))


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture()
def models_back_on_cpu(small_bank):
    """Rendering on a device moves the bank's models there: the shared bank goes back after."""
    yield
    for species in small_bank.species:
        small_bank.entry(species).model.to("cpu")


@pytest.mark.parametrize("draws", ["host", "device"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.usefixtures("models_back_on_cpu")
def test_mix_adds_songs_to_minority_examples_at_the_drawn_snr(small_bank, device, draws):
    samples, targets = (t.to(device) for t in _batch())
    augment = BatchDDSPSynth(
        small_bank, CLASSES, min_snr_db=3.0, max_snr_db=9.0, p=1.0, seed=0, draws=draws
    )
    out = augment(samples, sample_rate=SR, targets=targets)
    assert out.samples.device == samples.device
    assert out.samples.shape == samples.shape and torch.isfinite(out.samples).all()
    torch.testing.assert_close(out.targets, targets)  # mixing in a song of the same class
    chosen = augment.transform_parameters["class_index"]
    assert chosen.tolist() == [-1, 1, 2, -1, 2, 1]  # Corvus has no model: left alone
    for i in (0, 3):
        torch.testing.assert_close(out.samples[i], samples[i], rtol=0, atol=0)
    for i in (1, 2, 4, 5):
        added = out.samples[i] - samples[i]
        torch.testing.assert_close(added[0], added[1])  # one song on both channels
        snr = _db(samples[i]) - _db(added)
        assert snr == pytest.approx(augment.transform_parameters["snr_db"][i], abs=0.01)
        assert 3.0 <= snr <= 9.0


def test_replace_puts_the_song_in_and_relabels(small_bank):
    samples, targets = _batch()
    targets[2, :, 0, 0] = 1.0  # example 2: Parus major with a Corvus corax in the background
    augment = BatchDDSPSynth(
        small_bank, CLASSES, minority=["Parus_major"], action="replace", p=1.0, seed=3
    )
    out = augment(samples, sample_rate=SR, targets=targets)
    for i in (2, 4):
        assert out.targets[i].tolist() == [[[0.0, 0.0, 1.0]]] * 2  # the song alone is heard
        torch.testing.assert_close(out.samples[i, 0], out.samples[i, 1])
        assert 0 < out.samples[i].abs().max() <= 0.99
    # the replaced examples hold the bank's songs for the transform's seed
    seeds = np.random.SeedSequence(int(augment.transform_parameters["song_seed"])).spawn(3)
    assert augment.noise == "model"  # classifier training's default noise (the decoder's)
    songs = small_bank.sample(
        "Parus_major", n=2, seconds=0.5, sample_rate=SR, seed=seeds[2], backend="torch",
        noise="model",
    )  # fmt: skip
    torch.testing.assert_close(out.samples[[2, 4], 0], torch.from_numpy(songs))
    for i in (0, 1, 3, 5):  # Fringilla is not a minority class here
        torch.testing.assert_close(out.samples[i], samples[i], rtol=0, atol=0)
        torch.testing.assert_close(out.targets[i], targets[i])


def test_inside_compose_with_per_example_p_and_seed(small_bank):
    samples, targets = _batch()

    def run(seed):
        torch.manual_seed(0)  # the p-draws use torch's generator, as in torch-audiomentations
        augment = Compose(
            [
                PolarityInversion(p=1.0, output_type="dict"),
                BatchDDSPSynth(small_bank, CLASSES, p=0.5, seed=seed),
            ],
            output_type="dict",
        )
        return augment(samples, sample_rate=SR, targets=targets), augment.transforms[1]

    first, transform = run(0)
    again, _ = run(0)
    other, _ = run(1)
    torch.testing.assert_close(first.samples, again.samples, rtol=0, atol=0)
    assert not torch.equal(first.samples, other.samples)
    applied = transform.transform_parameters["should_apply"].tolist()
    assert applied == [True, False, True, False, True, True]  # for torch seed 0
    for i, flag in enumerate(applied):
        changed = not torch.equal(first.samples[i], -samples[i])
        # only selected examples of a minority class get a song
        assert changed == (flag and CLASSES[int(targets[i, 0, 0].argmax())] != "Corvus_corax")


def test_bad_arguments(small_bank):
    with pytest.raises(ValueError, match="no model"):
        BatchDDSPSynth(small_bank, CLASSES, minority=["Corvus_corax"])
    with pytest.raises(ValueError, match="not in classes"):
        BatchDDSPSynth(small_bank, CLASSES[:2], minority=["Parus_major"])
    with pytest.raises(ValueError, match="action"):
        BatchDDSPSynth(small_bank, CLASSES, action="add")
    with pytest.raises(ValueError, match="p must be"):
        BatchDDSPSynth(small_bank, CLASSES, p=1.5)
    with pytest.raises(ValueError, match="draws must be"):
        BatchDDSPSynth(small_bank, CLASSES, draws="gpu")
    samples, targets = _batch()
    augment = BatchDDSPSynth(small_bank, CLASSES, p=1.0)
    with pytest.raises(ValueError, match="classes"):
        augment(samples, sample_rate=SR, targets=targets[..., :2])
    with pytest.raises(RuntimeError, match="targets is required"):
        augment(samples, sample_rate=SR)
