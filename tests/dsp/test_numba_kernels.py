import numpy as np
import pytest
import torch

from ddsp_augment.dsp import functional as F
from ddsp_augment.dsp import numba_kernels as nk

SR = 32000
HOP = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def batched(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a))[None] for a in arrays]


def song(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random controls: F0 glides 1.5-12 kHz (harmonics cross Nyquist in both directions)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / frames
    f0 = 1500.0 * 8.0 ** (0.5 - 0.5 * np.cos(2 * np.pi * 3 * t)) * rng.uniform(0.98, 1.02, frames)
    amplitude = rng.uniform(0.0, 0.5, frames)
    distribution = rng.uniform(0.0, 1.0, (frames, 64))
    magnitudes = rng.uniform(0.0, 1.0, (frames, 65)) ** 2
    return tuple(a.astype(np.float32) for a in (f0, amplitude, distribution, magnitudes))


@pytest.mark.parametrize("extra", [0, -HOP + 5, 37, 3 * HOP])
def test_harmonic_matches_torch(extra):
    frames = 400
    n = (frames - 1) * HOP + extra  # short of, on, and past the last frame (held controls)
    f0, amplitude, distribution, _ = song(frames)
    fast = nk.harmonic_synth(f0, amplitude, distribution, SR, HOP, n)
    reference = F.harmonic_synth(*batched(f0, amplitude, distribution), SR, HOP, n)[0].numpy()
    assert fast.shape == (n,) and fast.dtype == np.float32
    assert np.abs(fast - reference).max() <= 1e-4 * np.abs(reference).max()


def test_harmonic_skips_masked_harmonics_and_keeps_the_amplitude():
    frames, n = 101, 100 * HOP
    f0 = np.full(frames, 6000.0, np.float32)
    audio = nk.harmonic_synth(
        f0, np.full(frames, 0.8, np.float32), np.ones((frames, 64), np.float32), SR, HOP, n
    )
    t = np.arange(1, n + 1) / SR  # sample n carries the phase after n + 1 increments
    expected = 0.4 * np.sin(2 * np.pi * 6000 * t) + 0.4 * np.sin(2 * np.pi * 12000 * t)
    assert np.abs(audio - expected).max() < 1e-5


def test_phase_stays_continuous_over_a_long_sweep():
    # F0 rising 1/8 Hz per frame (exact in float32): the float64 chirp is known in closed form.
    n = 60 * SR
    frames = n // HOP + 1
    f0 = (2000.0 + np.arange(frames) / 8.0).astype(np.float32)
    ones = np.ones(frames, np.float32)
    audio = nk.harmonic_synth(f0, ones, ones[:, None], SR, HOP, n)
    m = np.arange(n, dtype=np.float64)
    cycles = ((m + 1) * 2000.0 + m * (m + 1) / 2 / (8.0 * HOP)) / SR
    assert np.abs(audio - np.sin(2 * np.pi * (cycles % 1.0))).max() < 1e-4


@pytest.mark.parametrize("n", [7, 250 * HOP, 300 * HOP - 9, 320 * HOP + 3])
def test_filtered_noise_matches_torch(n):
    frames = 300
    _, _, _, magnitudes = song(frames, seed=1)
    noise = np.random.default_rng(2).uniform(-1, 1, n).astype(np.float32)
    fast = nk.filtered_noise(magnitudes, noise, HOP)
    reference = F.filtered_noise(*batched(magnitudes, noise), HOP)[0].numpy()
    assert fast.shape == (n,) and fast.dtype == np.float32
    assert np.abs(fast - reference).max() <= 1e-5 * np.abs(reference).max()


@pytest.mark.parametrize("hop", [64, 100])
def test_filtered_noise_other_band_counts_and_hops(hop):
    frames, n_bands = 50, 17
    magnitudes = np.random.default_rng(3).uniform(0, 1, (frames, n_bands)).astype(np.float32)
    noise = np.random.default_rng(4).standard_normal(frames * hop).astype(np.float32)
    fast = nk.filtered_noise(magnitudes, noise, hop)
    reference = F.filtered_noise(*batched(magnitudes, noise), hop)[0].numpy()
    assert np.abs(fast - reference).max() <= 1e-5 * np.abs(reference).max()


@pytest.mark.parametrize(
    "n_bands, hop, extra", [(257, 256, 0), (257, 256, -200), (257, 64, 130), (65, 64, 3 * HOP)]
)
def test_zero_phase_filtered_noise_matches_the_direct_kernel(n_bands, hop, extra):
    # Long FIRs at a long hop and the decoder's 65 bands at its hop, past and short of the
    # last frame; silent frames at the start, inside and at the end.
    frames = 60
    n = (frames - 1) * hop + extra
    rng = np.random.default_rng(7)
    magnitudes = rng.uniform(0, 1, (frames, n_bands)).astype(np.float32)
    magnitudes[:3] = magnitudes[20:30] = magnitudes[-2:] = 0.0
    noise = rng.standard_normal(n).astype(np.float32)
    direct = nk.filtered_noise(magnitudes, noise, hop)
    fast = F.filtered_noise_zero_phase(*batched(magnitudes, noise), hop)[0].numpy()
    assert fast.shape == (n,) and fast.dtype == np.float32
    assert np.abs(fast - direct).max() <= 1e-6 * np.abs(direct).max()


def test_pool_frames_keeps_each_runs_power():
    magnitudes = np.array([[1, 0], [3, 2], [5, 0], [0, 4], [2, 2]], np.float32)
    pooled = nk.pool_frames(magnitudes, 2)
    expected = np.sqrt([[(1 + 9) / 2, 4 / 2], [25 / 2, 16 / 2], [4, 4]])  # last run: 1 frame
    np.testing.assert_allclose(pooled, expected, rtol=1e-6)
    assert pooled.dtype == np.float32
    np.testing.assert_array_equal(nk.pool_frames(magnitudes, 1), magnitudes)
    # Slots pool a sparse sequence: rows of the input where >= 0, silent frames where < 0.
    slots = np.array([4, -1, 0, 0, -1, 2])
    sparse = np.where(slots[:, None] >= 0, magnitudes[slots], 0.0)
    np.testing.assert_array_equal(nk.pool_frames(magnitudes, 4, slots), nk.pool_frames(sparse, 4))
    with pytest.raises(ValueError, match="factor"):
        nk.pool_frames(magnitudes, 0)
    with pytest.raises(ValueError, match="slots"):
        nk.pool_frames(magnitudes, 2, np.array([5]))


def test_warp_spectra_db_reads_rows_in_place():
    spectra = np.random.default_rng(2).uniform(-90, -10, (6, 33)).astype(np.float32)
    rows = np.array([5, 0, 5, 3])
    gain = np.array([0.0, 3.0, -2.0, 1.0])
    ratio = np.array([1.0, 1.0, 2.0, 0.5])
    out = nk.warp_spectra_db(spectra, rows, gain, ratio, -120.0)
    assert out.shape == (4, 33) and out.dtype == np.float32
    np.testing.assert_allclose(20 * np.log10(out[0]), spectra[5], atol=1e-4)
    np.testing.assert_allclose(20 * np.log10(out[1]), spectra[0] + 3, atol=1e-4)
    # Twice the pitch: band 2k reads source band k; band 3 reads halfway between bands 1 and 2.
    np.testing.assert_allclose(20 * np.log10(out[2, ::2]), spectra[5, :17] - 2, atol=1e-4)
    halfway = 20 * np.log10(out[2, 3]) + 2
    assert halfway == pytest.approx((spectra[5, 1] + spectra[5, 2]) / 2, abs=1e-4)
    # Half the pitch: the upper half has nothing to read.
    np.testing.assert_allclose(20 * np.log10(out[3, 17:]), -119.0, atol=1e-4)
    with pytest.raises(ValueError, match="rows"):
        nk.warp_spectra_db(spectra, np.array([6]), gain[:1], ratio[:1], -120.0)
    # float16 spectra (how a bank stores residuals) read as their exact float32 values.
    half = np.concatenate([spectra, [[np.inf, -0.0, 6e-8] + [0.0] * 30]]).astype(np.float16)
    rows = np.array([6, 2, 6])
    np.testing.assert_array_equal(
        nk.warp_spectra_db(half, rows, gain[:3], ratio[:3], -120.0),
        nk.warp_spectra_db(half.astype(np.float32), rows, gain[:3], ratio[:3], -120.0),
    )


def test_noise_impulse_responses_match_torch():
    magnitudes = np.random.default_rng(5).uniform(0, 1, (4, 65)).astype(np.float32)
    fast = nk.noise_impulse_responses(magnitudes)
    reference = F.noise_impulse_responses(torch.from_numpy(magnitudes)).numpy()
    assert fast.shape == (4, 128)
    assert np.abs(fast - reference).max() < 1e-6


def test_fft_convolve_matches_np_convolve():
    rng = np.random.default_rng(6)
    audio = rng.standard_normal(5000).astype(np.float32)
    ir = rng.standard_normal(801).astype(np.float32)
    size = nk.convolution_size(5000, 801)
    assert size >= 5000 + 801 - 1
    out = nk.fft_convolve(audio, nk.rfft(ir, size), size)
    assert out.shape == (5000,) and out.dtype == np.float32
    expected = np.convolve(audio.astype(np.float64), ir)[:5000]
    assert np.abs(out - expected).max() < 1e-4


@pytest.mark.parametrize(("frames", "kernel", "layers"), [(203, 5, 4), (6, 3, 3), (1, 5, 2)])
def test_separable_conv_stack_matches_torch_convs(frames, kernel, layers):
    # frames 6 and 1: dilations 4 and 8 reach past both ends (zero padding)
    rng = np.random.default_rng(7)
    channels, n_in, n_out = 16, 3, 11
    weights = {
        "input_weight": rng.normal(0, 0.5, (n_in, channels)),
        "input_bias": rng.normal(0, 0.1, channels),
        "depthwise_weight": rng.normal(0, 0.5, (layers, channels, kernel)),
        "depthwise_bias": rng.normal(0, 0.1, (layers, channels)),
        "pointwise_weight": rng.normal(0, 0.3, (layers, channels, channels)),
        "pointwise_bias": rng.normal(0, 0.1, (layers, channels)),
        "output_weight": rng.normal(0, 0.3, (channels, n_out)),
        "output_bias": rng.normal(0, 0.1, n_out),
    }
    weights = {k: v.astype(np.float32) for k, v in weights.items()}
    x = rng.normal(0, 1, (frames, n_in)).astype(np.float32)
    fast = nk.separable_conv_stack(x, **weights)

    t = {k: torch.from_numpy(v) for k, v in weights.items()}
    conv = torch.nn.functional.conv1d
    h = conv(torch.from_numpy(x).T[None], t["input_weight"].T[..., None], t["input_bias"])
    for i in range(layers):
        d = 2**i
        dw = conv(
            h,
            t["depthwise_weight"][i][:, None],
            t["depthwise_bias"][i],
            padding=d * (kernel // 2),
            dilation=d,
            groups=channels,
        )  # noqa: E501
        pw = conv(dw, t["pointwise_weight"][i].T[..., None], t["pointwise_bias"][i])
        h = h + torch.nn.functional.leaky_relu(pw, 0.1)
    reference = conv(h, t["output_weight"].T[..., None], t["output_bias"])[0].T.numpy()
    assert fast.shape == (frames, n_out) and fast.dtype == np.float32
    assert np.abs(fast - reference).max() <= 1e-5 * np.abs(reference).max()
    with pytest.raises(ValueError, match="odd"):
        nk.separable_conv_stack(
            x, **{**weights, "depthwise_weight": weights["depthwise_weight"][..., :2]}
        )  # noqa: E501


def test_exp_sigmoid_matches_torch_and_skips_columns():
    x = np.linspace(-120, 40, 600, dtype=np.float32).reshape(100, 6)
    fast = nk.exp_sigmoid(x, max_value=4.0)
    reference = F.exp_sigmoid(torch.from_numpy(x), max_value=4.0).numpy()
    np.testing.assert_allclose(fast, reference, rtol=1e-6, atol=0)
    assert fast.min() == pytest.approx(1e-7)  # far below -88: exactly the threshold
    counts = np.arange(100) % 7
    masked = nk.exp_sigmoid(x, columns=counts)
    keep = np.arange(6)[None, :] < counts[:, None]
    np.testing.assert_allclose(
        masked[keep], F.exp_sigmoid(torch.from_numpy(x)).numpy()[keep], rtol=1e-6
    )  # noqa: E501
    assert (masked[~keep] == 0).all()
    with pytest.raises(ValueError, match="columns"):
        nk.exp_sigmoid(x, columns=counts[:5])
