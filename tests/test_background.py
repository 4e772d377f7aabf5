import numpy as np

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
