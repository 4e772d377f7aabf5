import torch

from ddsp_augment.losses import MultiScaleSpectralLoss


def _tone(freq, n=16000, sr=32000):
    t = torch.arange(n) / sr
    return (0.3 * torch.sin(2 * torch.pi * freq * t))[None]


def test_loss_is_zero_for_identical_and_grows_with_pitch_error():
    loss = MultiScaleSpectralLoss(32000)
    target = _tone(3000.0)
    assert float(loss(target, target)) < 1e-6
    near, far = float(loss(_tone(3050.0), target)), float(loss(_tone(4500.0), target))
    assert 0 < near < far
