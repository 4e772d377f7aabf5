import numpy as np
import torch

from ddsp_augment.background import noise_floor, render_noise_floor
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


def test_power_added_floor_explains_background_noise():
    """A clean prediction plus the target's floor beats the clean prediction alone."""
    rng = np.random.default_rng(0)
    bird = _tone(3000.0)
    noise = 0.01 * rng.standard_normal(bird.shape[1]).astype(np.float32)
    target = bird + torch.from_numpy(noise)[None]
    loss = MultiScaleSpectralLoss(32000)
    floors = [torch.from_numpy(noise_floor(target[0].numpy(), n))[None] for n in loss.fft_sizes]
    assert float(loss(bird, target, floors)) < 0.5 * float(loss(bird, target))


def test_rendered_floor_reproduces_measured_floor():
    rng = np.random.default_rng(1)
    coloured = np.convolve(rng.standard_normal(64000), [1.0, 0.9, 0.5], mode="same")
    floor = noise_floor(coloured.astype(np.float32))
    again = noise_floor(render_noise_floor(floor, 64000, rng))
    band = slice(50, 900)  # away from DC and Nyquist edges
    ratio_db = 20 * np.log10(again[band] / floor[band])
    assert abs(np.median(ratio_db)) < 1.0
