import numpy as np
import pytest
import torch

from ddsp_augment.model.decoder import DecoderConfig
from ddsp_augment.model.species_model import SpeciesModel


@pytest.fixture()
def contours():
    frames = 300
    f0 = np.linspace(2500, 6000, frames).astype(np.float32)
    loud = np.full(frames, -25.0, np.float32)
    return f0, loud, np.ones(frames, np.float32), (frames - 1) * 64


def test_numba_and_torch_synthesis_agree(contours):
    torch.manual_seed(0)
    model = SpeciesModel(DecoderConfig(hidden=16, n_layers=2))
    fast = model.synthesize(*contours, np.random.default_rng(1), backend="numba")
    slow = model.synthesize(*contours, np.random.default_rng(1), backend="torch")
    assert np.max(np.abs(fast - slow)) <= 1e-4 * np.abs(slow).max()


def test_cached_reverb_follows_weight_changes(contours):
    torch.manual_seed(0)
    model = SpeciesModel(DecoderConfig(hidden=16, n_layers=2))
    before = model.synthesize(*contours, np.random.default_rng(1))
    with torch.no_grad():
        model.reverb.ir.mul_(3.0)  # in place, as an optimiser step is
    after = model.synthesize(*contours, np.random.default_rng(1))
    reference = model.synthesize(*contours, np.random.default_rng(1), backend="torch")
    assert not np.allclose(before, after)
    assert np.max(np.abs(after - reference)) <= 1e-4 * np.abs(reference).max()


def test_decoder_outputs_follow_loudness_and_config_validation(contours):
    model = SpeciesModel(DecoderConfig(hidden=16, n_layers=2))
    f0, loud, conf = (torch.from_numpy(a)[None] for a in contours[:3])
    quiet = model.decoder(f0, loud - 20, conf).amplitude
    loud_out = model.decoder(f0, loud, conf).amplitude
    ratio = float((loud_out / quiet).median().detach())
    assert 5 < ratio < 20  # 20 dB louder input → ~10× amplitude at init
    with pytest.raises(ValueError, match="kernel_size"):
        DecoderConfig(kernel_size=4)
    with pytest.raises(ValueError, match="unknown decoder config keys"):
        DecoderConfig.from_dict({"hidden": 8, "layers": 3})


def test_decoder_batch_matches_single_items():
    torch.manual_seed(0)
    decoder = SpeciesModel(DecoderConfig(hidden=16, n_layers=2)).decoder.eval()
    gen = torch.Generator().manual_seed(1)
    f0 = 2000 + 4000 * torch.rand(4, 120, generator=gen)
    loudness = -60 + 50 * torch.rand(4, 120, generator=gen)
    confidence = torch.rand(4, 120, generator=gen)
    with torch.no_grad():
        batch = decoder(f0, loudness, confidence)
        singles = [
            decoder(f0[i : i + 1], loudness[i : i + 1], confidence[i : i + 1]) for i in range(4)
        ]
    for name, value in batch._asdict().items():
        expected = torch.cat([getattr(s, name) for s in singles])
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-7, msg=name)
