import torch

from ddsp_augment.model.losses import MultiScaleSpectralLoss, loss_f_min


def _tone(freq, n=16000, sr=32000):
    t = torch.arange(n) / sr
    return (0.3 * torch.sin(2 * torch.pi * freq * t))[None]


def test_loss_is_zero_for_identical_and_grows_with_pitch_error():
    loss = MultiScaleSpectralLoss(32000)
    target = _tone(3000.0)
    assert float(loss(target, target)) < 1e-6
    near, far = float(loss(_tone(3050.0), target)), float(loss(_tone(4500.0), target))
    assert 0 < near < far


def test_background_floor_term_lets_a_clean_bird_match_a_noisy_recording():
    """With the recording's floor power-added, the clean bird scores better than without it,
    and better than a bird that imitates the noise itself with the wrong level."""
    import numpy as np

    from ddsp_augment.features.background import noise_floor

    rng = np.random.default_rng(0)
    bird = _tone(3000.0)
    noise = torch.from_numpy(0.01 * rng.standard_normal(bird.shape[1]).astype(np.float32))[None]
    recording = bird + noise
    loss = MultiScaleSpectralLoss(32000)
    floors = [torch.from_numpy(noise_floor(recording[0].numpy(), n))[None] for n in loss.fft_sizes]
    with_floor = float(loss(bird, recording, floors))
    assert with_floor < 0.5 * float(loss(bird, recording))
    assert with_floor < float(loss(bird + 3 * noise, recording, floors))


def test_grouped_loss_is_each_group_alone():
    """``groups``: consecutive runs of the batch (stacked species) each get their own loss."""
    import pytest

    loss = MultiScaleSpectralLoss(32000)
    pred = torch.cat([_tone(f) for f in (3000.0, 3100.0, 4000.0, 5000.0)])
    target = torch.cat([_tone(f) for f in (3000.0, 3000.0, 3000.0, 3000.0)])
    grouped = loss(pred, target, groups=2)
    assert grouped.shape == (2,)
    for g in range(2):
        alone = loss(pred[2 * g : 2 * g + 2], target[2 * g : 2 * g + 2])
        torch.testing.assert_close(grouped[g], alone, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="groups=3 does not divide the batch 4"):
        loss(pred, target, groups=3)


def test_bins_above_a_recordings_band_edge_do_not_count():
    """``band_edges``: a recording made at 22.05 kHz carries nothing above 11 kHz. A faint
    14 kHz tone (-30 dB) in the prediction then moves the loss by half without edges (what drove
    training to silence) and by nothing with them; an edge at Nyquist keeps the plain loss bit
    for bit; each example keeps its own edge."""
    import librosa
    import numpy as np
    import pytest

    from ddsp_augment.features.background import noise_floor, recorded_band_edge

    rng = np.random.default_rng(0)
    hiss = 0.003 * rng.standard_normal(11025).astype(np.float32)
    noise = librosa.resample(hiss, orig_sr=22050, target_sr=32000)[:16000]
    target = _tone(3000.0) + torch.from_numpy(noise)[None]
    loss = MultiScaleSpectralLoss(32000)
    floors = [torch.from_numpy(noise_floor(noise, n))[None] for n in loss.fft_sizes]
    edge = torch.tensor([recorded_band_edge(noise_floor(noise), 32000)])
    assert 10500 <= float(edge) <= 11025
    pred = 0.8 * _tone(3000.0)
    above = pred + 0.1 * _tone(14000.0)
    plain = float(loss(pred, target, floors, band_edges=edge))
    assert float(loss(above, target, floors, band_edges=edge)) == pytest.approx(plain, rel=1e-3)
    assert float(loss(above, target, floors)) > 1.5 * float(loss(pred, target, floors))
    nyquist = torch.tensor([16000.0])
    assert torch.equal(loss(pred, target, floors, band_edges=nyquist), loss(pred, target, floors))
    pair = loss(
        torch.cat([above, pred]),
        torch.cat([target, target]),
        [torch.cat([f, f]) for f in floors],
        band_edges=torch.cat([edge, edge]),
    )
    assert float(pair) == pytest.approx(plain, rel=1e-3)
    with pytest.raises(ValueError, match=r"band_edges must be \[1\]"):
        loss(pred, target, band_edges=edge.repeat(2))


def test_a_low_band_lowers_the_loss_floor_to_hear_a_low_fundamental():
    """A wood pigeon analysed from 250 Hz: a 300 Hz fundamental counts in the default loss
    (500 Hz up) only through its window's leakage, and in full once ``f_min`` is
    ``loss_f_min(250)`` = 125 Hz (measured at the 1024 FFT, the one that resolves it: 0.33 vs
    0.86); the default band (1 kHz up) keeps 500 Hz."""
    import pytest

    assert loss_f_min(1000.0) == 500.0
    assert loss_f_min(250.0) == 125.0
    with pytest.raises(ValueError, match="band_low_hz must be positive"):
        loss_f_min(0.0)
    target = _tone(3000.0)
    with_coo = target + _tone(300.0)
    default = MultiScaleSpectralLoss(32000, fft_sizes=(1024,))
    low = MultiScaleSpectralLoss(32000, fft_sizes=(1024,), f_min=loss_f_min(250.0))
    assert float(low(with_coo, target)) > 2 * float(default(with_coo, target))
