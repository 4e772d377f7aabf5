import numpy as np
import pytest

from ddsp_augment.dsp.spectral import magnitude_spectrogram
from ddsp_augment.features.background import noise_floor, render_noise_floor


def test_rendered_floor_reproduces_measured_floor():
    rng = np.random.default_rng(1)
    coloured = np.convolve(rng.standard_normal(64000), [1.0, 0.9, 0.5], mode="same")
    floor = noise_floor(coloured.astype(np.float32))
    again = noise_floor(render_noise_floor(floor, 64000, rng))
    band = slice(50, 900)  # away from DC and Nyquist edges
    ratio_db = 20 * np.log10(again[band] / floor[band])
    assert abs(np.median(ratio_db)) < 1.0


def test_floor_ignores_a_bird_that_sings_most_of_the_time():
    """Minimum statistics: a whistle present 70 % of the time barely moves the floor."""
    rng = np.random.default_rng(2)
    sr, n = 32000, 64000
    noise = 0.01 * rng.standard_normal(n).astype(np.float32)
    t = np.arange(n) / sr
    song = 0.5 * np.sin(2 * np.pi * 4000 * t) * (np.sin(2 * np.pi * 3 * t) > -0.5)
    floor_noise = noise_floor(noise)
    floor_song = noise_floor((noise + song).astype(np.float32))
    bin_4k = int(4000 / sr * 2048)
    song_peak = np.abs(np.fft.rfft(song[:2048] * np.hanning(2048))).max()
    assert floor_song[bin_4k] < 0.05 * song_peak  # >26 dB under the song: not mistaken for it
    far = slice(700, 1000)  # 11-16 kHz, away from the whistle and its gating sidebands
    assert abs(np.median(floor_song[far] / floor_noise[far]) - 1) < 0.1


def test_rendered_floor_follows_the_spectrum_and_its_scaling_convention():
    """``floor[k]`` is the RMS magnitude of the noise's unnormalised periodic-Hann STFT."""
    bands, sr = 1025, 32000
    floor = np.zeros(bands, np.float32)
    floor[200:400] = 2.0  # 3.1-6.2 kHz at 32 kHz
    floor[400:600] = 0.5
    noise = render_noise_floor(floor, 4 * sr, np.random.default_rng(0))
    assert noise.shape == (4 * sr,) and noise.dtype == np.float32
    n_fft = 2 * (bands - 1)
    measured = np.sqrt(np.mean(magnitude_spectrogram(noise, n_fft, n_fft // 4) ** 2, axis=1))
    np.testing.assert_allclose(measured[220:380], 2.0, rtol=0.15)
    np.testing.assert_allclose(measured[420:580], 0.5, rtol=0.15)
    power = np.abs(np.fft.rfft(noise)) ** 2
    band = np.linspace(0, bands - 1, power.shape[0])
    assert power[(band >= 199) & (band <= 600)].sum() / power.sum() > 0.999
    with pytest.raises(ValueError, match="floor"):
        render_noise_floor(-floor, 100, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_samples"):
        render_noise_floor(floor, 0, np.random.default_rng(0))


def test_recorded_band_edge_finds_the_old_nyquist_of_a_resampled_file():
    """White noise at 22.05 kHz resampled to 32 kHz carries nothing above 11.025 kHz; the same
    noise made at 32 kHz carries the whole band; a real background's tilt (-40 dB towards
    Nyquist) is not an edge."""
    import librosa

    from ddsp_augment.features.background import recorded_band_edge

    rng = np.random.default_rng(3)
    low_rate = rng.standard_normal(44100).astype(np.float32) * 0.01
    resampled = librosa.resample(low_rate, orig_sr=22050, target_sr=32000)
    edge = recorded_band_edge(noise_floor(resampled), 32000)
    assert 10500 <= edge <= 11025
    full = rng.standard_normal(64000).astype(np.float32) * 0.01
    assert recorded_band_edge(noise_floor(full), 32000) == 16000.0
    tilt = np.logspace(0, -2, 1025).astype(np.float32)  # 0 dB at DC to -40 dB at Nyquist
    assert recorded_band_edge(tilt, 32000) == 16000.0
    # Any FFT size (band k at k * sr / (2 (K - 1))), within a band's width (125 Hz here).
    assert 10500 <= recorded_band_edge(noise_floor(resampled, 256), 32000) <= 11025 + 250
    with pytest.raises(ValueError, match="f_min"):
        recorded_band_edge(tilt, 32000, f_min=20000.0)
