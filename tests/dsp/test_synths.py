import math

import numpy as np
import pytest
import torch

from ddsp_augment.dsp import FilteredNoise, Harmonic, Reverb
from ddsp_augment.dsp import functional as F

SR = 32000
HOP = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def white(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_harmonic_and_noise_modules_are_the_functions():
    frames, n = 20, 19 * HOP
    f0 = torch.full((2, frames), 3000.0)
    amplitude, dist = torch.rand(2, frames), torch.rand(2, frames, 16)
    assert torch.equal(
        Harmonic(SR, HOP)(f0, amplitude, dist, n),
        F.harmonic_synth(f0, amplitude, dist, SR, HOP, n),
    )
    magnitudes, noise = torch.rand(2, frames, 65), white(2, n)
    assert torch.equal(
        FilteredNoise(HOP)(magnitudes, noise), F.filtered_noise(magnitudes, noise, HOP)
    )
    assert not list(Harmonic(SR, HOP).parameters()) and not list(FilteredNoise(HOP).parameters())


def energy_db(x: torch.Tensor) -> float:
    return 10 * math.log10(float(x.detach().square().sum()))


def test_reverb_starts_as_a_quiet_decaying_burst_and_keeps_the_dry_path():
    reverb = Reverb(length=SR // 4, sample_rate=SR)
    ir = reverb.impulse_response()
    assert ir.shape == (SR // 4,) and isinstance(reverb.ir, torch.nn.Parameter)
    # RT60 0.1 s: the 50-100 ms stretch is ~30 dB below the first 50 ms.
    drop = energy_db(ir[SR // 20 : SR // 10]) - energy_db(ir[: SR // 20])
    assert drop == pytest.approx(-30.0, abs=3.0)
    audio = white(2, 4000, seed=1)
    out = reverb(audio)
    assert out.shape == audio.shape
    assert torch.allclose(out, audio + F.fft_convolve(audio, ir.detach()[None]), atol=1e-5)
    with torch.no_grad():
        reverb.ir.zero_()
    assert torch.equal(reverb(audio), audio)  # no room: the bird passes unchanged


def test_reverb_is_deterministic_per_seed_and_learnable():
    assert torch.equal(Reverb(100, SR, seed=3).ir, Reverb(100, SR, seed=3).ir)
    assert not torch.equal(Reverb(100, SR, seed=3).ir, Reverb(100, SR, seed=4).ir)
    reverb = Reverb(100, SR)
    reverb(white(1, 500)).square().sum().backward()
    assert reverb.ir.grad is not None and float(reverb.ir.grad.abs().sum()) > 0


def test_reverb_numpy_path_matches_torch_and_follows_weight_changes():
    reverb = Reverb(length=800, sample_rate=SR)
    dry = white(1, 3000, seed=2)
    expected = reverb(dry)[0].detach().numpy()
    assert np.abs(reverb.apply_numpy(dry[0].numpy()) - expected).max() < 1e-5
    with torch.no_grad():
        reverb.ir.mul_(2.0)  # the cached IR spectrum must follow
    doubled = reverb(dry)[0].detach().numpy()
    assert np.abs(reverb.apply_numpy(dry[0].numpy()) - doubled).max() < 1e-5
