import numpy as np
import pytest
import torch

from ddsp_augment.constants import LOUDNESS_FLOOR_DB
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


def test_given_noise_magnitudes_at_their_own_hop_replace_the_noise_branch(contours):
    """The recorded residual's path: magnitudes at 257 bands and 2 hops a frame, rendered
    alike by both backends in place of the decoder's noise; a bad hop is named."""
    torch.manual_seed(0)
    model = SpeciesModel(DecoderConfig(hidden=16, n_layers=2))
    f0, loud, conf, n = contours
    magnitudes = np.zeros((-(-len(f0) // 2), 257), np.float32)
    magnitudes[:, 112:128] = 0.1  # 7-8 kHz
    args = (f0, loud, conf, n, np.random.default_rng(1))
    fast = model.synthesize(*args, noise_magnitudes=magnitudes, noise_hop_length=128)
    args = (f0, loud, conf, n, np.random.default_rng(1))
    slow = model.synthesize(*args, "torch", magnitudes, 128)
    assert np.max(np.abs(fast - slow)) <= 1e-4 * np.abs(slow).max()
    model_noise = model.synthesize(f0, loud, conf, n, np.random.default_rng(1))
    assert not np.allclose(fast, model_noise)
    for bad, error in ((0, ValueError), (128.0, TypeError)):
        with pytest.raises(error, match="noise_hop_length"):
            model.synthesize(*args[:4], np.random.default_rng(1), "numba", magnitudes, bad)


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


def test_frames_at_the_loudness_floor_render_nothing(contours):
    """Where the input loudness reads the floor (no bird) every path renders silence, even from
    a decoder at its maximum gain through a loud reverb (what a model fitted on one short
    recording learned: a -65 dB song where no bird sang); one frame above the floor sounds."""
    torch.manual_seed(0)
    model = SpeciesModel(DecoderConfig(hidden=16, n_layers=2))
    with torch.no_grad():
        model.decoder.output.bias.add_(20.0)  # every gain saturated
        model.reverb.ir.mul_(30.0)
    f0, _, conf, n = contours
    loud = np.full(len(f0), LOUDNESS_FLOOR_DB, np.float32)
    for backend in ("numba", "torch"):
        song = model.synthesize(f0, loud, conf, n, np.random.default_rng(1), backend=backend)
        assert not song.any(), backend
    inputs = [torch.from_numpy(a)[None] for a in (f0, loud, conf)]
    with torch.inference_mode():
        controls = [model.decoder(*inputs), model.decoder.synthesis_controls(*inputs)]
    for c in controls:
        assert not c.amplitude.any() and not c.noise_magnitudes.any()
    _, amplitude, _, noise = model.decoder.numpy_forward(f0, loud, conf)
    assert not amplitude.any() and not noise.any()
    loud[150] = LOUDNESS_FLOOR_DB + 10.0
    _, amplitude, _, noise = model.decoder.numpy_forward(f0, loud, conf)
    assert np.flatnonzero(amplitude).tolist() == [150] and noise[150].all()


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


def test_numba_decoder_matches_torch_decoder(contours, monkeypatch):
    from ddsp_augment.dsp.functional import remove_above_nyquist
    from ddsp_augment.model.decoder import Decoder

    torch.manual_seed(0)
    model = SpeciesModel(DecoderConfig(hidden=16, n_layers=3))
    with torch.no_grad():  # a trained-looking decoder: weights away from their init
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    f0, loud, conf, n = contours
    loud = loud + np.linspace(-40, 10, loud.shape[0], dtype=np.float32)
    fast = model.decoder.numpy_forward(f0, loud, conf)
    with torch.inference_mode():
        ref = model.decoder(*(torch.from_numpy(a)[None] for a in (f0, loud, conf)))
    ref_distribution = remove_above_nyquist(ref.harmonic_distribution, ref.f0_hz, 32000)
    for got, want in zip(
        fast, (ref.f0_hz, ref.amplitude, ref_distribution, ref.noise_magnitudes), strict=True
    ):
        want = want[0].numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    # 2.5-6 kHz at 32 kHz: 6 harmonics sound at the start, 2 at the end; the rest are zero
    assert (fast[2][0] > 0).sum() == 6 and (fast[2][-1] > 0).sum() == 2
    # the numba backend needs no torch call per clip, weights changes are followed
    expected = model.synthesize(f0, loud, conf, n, np.random.default_rng(0))
    monkeypatch.setattr(Decoder, "forward", lambda *a: pytest.fail("torch decoder called"))
    np.testing.assert_array_equal(
        model.synthesize(f0, loud, conf, n, np.random.default_rng(0)), expected
    )
    with torch.no_grad():
        model.decoder.output.bias.add_(1.0)
    assert not np.allclose(model.synthesize(f0, loud, conf, n, np.random.default_rng(0)), expected)


def test_batched_render_matches_clip_by_clip_and_chunks(contours, monkeypatch):
    from ddsp_augment.model import species_model

    torch.manual_seed(0)
    model = SpeciesModel(DecoderConfig(hidden=16, n_layers=2))
    f0, loud, conf, n = contours
    batch = [(f0 * s, loud + g, conf) for s, g in ((1.0, 0.0), (0.7, -6.0), (1.3, 3.0))]
    # clip i's noise is what synthesize draws from default_rng(i)
    whites = np.stack(
        [np.random.default_rng(i).standard_normal(n, dtype=np.float32) for i in range(3)]
    )
    stacked = [torch.from_numpy(np.stack(parts)) for parts in zip(*batch, strict=True)]
    whole = model.render(*stacked, torch.from_numpy(whites)).numpy()
    monkeypatch.setattr(species_model, "_RENDER_ELEMENTS", {"cpu": n})  # one clip per chunk
    chunked = model.render(*stacked, torch.from_numpy(whites)).numpy()
    assert whole.shape == (3, n)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6 * np.abs(whole).max())
    for i, clip in enumerate(batch):
        numba = model.synthesize(*clip, n, np.random.default_rng(i), backend="numba")
        assert np.abs(whole[i] - numba).max() <= 1e-4 * np.abs(numba).max()


def test_batched_reverb_and_synthesis_controls_match_the_training_path(contours):
    from ddsp_augment.dsp.functional import remove_above_nyquist

    torch.manual_seed(0)
    model = SpeciesModel(DecoderConfig(hidden=16, n_layers=3))
    with torch.no_grad():  # a trained-looking model: weights away from their init
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    f0, loud, conf, n = contours
    batch = [torch.from_numpy(np.stack([a, a[::-1].copy()])) for a in (f0, loud, conf)]
    with torch.inference_mode():
        fast = model.decoder.synthesis_controls(*batch)
        ref = model.decoder(*batch)
        dry, other = torch.randn(2, n), torch.randn(2, n)
        wet, expected = model.reverb.apply_batch(dry), model.reverb(dry)
        # the two synthesiser branches summed into the reverb's FFT buffer: the reverb of the sum
        both, summed = model.reverb.apply_batch(dry, other), model.reverb(dry + other)
    # 2.5-6 kHz at 32 kHz: harmonics up to the 6th sound somewhere; the rest are never made
    assert fast.harmonic_distribution.shape == (2, 300, 6)
    full = remove_above_nyquist(ref.harmonic_distribution, ref.f0_hz, 32000)
    for got, want in zip(
        fast, (ref.f0_hz, ref.amplitude, full[..., :6], ref.noise_magnitudes), strict=True
    ):
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    assert full[..., 6:].abs().max() == 0
    assert (wet - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert both.shape == (2, n) and (both - summed).abs().max() <= 1e-5 * summed.abs().max()
    with torch.no_grad():
        model.reverb.ir.mul_(3.0)  # the cached response follows an optimiser step
    with torch.inference_mode():
        assert (
            model.reverb.apply_batch(dry) - model.reverb(dry)
        ).abs().max() <= 1e-5 * 3 * expected.abs().max()
